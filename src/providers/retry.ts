/**
 * Retries a provider request before its first token: exponential backoff
 * with full jitter, honouring the server's `retry-after`, for the failures a
 * retry can cure (429, 529, 5xx, a refused or reset connection). Once a
 * token has been relayed nothing is retried (the client would see text
 * twice), and an abort ends the wait at once.
 *
 * @module
 */

/** Retry policy. */
export interface RetryOptions {
  /**
   * Retries after the first attempt.
   * @default 2
   */
  maxRetries?: number;
  /**
   * First backoff step in milliseconds (doubled each time, with full jitter).
   * @default 500
   */
  baseDelayMs?: number;
  /**
   * Longest wait between attempts, `retry-after` included; a longer
   * `retry-after` is not waited for (the error is returned instead).
   * @default 30000
   */
  maxDelayMs?: number;
  /** Random source in [0, 1) (tests). Default `Math.random`. */
  random?: () => number;
}

/** What {@linkcode withRetries} needs to know about a failure. */
export interface RetryJudge {
  /** Whether a retry can cure `error`. */
  retryable(error: unknown): boolean;
  /** The server's requested wait for `error`, in milliseconds, if it gave one. */
  retryAfterMs?(error: unknown): number | undefined;
  /** Called before each wait (for logs and metrics). */
  onRetry?(error: unknown, attempt: number, delayMs: number): void;
}

/**
 * Runs `attempt` until it succeeds, fails for good, or the retries are used
 * up; returns its result or throws its last error.
 */
export async function withRetries<T>(
  attempt: (n: number) => Promise<T>,
  judge: RetryJudge,
  options: RetryOptions & { signal?: AbortSignal } = {},
): Promise<T> {
  const maxRetries = options.maxRetries ?? 2;
  const base = options.baseDelayMs ?? 500;
  const maxDelay = options.maxDelayMs ?? 30_000;
  const random = options.random ?? Math.random;
  for (let n = 0;; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (n >= maxRetries || options.signal?.aborted || !judge.retryable(error)) throw error;
      const asked = judge.retryAfterMs?.(error);
      if (asked !== undefined && asked > maxDelay) throw error;
      const delay = asked ?? Math.min(maxDelay, random() * base * 2 ** n);
      judge.onRetry?.(error, n + 1, delay);
      await sleep(delay, options.signal);
    }
  }
}

/** Parses `retry-after` (seconds or an HTTP date) into milliseconds from now. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
