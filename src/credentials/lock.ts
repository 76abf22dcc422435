/**
 * A lock file that serialises updates of the credential store across
 * processes (two `rune` commands, or a daemon refreshing a token while the
 * user signs in again), so neither loses the other's update.
 *
 * The lock is a file created with `O_CREAT|O_EXCL` (`createNew`); its
 * holder keeps its modification time fresh (a heartbeat) while it holds
 * it, for instance during a token refresh. A lock whose heartbeat stopped
 * for longer than `staleMs` belongs to a process that died: it is taken
 * over by renaming it away first (atomic, so two waiters cannot both take
 * it over). Waiting is bounded by `timeoutMs`. Within one process, callers
 * queue on a promise chain instead of polling the file.
 *
 * @module
 */

import { StoreLockedError } from "./errors.ts";
import { writeAll } from "../bytes.ts";

/** Options of {@linkcode withLock}. */
export interface LockOptions {
  /** Longest wait for another process's lock, in ms. @default 15000 */
  timeoutMs?: number;
  /** A lock whose heartbeat is older than this is stale, in ms. @default 30000 */
  staleMs?: number;
  /** Aborts the wait. */
  signal?: AbortSignal;
}

/** Default of {@linkcode LockOptions.timeoutMs}. */
export const DEFAULT_LOCK_TIMEOUT_MS = 15_000;
/** Default of {@linkcode LockOptions.staleMs}. */
export const DEFAULT_STALE_LOCK_MS = 30_000;

// In-process queue per lock path: one holder at a time without touching the disk.
const queues = new Map<string, Promise<unknown>>();

/** Runs `task` while holding the lock file at `path`; resolves to its result. */
export async function withLock<T>(
  path: string,
  task: () => Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  const previous = queues.get(path) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => release = resolve);
  const chained = previous.then(() => mine);
  queues.set(path, chained);
  try {
    await previous;
    const held = await acquire(path, options);
    try {
      return await task();
    } finally {
      await held.release();
    }
  } finally {
    release();
    if (queues.get(path) === chained) queues.delete(path);
  }
}

interface Held {
  release(): Promise<void>;
}

async function acquire(path: string, options: LockOptions): Promise<Held> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const staleMs = options.staleMs ?? DEFAULT_STALE_LOCK_MS;
  const token = crypto.randomUUID();
  const deadline = Date.now() + timeoutMs;
  let pause = 5;
  while (true) {
    options.signal?.throwIfAborted();
    try {
      const file = await Deno.open(path, { createNew: true, write: true, mode: 0o600 });
      try {
        await writeAll(file, new TextEncoder().encode(`${Deno.pid} ${token}\n`));
      } finally {
        file.close();
      }
      return heldLock(path, token, staleMs);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    if (await breakIfStale(path, staleMs)) continue;
    if (Date.now() >= deadline) {
      throw new StoreLockedError(
        `The credential store is locked by another rune process (${path}) and stayed locked ` +
          `for ${timeoutMs / 1000} s. Try again; if no other rune command is running, delete ` +
          `that lock file.`,
      );
    }
    // Polling is the only way to wait for a file another process owns; back off to 100 ms.
    await sleep(pause, options.signal);
    pause = Math.min(pause * 2, 100);
  }
}

function heldLock(path: string, token: string, staleMs: number): Held {
  // The heartbeat keeps the lock fresh while a long task (a token refresh) runs.
  const timer = setInterval(() => {
    const now = new Date();
    Deno.utime(path, now, now).catch(() => {});
  }, Math.max(250, Math.floor(staleMs / 4)));
  return {
    async release() {
      clearInterval(timer);
      // Remove the lock only while it is still ours (never another process's fresh lock).
      const content = await Deno.readTextFile(path).catch(() => "");
      if (content.includes(token)) await Deno.remove(path).catch(() => {});
    },
  };
}

/** Takes over a lock whose heartbeat stopped; true when the caller should try again at once. */
async function breakIfStale(path: string, staleMs: number): Promise<boolean> {
  let info: Deno.FileInfo;
  let content: string;
  try {
    info = await Deno.stat(path);
    content = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
  const age = Date.now() - (info.mtime?.getTime() ?? 0);
  if (age <= staleMs) return false;
  // Rename first: of several waiters, exactly one succeeds, and it then checks it moved the
  // stale lock it judged (not a fresh one created in between), putting a fresh one back.
  const aside = `${path}.stale-${crypto.randomUUID()}`;
  try {
    await Deno.rename(path, aside);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
  const moved = await Deno.readTextFile(aside).catch(() => "");
  if (moved !== content) await Deno.link(aside, path).catch(() => {});
  await Deno.remove(aside).catch(() => {});
  return true;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener("abort", aborted, { once: true });
  });
}
