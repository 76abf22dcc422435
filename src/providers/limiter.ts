/**
 * Counting against rate limits, in fixed windows aligned to the clock
 * (`N/s`, `N/m`, `N/h`): the per-client limit of the MCP layer and the
 * per-provider `rpm`/`tpm` share it.
 *
 * A check is all or nothing: every window of a call is checked first and
 * only then counted, so a refused call consumes nothing. In memory the
 * counters are per process (bounded in number); in Redis they are shared by
 * every instance and each check-and-count runs as one Lua script, atomic
 * in Redis (never read-modify-write from here). Windows are aligned to the
 * epoch, so instances agree on them, and `retryAfterMs` is the time to the
 * window's end. While Redis is down the memory counters stand in.
 *
 * @module
 */

import type { RedisLink } from "../redis.ts";

/** One window to check (and count, when `cost` is positive). */
export interface WindowCheck {
  /** Counter name, without the window (e.g. `client:token:1`). */
  key: string;
  /** Most units per window. */
  limit: number;
  /** Window length in ms (1 000, 60 000 or 3 600 000). */
  windowMs: number;
  /**
   * Units this call adds: 1 for a request. 0 only checks that the window
   * is not used up yet (tokens are added after the call, with `add`).
   */
  cost: number;
}

/** The outcome of {@linkcode RateStore.take}. */
export type Verdict =
  | { allowed: true }
  | {
    allowed: false;
    /** Which check refused: its index, or -1 for a block (`block`). */
    index: number;
    /** When to retry, in ms. */
    retryAfterMs: number;
  };

/** Where the counters live. */
export interface RateStore {
  /** Checks every window (and the block key, if given), then counts them all or none. */
  take(checks: WindowCheck[], block?: string): Promise<Verdict>;
  /** Adds `amount` to the current window of `key` (tokens used by a finished call). */
  add(key: string, options: { windowMs: number; amount: number }): Promise<void>;
  /** Refuses calls checking `key` as their block for `ms` (a provider said 429). */
  block(key: string, ms: number): Promise<void>;
}

/** Options of {@linkcode createMemoryRateStore}. */
export interface MemoryRateOptions {
  /**
   * Most counters kept (clients × windows); past it, expired ones go, then the oldest.
   * @default 100000
   */
  maxKeys?: number;
  /** The clock (tests). Default `Date.now`. */
  now?: () => number;
}

/** The counter of `key` in the window that holds `now`, and when that window ends. */
function windowOf(
  { key, windowMs }: { key: string; windowMs: number },
  now: number,
): { name: string; endsAt: number } {
  const index = Math.floor(now / windowMs);
  return { name: `${key}:${windowMs}:${index}`, endsAt: (index + 1) * windowMs };
}

/** Counters in this process. */
export function createMemoryRateStore(options: MemoryRateOptions = {}): RateStore {
  const maxKeys = options.maxKeys ?? 100_000;
  const now = options.now ?? (() => Date.now());
  const counters = new Map<string, { count: number; endsAt: number }>();
  const blocks = new Map<string, number>();

  function room(): void {
    if (counters.size < maxKeys) return;
    const t = now();
    for (const [name, c] of counters) if (c.endsAt <= t) counters.delete(name);
    while (counters.size >= maxKeys) counters.delete(counters.keys().next().value!);
  }

  function current(name: string, t: number): number {
    const c = counters.get(name);
    return c && c.endsAt > t ? c.count : 0;
  }

  return {
    take(checks, block) {
      const t = now();
      if (block !== undefined) {
        const until = blocks.get(block);
        if (until !== undefined && until > t) {
          return Promise.resolve({ allowed: false, index: -1, retryAfterMs: until - t });
        }
        if (until !== undefined) blocks.delete(block);
      }
      const windows = checks.map((c) => windowOf(c, t));
      for (let i = 0; i < checks.length; i++) {
        const used = current(windows[i].name, t);
        const { limit, cost } = checks[i];
        if (cost === 0 ? used >= limit : used + cost > limit) {
          return Promise.resolve({ allowed: false, index: i, retryAfterMs: windows[i].endsAt - t });
        }
      }
      for (let i = 0; i < checks.length; i++) {
        if (checks[i].cost === 0) continue;
        const { name, endsAt } = windows[i];
        const c = counters.get(name);
        if (c && c.endsAt > t) c.count += checks[i].cost;
        else {
          room();
          counters.set(name, { count: checks[i].cost, endsAt });
        }
      }
      return Promise.resolve({ allowed: true });
    },
    add(key, { windowMs, amount }) {
      const t = now();
      const { name, endsAt } = windowOf({ key, windowMs }, t);
      const c = counters.get(name);
      if (c && c.endsAt > t) c.count += amount;
      else {
        room();
        counters.set(name, { count: amount, endsAt });
      }
      return Promise.resolve();
    },
    block(key, ms) {
      const until = now() + ms;
      if ((blocks.get(key) ?? 0) < until) blocks.set(key, until);
      // Bounded by the providers configured: one block key each.
      return Promise.resolve();
    },
  };
}

