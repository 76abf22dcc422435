/**
 * Tasks in Redis (`--redis`): every Rune instance behind a load balancer
 * sees every task, so a stateless 2026-07-28 client whose `tasks/get` lands
 * on another instance than its `tools/call` still gets its task, and a
 * `tasks/cancel` on any instance reaches the one running the call (the
 * runner watches its task through {@linkcode TaskStore.changed}, which
 * Redis pub/sub feeds).
 *
 * Layout, under a prefix (default `rune:tasks:`):
 * - `task:<id>`: a hash, one field per record field, each JSON-encoded,
 *   expiring with the task's TTL;
 * - `owner:<owner>`: a sorted set of the owner's task ids by creation time;
 * - `active:<owner>`: the owner's unfinished task ids;
 * - `all`: every task id by expiry time (for the global bound);
 * - channel `changed`: task ids, published on every update.
 *
 * Creating (with both bounds) and updating (unless terminal) are Lua
 * scripts, atomic in Redis. Values are never decoded in Lua (its JSON
 * library loses number precision), only compared.
 *
 * @module
 */

import type { RedisClient, RedisLink } from "../../redis.ts";
import {
  isTerminal,
  TaskLimitError,
  type TaskLimits,
  type TaskRecord,
  type TaskStore,
} from "./store.ts";

/** Options of {@linkcode createRedisTaskStore}. */
export interface RedisTaskOptions extends TaskLimits {
  /**
   * Key and channel prefix.
   * @default "rune:tasks:"
   */
  prefix?: string;
}

/**
 * KEYS: task, owner set, active set, all set. ARGV: task id, now, expiry (epoch ms), ttl ms,
 * max tasks, max active, then field/value pairs. Returns "ok", "tasks" or "active".
 */
const CREATE_SCRIPT = `
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then return 'tasks' end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('EXISTS', (KEYS[1]:gsub('[^:]+$', id))) == 0 then redis.call('SREM', KEYS[3], id) end
end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[6]) then return 'active' end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
for _, key in ipairs({KEYS[2], KEYS[3]}) do
  if redis.call('PTTL', key) < tonumber(ARGV[4]) then redis.call('PEXPIRE', key, ARGV[4]) end
end
return 'ok'
`;

/**
 * KEYS: task, active set of its owner (unknown until read: passed as the prefix). ARGV: task
 * id, channel, then field/value pairs. Applies them unless the task is terminal; publishes.
 * Returns the hash (flat), or nil when the task is gone.
 */
