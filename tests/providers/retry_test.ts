/**
 * Retries before the first token: counts, backoff with jitter, retry-after,
 * giving up on errors a retry cannot cure, and aborts during a wait.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseRetryAfter, withRetries } from "../../src/providers/retry.ts";

class Busy extends Error {
  constructor(readonly retryAfter?: number) {
    super("busy");
  }
}

const judge = {
  retryable: (e: unknown) => e instanceof Busy,
  retryAfterMs: (e: unknown) => (e as Busy).retryAfter,
};

Deno.test("withRetries retries retryable failures up to the limit, then throws the last", async () => {
  const waits: number[] = [];
  let calls = 0;
  await assert.rejects(
    withRetries(
      () => {
        calls++;
        return Promise.reject(new Busy());
      },
      { ...judge, onRetry: (_e, _n, ms) => waits.push(ms) },
      {
        maxRetries: 3,
        baseDelayMs: 1,
        random: () => 0.5,
      },
    ),
    Busy,
  );
  assert.equal(calls, 4);
  // Full jitter over a doubling base: 0.5 × 1, 2, 4 ms.
  assert.deepEqual(waits, [0.5, 1, 2]);
});

Deno.test("withRetries returns the first success and honours retry-after", async () => {
  const waits: number[] = [];
  const result = await withRetries(
    (n) => n < 1 ? Promise.reject(new Busy(3)) : Promise.resolve(n),
    {
      ...judge,
      onRetry: (_e, _n, ms) => waits.push(ms),
    },
  );
  assert.equal(result, 1);
  assert.deepEqual(waits, [3]);
});

Deno.test("withRetries does not retry what a retry cannot cure, nor waits longer than allowed", async () => {
  let calls = 0;
  await assert.rejects(
    withRetries(() => {
      calls++;
      return Promise.reject(new TypeError("bad request"));
    }, judge),
    TypeError,
  );
  assert.equal(calls, 1);
  calls = 0;
  await assert.rejects(
    withRetries(
      () => {
        calls++;
        return Promise.reject(new Busy(60_000));
      },
      judge,
      { maxDelayMs: 1000 },
    ),
    Busy,
  );
  assert.equal(calls, 1);
});

Deno.test("an abort ends the wait between attempts at once", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const pending = withRetries(() => Promise.reject(new Busy(10_000)), {
    ...judge,
    // The wait is about to start: abort it.
    onRetry: () => queueMicrotask(() => controller.abort(new Error("stop"))),
  }, { signal: controller.signal, maxDelayMs: 20_000 });
  await assert.rejects(pending, /stop/);
  assert.ok(performance.now() - started < 5_000, "did not wait out the 10 s retry-after");
});

Deno.test("retry-after is read as seconds or as an HTTP date", () => {
  assert.equal(parseRetryAfter("2"), 2000);
  assert.equal(parseRetryAfter("0.5"), 500);
  assert.equal(
    parseRetryAfter("Wed, 21 Oct 2026 07:28:05 GMT", Date.parse("Wed, 21 Oct 2026 07:28:00 GMT")),
    5000,
  );
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
});
