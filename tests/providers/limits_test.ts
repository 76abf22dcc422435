/**
 * Rate limits in process: the memory counters at the boundary (with a fixed
 * clock), windows aligned to the clock, all-or-nothing checks, the bound on
 * counters; provider rpm and tpm refusals with retryAfter, and a provider's
 * 429 holding later calls back before they reach it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RateLimitError } from "../../src/providers/errors.ts";
import { createMemoryRateStore } from "../../src/providers/limiter.ts";
import {
  limitData,
  LocalRateLimitError,
  parseRate,
  withLimits,
} from "../../src/providers/limits.ts";
import { collect } from "../../src/providers/types.ts";
import { createFakeProvider } from "../fake_provider.ts";

Deno.test("rates: N/s, N/m and N/h parse; anything else is a usage error", () => {
  assert.deepEqual(parseRate("10/s"), { limit: 10, windowMs: 1_000, text: "10/s" });
  assert.deepEqual(parseRate("600/m"), { limit: 600, windowMs: 60_000, text: "600/m" });
  assert.deepEqual(parseRate("5/h"), { limit: 5, windowMs: 3_600_000, text: "5/h" });
  for (const bad of ["0/m", "10", "10/d", "-1/s", "1.5/s", "ten/m"]) {
    assert.throws(() => parseRate(bad), /--rate-limit needs a rate such as 10\/s/);
  }
});

Deno.test("rate store: exactly the limit passes in a window; the next waits for its end", async () => {
  let now = 60_000 * 1000 + 15_000; // 15 s into a minute.
  const store = createMemoryRateStore({ now: () => now });
  const check = { key: "client:a", limit: 3, windowMs: 60_000, cost: 1 };
  for (let i = 0; i < 3; i++) assert.deepEqual(await store.take([check]), { allowed: true });
  assert.deepEqual(await store.take([check]), { allowed: false, index: 0, retryAfterMs: 45_000 });
  // A refused call consumes nothing, another client has its own count.
  assert.deepEqual(await store.take([check]), { allowed: false, index: 0, retryAfterMs: 45_000 });
  assert.deepEqual(await store.take([{ ...check, key: "client:b" }]), { allowed: true });
  now += 44_999;
  assert.equal((await store.take([check])).allowed, false);
  now += 1; // The next minute.
  for (let i = 0; i < 3; i++) assert.deepEqual(await store.take([check]), { allowed: true });
  assert.equal((await store.take([check])).allowed, false);
});

Deno.test("rate store: checks are all or nothing, and counters are bounded", async () => {
  const now = 3_600_000 * 500;
  const store = createMemoryRateStore({ now: () => now, maxKeys: 2 });
  const rpm = { key: "p:rpm", limit: 5, windowMs: 60_000, cost: 1 };
  const tpm = { key: "p:tpm", limit: 100, windowMs: 60_000, cost: 0 };
  await store.add("p:tpm", { windowMs: 60_000, amount: 100 });
  assert.deepEqual(await store.take([rpm, tpm]), {
    allowed: false,
    index: 1,
    retryAfterMs: 60_000,
  });
  // The refused call did not count against rpm: five still pass once tokens are free.
  const fresh = createMemoryRateStore({ now: () => now, maxKeys: 2 });
  for (let i = 0; i < 5; i++) assert.equal((await fresh.take([rpm, tpm])).allowed, true);
  assert.equal((await fresh.take([rpm, tpm])).allowed, false);
  // With room for two counters, a third one pushes the oldest out.
  await fresh.take([{ ...rpm, key: "c:2" }]);
  assert.equal((await fresh.take([rpm])).allowed, false, "two counters fit");
  await fresh.take([{ ...rpm, key: "c:3" }]);
  assert.equal((await fresh.take([rpm])).allowed, true, "p:rpm was forgotten");
});

Deno.test("provider limits: rpm refuses with the limit and retryAfter, before the provider", async () => {
  const fake = createFakeProvider({ id: "cloud" });
  const limited = withLimits(fake, { store: createMemoryRateStore(), limits: { rpm: 2 } });
  await collect(limited.generate({ model: "m1", prompt: "a" }));
  await limited.embed({ model: "m1", input: "x" });
  const calls = fake.calls.length;
  await assert.rejects(collect(limited.generate({ model: "m1", prompt: "b" })), (error) => {
    assert.ok(error instanceof LocalRateLimitError);
    assert.match(
      error.message,
      /^Rate limit reached for provider "cloud": at most 2 requests per minute \(rpm in the configuration\); retry in \d+ s\.$/,
    );
    const data = limitData(error)!;
    assert.deepEqual({ ...data, retryAfter: 0 }, {
      error: "rate_limited",
      scope: "provider",
      limit: "rpm",
      retryAfter: 0,
    });
    assert.ok(data.retryAfter >= 1 && data.retryAfter <= 60);
    return true;
  });
  assert.equal(fake.calls.length, calls, "the provider was not called");
});

Deno.test("provider limits: tpm counts the tokens calls used and refuses once they are spent", async () => {
  const fake = createFakeProvider({ id: "cloud" });
  // The fake reports 3 prompt tokens and one completion token per word.
  const limited = withLimits(fake, { store: createMemoryRateStore(), limits: { tpm: 10 } });
  await collect(limited.generate({ model: "m1", prompt: "one two three" })); // 6 tokens
  await collect(limited.generate({ model: "m1", prompt: "four" })); // 4 tokens: 10 in all
  await assert.rejects(collect(limited.generate({ model: "m1", prompt: "five" })), (error) => {
    assert.ok(error instanceof LocalRateLimitError);
    assert.equal(error.data.limit, "tpm");
    assert.match(error.message, /at most 10 tokens per minute \(tpm in the configuration\)/);
    return true;
  });
  assert.equal(fake.calls.length, 2);
});

Deno.test("provider limits: a provider's 429 holds later calls until its retry-after", async () => {
  const fake = createFakeProvider({ id: "cloud" });
  const limited = withLimits(fake, { store: createMemoryRateStore() });
  fake.failNext = new RateLimitError(429, "slow down", { retryAfterMs: 30_000 });
  await assert.rejects(collect(limited.generate({ model: "m1", prompt: "a" })), /slow down/);
  await assert.rejects(collect(limited.generate({ model: "m1", prompt: "b" })), (error) => {
    assert.ok(error instanceof LocalRateLimitError);
    assert.deepEqual(error.data, { scope: "provider", limit: "upstream", retryAfter: 30 });
    assert.match(error.message, /it answered 429 \(rate limited\)/);
    return true;
  });
  assert.equal(fake.calls.length, 1, "the second call never reached the provider");
});
