/**
 * The Redis-backed stores against a real `redis-server`: the cache shared
 * between two links (two instances), rate counters shared and atomic under
 * concurrency with exact counts at the boundary, and everything going on
 * without Redis when it is killed (the cache misses, the counters fall back
 * to memory, the link says "down" and logs it once), then coming back.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createMemoryCacheStore, createRedisCacheStore } from "../../src/providers/cache_store.ts";
import { createMemoryRateStore, createRedisRateStore } from "../../src/providers/limiter.ts";
import { connectRedis, type RedisLink } from "../../src/redis.ts";
import { REDIS_SKIP_REASON, startRedis } from "../redis_server.ts";

const ignore = REDIS_SKIP_REASON !== undefined;

/** Resolves once `link` is in the state `up`. */
function until(link: RedisLink, up: boolean): Promise<void> {
  if (link.up() === up) return Promise.resolve();
  return new Promise((resolve) => link.onChange((now) => now === up && resolve()));
}

Deno.test({
  name: "redis cache store: an entry written through one link is read through another",
  ignore,
  fn: async () => {
    const redis = await startRedis();
    const a = connectRedis(redis.url);
    const b = connectRedis(redis.url);
    try {
      await Promise.all([until(a, true), until(b, true)]);
      const one = createRedisCacheStore(a, { prefix: "t1:" });
      const two = createRedisCacheStore(b, { prefix: "t1:" });
      assert.equal(await two.get("k"), undefined);
      await one.set("k", '{"v":"é"}');
      assert.equal(await two.get("k"), '{"v":"é"}');
      assert.equal(one.bytes(), 10);
      assert.equal(one.status(), "up");
      // Entries past the size bound are not written.
      const small = createRedisCacheStore(a, { prefix: "t1:", maxEntryBytes: 4 });
      await small.set("big", "12345");
      assert.equal(await two.get("big"), undefined);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await redis.stop();
    }
  },
});

Deno.test({
  name: "redis rate store: two instances share exact counts, atomically, with retryAfter",
  ignore,
  fn: async () => {
    const redis = await startRedis();
    const a = connectRedis(redis.url);
    const b = connectRedis(redis.url);
    try {
      await Promise.all([until(a, true), until(b, true)]);
      // A fixed clock: 10 s into an hour.
      const now = () => 3_600_000 * 480_000 + 10_000;
      const one = createRedisRateStore(a, { now, prefix: "r1:" });
      const two = createRedisRateStore(b, { now, prefix: "r1:" });
      const check = { key: "client:x", limit: 10, windowMs: 3_600_000, cost: 1 };
      // 40 concurrent calls through two instances: exactly 10 pass.
      const verdicts = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? one : two).take([check])),
      );
      assert.equal(verdicts.filter((v) => v.allowed).length, 10);
      const refused = verdicts.find((v) => !v.allowed)!;
      assert.equal(refused.allowed, false);
      if (!refused.allowed) {
        assert.equal(refused.index, 0);
        // The key expires at the window's end as the clock had it: 3 590 s away.
        assert.ok(refused.retryAfterMs > 3_580_000 && refused.retryAfterMs <= 3_590_000);
      }
      // Tokens added on one instance count on the other; a block too.
      await one.add("p:tpm", { windowMs: 60_000, amount: 100 });
      const tpm = { key: "p:tpm", limit: 100, windowMs: 60_000, cost: 0 };
      assert.equal((await two.take([tpm])).allowed, false);
      await one.block("p:block", 5_000);
      const blocked = await two.take([], "p:block");
      assert.equal(blocked.allowed, false);
      if (!blocked.allowed) assert.equal(blocked.index, -1);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await redis.stop();
    }
  },
});

Deno.test({
  name: "redis stores: with Redis killed, calls go on without it, and it is used again once back",
  ignore,
  fn: async () => {
    const redis = await startRedis();
    const logs: string[] = [];
    const link = connectRedis(redis.url, { log: (level, text) => logs.push(`${level}: ${text}`) });
    try {
      await until(link, true);
      const cache = createRedisCacheStore(link, { prefix: "k1:" });
      const fallback = createMemoryRateStore();
      const rates = createRedisRateStore(link, { prefix: "k1:", fallback });
      await cache.set("a", "1");
      await redis.kill();
      await until(link, false);
      assert.equal(cache.status(), "down");
      assert.equal(await cache.get("a"), undefined, "a miss, not a failure");
      await cache.set("b", "2"); // Nothing, and no error.
      const check = { key: "c", limit: 1, windowMs: 3_600_000, cost: 1 };
      assert.equal((await rates.take([check])).allowed, true, "counted in memory meanwhile");
      assert.equal((await rates.take([check])).allowed, false);
      await redis.restart();
      await until(link, true);
      assert.equal(cache.status(), "up");
      await cache.set("c", "3");
      assert.equal(await cache.get("c"), "3");
      assert.equal(logs.filter((l) => l.startsWith("warning")).length, 1, logs.join("\n"));
      assert.match(logs.find((l) => l.startsWith("warning"))!, /redis at 127\.0\.0\.1:\d+ is down/);
      assert.match(logs.at(-1)!, /redis at 127\.0\.0\.1:\d+ is back/);
    } finally {
      await link.close();
      await redis.stop();
    }
  },
});

Deno.test("memory cache store reports its kind and is always up", () => {
  const store = createMemoryCacheStore();
  assert.deepEqual([store.kind, store.status(), store.bytes()], ["memory", "up", 0]);
});
