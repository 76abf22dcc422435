/**
 * Where tasks live: their state, owner, expiry and final outcome.
 *
 * A task is a long tool call that outlives its request (MCP tasks, both the
 * 2025-11-25 task-augmented `tools/call` and the 2026-07-28
 * `io.modelcontextprotocol/tasks` extension). The store is daemon-wide, so a
 * client can reconnect and still poll; it is bounded (tasks in all, active
 * tasks per owner) and forgets each task when its TTL has passed. The
 * interface is asynchronous so a shared store (Redis) can take its place.
 *
 * @module
 */

/** A task's status, as both protocol eras name them. */
export type TaskStatus = "working" | "input_required" | "completed" | "failed" | "cancelled";

/** True for the statuses a task never leaves. */
export function isTerminal(status: TaskStatus): boolean {
  return status === "completed" || status === "failed" || status === "cancelled";
}

/** One task as stored. */
export interface TaskRecord {
  /** Unguessable id (a random UUID). */
  taskId: string;
  /** Who may see, read and cancel it: an identity (`token:N`) or a session. */
  owner: string;
  /** The tool it runs. */
  tool: string;
  /** Current status. */
  status: TaskStatus;
  /** What is happening, for people. */
  statusMessage?: string;
  /** When it was created (epoch ms). */
  createdAt: number;
  /** When it last changed (epoch ms). */
  lastUpdatedAt: number;
  /** How long it is kept after creation, in ms. */
  ttlMs: number;
  /** Suggested polling interval, in ms. */
  pollIntervalMs: number;
  /** The tool's result, once `completed` (an `isError` result counts as completed). */
  result?: Record<string, unknown>;
  /** The JSON-RPC error, once `failed`. */
  error?: { code: number; message: string; data?: unknown };
}

/** Bounds of a store. */
export interface TaskLimits {
  /**
   * Most tasks kept at once (any status); more are refused.
   * @default 1024
   */
  maxTasks?: number;
  /**
   * Most unfinished tasks of one owner; more are refused.
   * @default 16
   */
  maxActivePerOwner?: number;
}

/** The store every server instance of the daemon shares. */
export interface TaskStore {
  /** Stores a new task; throws {@linkcode TaskLimitError} when a bound is reached. */
  create(record: TaskRecord): Promise<void>;
  /** The task, if it exists, belongs to `owner` and has not expired. */
  get(taskId: string, owner: string): Promise<TaskRecord | undefined>;
  /** Applies `change` unless the task is already terminal; returns the stored record. */
  update(taskId: string, change: Partial<TaskRecord>): Promise<TaskRecord | undefined>;
  /** The owner's tasks, oldest first. */
  list(owner: string): Promise<TaskRecord[]>;
  /** Resolves when the task changes (or at once when it is terminal), for `tasks/result`. */
  changed(taskId: string, signal?: AbortSignal): Promise<void>;
}

/** A store bound was reached: no new task. */
export class TaskLimitError extends Error {}

/** An in-process store (the default): bounded, expired tasks forgotten on access and by a sweep. */
export function createMemoryTaskStore(
  limits: TaskLimits & { now?: () => number } = {},
): TaskStore {
  const maxTasks = limits.maxTasks ?? 1024;
  const maxActive = limits.maxActivePerOwner ?? 16;
  const now = limits.now ?? (() => Date.now());
  const tasks = new Map<string, TaskRecord>();
  const waiters = new Map<string, Set<() => void>>();

  function live(taskId: string): TaskRecord | undefined {
    const record = tasks.get(taskId);
    if (record && now() - record.createdAt > record.ttlMs) {
      tasks.delete(taskId);
      wake(taskId);
      return undefined;
    }
    return record;
  }

  function sweep(): void {
    for (const taskId of [...tasks.keys()]) live(taskId);
  }

  function wake(taskId: string): void {
    const set = waiters.get(taskId);
    waiters.delete(taskId);
    for (const resolve of set ?? []) resolve();
  }

  return {
    create(record) {
      sweep();
      if (tasks.size >= maxTasks) {
        return Promise.reject(
          new TaskLimitError(
            `Too many tasks (limit ${maxTasks}): wait for some to finish or expire`,
          ),
        );
      }
      const active = [...tasks.values()].filter((t) =>
        t.owner === record.owner && !isTerminal(t.status)
      );
      if (active.length >= maxActive) {
        return Promise.reject(
          new TaskLimitError(
            `Too many unfinished tasks for this client (limit ${maxActive}): wait for one to finish or cancel one`,
          ),
        );
      }
      tasks.set(record.taskId, { ...record });
      return Promise.resolve();
    },
    get(taskId, owner) {
      const record = live(taskId);
      return Promise.resolve(record && record.owner === owner ? { ...record } : undefined);
    },
    update(taskId, change) {
      const record = live(taskId);
      if (!record) return Promise.resolve(undefined);
      if (!isTerminal(record.status)) {
        Object.assign(record, change, { lastUpdatedAt: now() });
        wake(taskId);
      }
      return Promise.resolve({ ...record });
    },
    list(owner) {
      sweep();
      return Promise.resolve(
        [...tasks.values()].filter((t) => t.owner === owner).sort((a, b) =>
          a.createdAt - b.createdAt
        )
          .map((t) => ({ ...t })),
      );
    },
    changed(taskId, signal) {
      const record = live(taskId);
      if (!record || isTerminal(record.status)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        // Bounded by the task's expiry, so a waiter never outlives the task.
        const timer = setTimeout(() => {
          live(taskId);
          done();
        }, Math.max(0, record.createdAt + record.ttlMs - now()) + 1);
        // The wait alone must not keep the daemon running.
        Deno.unrefTimer(timer);
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
        signal?.addEventListener("abort", onAbort, { once: true });
        let set = waiters.get(taskId);
        if (!set) waiters.set(taskId, set = new Set());
        set.add(done);
      });
    },
  };
}
