/**
 * The failed-authentication limiter with an injected clock: exact counts at
 * the limit, `Retry-After` seconds, window expiry, one logged refusal per
 * window, and a bounded table that forgets the address seen longest ago.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createAuthLimiter } from "../../src/transports/auth_limiter.ts";

/** A clock the test moves by hand. */
function manualClock(start = 1_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

Deno.test("an address is allowed up to the limit of failures and refused after", () => {
  const clock = manualClock();
  const limiter = createAuthLimiter({ maxFailures: 3, windowMs: 60_000, now: clock.now });
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(limiter.check("10.0.0.1"), {
      allowed: true,
      retryAfterSeconds: 0,
      firstRefusal: false,
    }, `attempt ${i + 1}`);
    limiter.failed("10.0.0.1");
  }
  assert.deepEqual(limiter.check("10.0.0.1"), {
    allowed: false,
    retryAfterSeconds: 60,
    firstRefusal: true,
  });
  // Another address is not affected.
  assert.equal(limiter.check("10.0.0.2").allowed, true);
});

Deno.test("Retry-After counts down to the end of the window, never below one second", () => {
  const clock = manualClock();
  const limiter = createAuthLimiter({ maxFailures: 1, windowMs: 10_000, now: clock.now });
  limiter.failed("a");
  assert.equal(limiter.check("a").retryAfterSeconds, 10);
  clock.advance(2_500);
  assert.equal(limiter.check("a").retryAfterSeconds, 8, "7.5 s left, rounded up");
  clock.advance(7_499);
  assert.equal(limiter.check("a").retryAfterSeconds, 1, "1 ms left");
});

Deno.test("the window expires: the address starts again with a clean count", () => {
  const clock = manualClock();
  const limiter = createAuthLimiter({ maxFailures: 2, windowMs: 5_000, now: clock.now });
  limiter.failed("a");
  clock.advance(4_000);
  // The window started at the first failure: this one is still in it.
  limiter.failed("a");
  assert.equal(limiter.check("a").allowed, false);
  clock.advance(999);
  assert.equal(limiter.check("a").allowed, false, "4,999 ms after the first failure");
  clock.advance(1);
  assert.equal(limiter.check("a").allowed, true, "5,000 ms after the first failure");
  assert.equal(limiter.size, 0, "the expired entry is dropped");
  limiter.failed("a");
  assert.equal(limiter.check("a").allowed, true, "one failure in the new window");
  limiter.failed("a");
  assert.deepEqual(limiter.check("a"), {
    allowed: false,
    retryAfterSeconds: 5,
    firstRefusal: true,
  });
});

Deno.test("the first refusal in a window is flagged once, and again in the next window", () => {
  const clock = manualClock();
  const limiter = createAuthLimiter({ maxFailures: 1, windowMs: 1_000, now: clock.now });
  limiter.failed("a");
  const flags = Array.from({ length: 5 }, () => limiter.check("a").firstRefusal);
  assert.deepEqual(flags, [true, false, false, false, false]);
  clock.advance(1_000);
  limiter.failed("a");
  assert.equal(limiter.check("a").firstRefusal, true);
  assert.equal(limiter.check("a").firstRefusal, false);
});

Deno.test("the table is bounded: when full, the address that failed longest ago is forgotten", () => {
  const clock = manualClock();
  const limiter = createAuthLimiter({ maxFailures: 1, maxTracked: 3, now: clock.now });
  for (const address of ["a", "b", "c"]) limiter.failed(address);
  assert.equal(limiter.size, 3);
  // "a" fails again: it becomes the most recent, so "b" is the oldest now.
  clock.advance(1);
  limiter.failed("a");
  limiter.failed("d");
  assert.equal(limiter.size, 3);
  assert.equal(limiter.check("b").allowed, true, "b was evicted");
  for (const address of ["a", "c", "d"]) {
    assert.equal(limiter.check(address).allowed, false, `${address} is still tracked`);
  }
});

Deno.test("checks alone record nothing", () => {
  const limiter = createAuthLimiter({ maxFailures: 1 });
  for (let i = 0; i < 100; i++) assert.equal(limiter.check("a").allowed, true);
  assert.equal(limiter.size, 0);
});
