/**
 * Backs off clients that keep presenting wrong tokens.
 *
 * Failures are counted per remote address in fixed windows. Past the limit
 * the address gets 429 with `Retry-After` until its window ends, whatever
 * it presents (so a token cannot be guessed at full speed), and the
 * refusals are logged once per window instead of once per request. The
 * table of addresses is bounded: when full, the entry seen longest ago is
 * forgotten.
 *
 * @module
 */

/** Options of {@linkcode createAuthLimiter}. */
export interface AuthLimiterOptions {
  /**
   * Failed authentications allowed per address and window.
   * @default 10
   */
  maxFailures?: number;
  /**
   * Window length in milliseconds.
   * @default 60000
   */
  windowMs?: number;
  /**
   * Most addresses tracked at once.
   * @default 10000
   */
  maxTracked?: number;
  /** Clock in milliseconds (tests). Default `performance.now`. */
  now?: () => number;
}

/** The verdict for one address. */
export interface AuthVerdict {
  /** Whether the address may try to authenticate now. */
  allowed: boolean;
  /** Seconds until it may try again (when not allowed). */
  retryAfterSeconds: number;
  /** True the first time in a window the address is refused: log this one. */
  firstRefusal: boolean;
}

/** A failed-authentication limiter. */
export interface AuthLimiter {
  /** Whether `address` may try now. */
  check(address: string): AuthVerdict;
  /** Records a failed attempt by `address`. */
  failed(address: string): void;
  /** Addresses tracked now. */
  readonly size: number;
}

interface Entry {
  windowStart: number;
  failures: number;
  logged: boolean;
}

/** Creates a limiter. */
export function createAuthLimiter(options: AuthLimiterOptions = {}): AuthLimiter {
  const maxFailures = options.maxFailures ?? 10;
  const windowMs = options.windowMs ?? 60_000;
  const maxTracked = options.maxTracked ?? 10_000;
  const now = options.now ?? (() => performance.now());
  // Insertion order is recency order: an entry is re-inserted on every failure.
  const entries = new Map<string, Entry>();

  function current(address: string): Entry | undefined {
    const entry = entries.get(address);
    if (entry && now() - entry.windowStart >= windowMs) {
      entries.delete(address);
      return undefined;
    }
    return entry;
  }

  return {
    check(address) {
      const entry = current(address);
      if (!entry || entry.failures < maxFailures) {
        return { allowed: true, retryAfterSeconds: 0, firstRefusal: false };
      }
      const firstRefusal = !entry.logged;
      entry.logged = true;
      const retryAfterSeconds = Math.max(
        1,
        Math.ceil((entry.windowStart + windowMs - now()) / 1000),
      );
      return { allowed: false, retryAfterSeconds, firstRefusal };
    },
    failed(address) {
      const entry = current(address) ?? { windowStart: now(), failures: 0, logged: false };
      entry.failures++;
      entries.delete(address);
      entries.set(address, entry);
      if (entries.size > maxTracked) entries.delete(entries.keys().next().value!);
    },
    get size() {
      return entries.size;
    },
  };
}