/**
 * KEYS[1]: the block key (or a key never set); KEYS[2..]: one counter per
 * check. ARGV per check: limit, cost, ms to the window's end.
 * Returns {-2} when allowed, else {index (0-based, -1 for the block), ms to retry}.
 */
const TAKE_SCRIPT = `
local blocked = redis.call('PTTL', KEYS[1])
if blocked > 0 then return {-1, blocked} end
for i = 2, #KEYS do
  local limit = tonumber(ARGV[(i - 2) * 3 + 1])
  local cost = tonumber(ARGV[(i - 2) * 3 + 2])
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if (cost == 0 and used >= limit) or (cost > 0 and used + cost > limit) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then ttl = tonumber(ARGV[(i - 2) * 3 + 3]) end
    return {i - 2, ttl}
  end
end
for i = 2, #KEYS do
  local cost = tonumber(ARGV[(i - 2) * 3 + 2])
  if cost > 0 then
    local n = redis.call('INCRBY', KEYS[i], cost)
    if n == cost then redis.call('PEXPIRE', KEYS[i], ARGV[(i - 2) * 3 + 3]) end
  end
end
return {-2}
`;

/** KEYS[1]: counter; ARGV: amount, ms to the window's end. */
const ADD_SCRIPT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
`;

/** KEYS[1]: block key; ARGV[1]: ms. Only ever lengthens a block. */
const BLOCK_SCRIPT = `
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
`;

/** Options of {@linkcode createRedisRateStore}. */
export interface RedisRateOptions {
  /**
   * Key prefix.
   * @default "rune:rate:"
   */
  prefix?: string;
  /** Counts while Redis is down. Default: a fresh memory store. */
  fallback?: RateStore;
  /** The clock (tests). Default `Date.now`. */
  now?: () => number;
}

/** Counters in Redis, shared by every instance; the memory store stands in while it is down. */
export function createRedisRateStore(link: RedisLink, options: RedisRateOptions = {}): RateStore {
  const prefix = options.prefix ?? "rune:rate:";
  const fallback = options.fallback ?? createMemoryRateStore({ now: options.now });
  const now = options.now ?? (() => Date.now());
  return {
    async take(checks, block) {
      if (!link.up()) return await fallback.take(checks, block);
      const t = now();
      const windows = checks.map((c) => windowOf(c, t));
      const keys = [prefix + (block ?? "none:block"), ...windows.map((w) => prefix + w.name)];
      const args = checks.flatMap((c, i) => [
        String(c.limit),
        String(c.cost),
        String(Math.max(1, windows[i].endsAt - t)),
      ]);
      let reply: unknown;
      try {
        reply = await link.run((c) => c.eval(TAKE_SCRIPT, { keys, arguments: args }));
      } catch {
        return await fallback.take(checks, block);
      }
      const [index, ms] = reply as [number, number?];
      if (index === -2) return { allowed: true };
      return { allowed: false, index, retryAfterMs: Number(ms) };
    },
    async add(key, { windowMs, amount }) {
      if (!link.up()) return await fallback.add(key, { windowMs, amount });
      const t = now();
      const { name, endsAt } = windowOf({ key, windowMs }, t);
      try {
        await link.run((c) =>
          c.eval(ADD_SCRIPT, {
            keys: [prefix + name],
            arguments: [String(amount), String(Math.max(1, endsAt - t))],
          })
        );
      } catch {
        await fallback.add(key, { windowMs, amount });
      }
    },
    async block(key, ms) {
      await fallback.block(key, ms);
      if (!link.up()) return;
      try {
        await link.run((c) =>
          c.eval(BLOCK_SCRIPT, {
            keys: [prefix + key],
            arguments: [String(Math.max(1, Math.round(ms)))],
          })
        );
      } catch {
        // Kept in this process at least.
      }
    },
  };
}