const UPDATE_SCRIPT = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return nil end
if status ~= '"completed"' and status ~= '"failed"' and status ~= '"cancelled"' then
  local fields = {}
  for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
  local now = redis.call('HGET', KEYS[1], 'status')
  if now == '"completed"' or now == '"failed"' or now == '"cancelled"' then
    local owner = cjson.decode(redis.call('HGET', KEYS[1], 'owner'))
    redis.call('SREM', KEYS[2] .. owner, ARGV[1])
  end
  redis.call('PUBLISH', ARGV[2], ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
`;

/** A record as hash fields (each value JSON-encoded). */
function toFields(record: Partial<TaskRecord>): string[] {
  const fields: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (value !== undefined) fields.push(key, JSON.stringify(value));
  }
  return fields;
}

/** A record from hash fields. */
function fromHash(hash: Record<string, string>): TaskRecord | undefined {
  if (!hash || hash.taskId === undefined) return undefined;
  const record: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(hash)) record[key] = JSON.parse(value);
  return record as unknown as TaskRecord;
}

/** A flat `[k, v, k, v]` reply as an object. */
function pairs(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const list = flat as string[] | null;
  for (let i = 0; list && i + 1 < list.length; i += 2) out[list[i]] = list[i + 1];
  return out;
}

/** A store in Redis shared by every instance (see the module doc). */
export function createRedisTaskStore(link: RedisLink, options: RedisTaskOptions = {}): TaskStore {
  const prefix = options.prefix ?? "rune:tasks:";
  const maxTasks = options.maxTasks ?? 1024;
  const maxActive = options.maxActivePerOwner ?? 16;
  const channel = `${prefix}changed`;
  const waiters = new Map<string, Set<() => void>>();
  let listening: Promise<void> | undefined;

  function listen(): Promise<void> {
    listening ??= (async () => {
      const sub: RedisClient = await link.subscriber();
      await sub.subscribe(channel, (taskId: string) => {
        const set = waiters.get(taskId);
        waiters.delete(taskId);
        for (const wake of set ?? []) wake();
      });
    })();
    listening.catch(() => (listening = undefined));
    return listening;
  }

  async function read(taskId: string): Promise<TaskRecord | undefined> {
    const hash = await link.run((c) => c.hGetAll(`${prefix}task:${taskId}`));
    const record = fromHash(hash as Record<string, string>);
    if (record && Date.now() - record.createdAt > record.ttlMs) return undefined;
    return record;
  }

  return {
    async create(record) {
      const keys = [
        `${prefix}task:${record.taskId}`,
        `${prefix}owner:${record.owner}`,
        `${prefix}active:${record.owner}`,
        `${prefix}all`,
      ];
      const now = Date.now();
      const verdict = await link.run((c) =>
        c.eval(CREATE_SCRIPT, {
          keys,
          arguments: [
            record.taskId,
            String(now),
            String(record.createdAt + record.ttlMs),
            String(record.ttlMs),
            String(maxTasks),
            String(maxActive),
            ...toFields(record),
          ],
        })
      );
      if (verdict === "tasks") {
        throw new TaskLimitError(
          `Too many tasks (limit ${maxTasks}): wait for some to finish or expire`,
        );
      }
      if (verdict === "active") {
        throw new TaskLimitError(
          `Too many unfinished tasks for this client (limit ${maxActive}): wait for one to finish or cancel one`,
        );
      }
      // Ready to hear about changes before anyone waits for them.
      await listen();
    },
    async get(taskId, owner) {
      const record = await read(taskId);
      return record && record.owner === owner ? record : undefined;
    },
    async update(taskId, change) {
      const fields = toFields({ ...change, lastUpdatedAt: Date.now() });
      const reply = await link.run((c) =>
        c.eval(UPDATE_SCRIPT, {
          keys: [`${prefix}task:${taskId}`, `${prefix}active:`],
          arguments: [taskId, channel, ...fields],
        })
      );
      return reply === null ? undefined : fromHash(pairs(reply));
    },
    async list(owner) {
      const ids = await link.run((c) => c.zRange(`${prefix}owner:${owner}`, 0, -1));
      const records = await Promise.all((ids as string[]).map((id) => read(id)));
      return records.filter((r): r is TaskRecord => r !== undefined && r.owner === owner)
        .sort((a, b) => a.createdAt - b.createdAt);
    },
    async changed(taskId, signal) {
      await listen();
      // Subscribed first, then read: a change between the two is not missed.
      const wait = new Promise<void>((resolve, reject) => {
        let set = waiters.get(taskId);
        if (!set) waiters.set(taskId, set = new Set());
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          clearTimeout(timer);
          waiters.get(taskId)?.delete(done);
          reject(signal!.reason);
        };
        // A lost message (a reconnect) must not hang a waiter: look again now and then.
        const timer = setTimeout(() => {
          waiters.get(taskId)?.delete(done);
          done();
        }, 5_000);
        Deno.unrefTimer(timer);
        if (signal?.aborted) return onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        set.add(done);
      });
      const record = await read(taskId).catch(() => undefined);
      if (!record || isTerminal(record.status)) {
        const set = waiters.get(taskId);
        for (const wake of [...(set ?? [])]) {
          set!.delete(wake);
          wake();
        }
      }
      return await wait;
    },
  };
}
