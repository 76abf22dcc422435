/**
 * The four deadlines of an upstream call (connect, first token, idle
 * between chunks, total), served by one timer per provider.
 *
 * Every HTTP provider runs each call under a {@linkcode Deadline}: the call
 * arms the phase it enters, and when the phase or the whole call runs out,
 * the deadline's signal aborts with a {@linkcode ProviderTimeoutError} that
 * names the provider, the phase and the flag that raises it.
 *
 * @module
 */

import { ProviderTimeoutError, type TimeoutPhase } from "./errors.ts";

/** Deadlines of one call, in milliseconds. */
export interface Timeouts {
  /** Until the response headers arrive. Default 10 s. */
  connectMs: number;
  /** From the headers to the first streamed chunk (model loading). Default 300 s. */
  firstTokenMs: number;
  /** Between two streamed chunks. Default 60 s. */
  idleMs: number;
  /** Whole call. Default 1 800 s. */
  totalMs: number;
}

/** Default deadlines, generous enough for large models on slow machines. */
export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = {
  connectMs: 10_000,
  firstTokenMs: 300_000,
  idleMs: 60_000,
  totalMs: 1_800_000,
};

/**
 * One call's deadlines: a watchdog re-armed at each phase plus the total
 * limit, merged with the caller's signal.
 */
export interface Deadline {
  /** Aborts with the caller's reason or a {@linkcode ProviderTimeoutError}. */
  readonly signal: AbortSignal;
  /** Enters `phase`: its limit counts from now (the total limit keeps running). */
  arm(phase: TimeoutPhase): void;
  /** Stops watching; call it once the call has ended. */
  dispose(): void;
}

/** A call's deadline as {@linkcode DeadlineClock} sees it. */
interface ClockEntry {
  /** When the call expires (`performance.now()` time). */
  dueAt: number;
  /** Aborts the call; the clock has already dropped it. */
  expire(): void;
}

/** Longest delay `setTimeout` takes as given; longer ones fire at once. */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

/**
 * One timer for the deadlines of all of a provider's calls in flight, set
 * for the earliest one. Timers were a visible part of each call's CPU
 * time; with calls overlapping, the timer is set once and calls only join
 * and leave a set. It is cleared when no call is left, so it never keeps
 * the process alive.
 */
export class DeadlineClock {
  #entries = new Set<ClockEntry>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  /** Starts watching `entry`. */
  add(entry: ClockEntry): void {
    this.#entries.add(entry);
    this.moved(entry);
  }

  /** Stops watching `entry`. */
  remove(entry: ClockEntry): void {
    this.#entries.delete(entry);
    if (this.#entries.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
  }

  /** Tells the clock `entry.dueAt` changed; a later deadline needs no new timer. */
  moved(entry: ClockEntry): void {
    // An entry already expired or removed must not set a timer nobody clears.
    if (entry.dueAt >= this.#timerAt || !this.#entries.has(entry)) return;
    clearTimeout(this.#timer);
    this.#timerAt = entry.dueAt;
    const delay = Math.min(Math.max(entry.dueAt - performance.now(), 0), MAX_TIMER_DELAY);
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    const expired: ClockEntry[] = [];
    let next: ClockEntry | undefined;
    for (const entry of this.#entries) {
      if (entry.dueAt <= now) expired.push(entry);
      else if (next === undefined || entry.dueAt < next.dueAt) next = entry;
    }
    for (const entry of expired) this.#entries.delete(entry);
    if (next !== undefined) this.moved(next);
    // Last, so whatever aborting runs sees the clock consistent.
    for (const entry of expired) entry.expire();
  }
}

/** Options of {@linkcode createDeadline}. */
export interface DeadlineOptions {
  /** The provider's display name for messages, e.g. `Ollama`. */
  name: string;
  /** The provider's address for messages, e.g. `127.0.0.1:11434`. */
  address: string;
  /** The limits of each phase. */
  timeouts: Timeouts;
  /** The caller's signal; its abort aborts the deadline's signal with the same reason. */
  signal?: AbortSignal;
}

/** Starts the deadlines of one call on `clock`; the call starts in the `connect` phase unarmed. */
export function createDeadline(clock: DeadlineClock, options: DeadlineOptions): Deadline {
  const { timeouts, signal } = options;
  const controller = new AbortController();
  const limits: Record<TimeoutPhase, number> = {
    connect: timeouts.connectMs,
    "first-token": timeouts.firstTokenMs,
    idle: timeouts.idleMs,
    total: timeouts.totalMs,
  };
  const totalAt = performance.now() + limits.total;
  let phase: TimeoutPhase = "connect";
  let phaseAt = Infinity;
  const entry: ClockEntry = {
    dueAt: totalAt,
    expire() {
      // The earlier deadline is the one that ran out.
      const which = phaseAt <= totalAt ? phase : "total";
      controller.abort(timeoutError(options, which, limits[which]));
    },
  };
  // Forwarding the caller's abort costs less than `AbortSignal.any` per call.
  const forward = () => controller.abort(signal?.reason);
  if (signal?.aborted) forward();
  else signal?.addEventListener("abort", forward, { once: true });
  clock.add(entry);
  return {
    signal: controller.signal,
    arm(next) {
      phase = next;
      phaseAt = performance.now() + limits[next];
      entry.dueAt = Math.min(phaseAt, totalAt);
      clock.moved(entry);
    },
    dispose() {
      signal?.removeEventListener("abort", forward);
      clock.remove(entry);
    },
  };
}

function timeoutError(
  { name, address }: DeadlineOptions,
  phase: TimeoutPhase,
  ms: number,
): ProviderTimeoutError {
  const seconds = `${ms / 1000}s`;
  const text: Record<TimeoutPhase, string> = {
    connect:
      `${name} at ${address} did not answer within ${seconds} (connect timeout): is it overloaded or hung? Retry, or raise --connect-timeout.`,
    "first-token":
      `${name} at ${address} sent nothing back within ${seconds} (first-token timeout): the model may still be loading, or the server is busy with other requests; retry, or raise --first-token-timeout.`,
    idle:
      `${name} at ${address} went silent for ${seconds} in the middle of a reply (idle timeout): it may be stuck or overloaded; retry, or raise --idle-timeout.`,
    total:
      `The call to ${name} at ${address} took longer than ${seconds} (total timeout): ask for fewer tokens, or raise --total-timeout.`,
  };
  return new ProviderTimeoutError(phase, ms, text[phase]);
}
