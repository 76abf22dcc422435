/**
 * The response cache over the real Ollama provider and its double: a
 * repeated embedding never reaches the double, deterministic or
 * `cache: true` generations are replayed (marked cached), other generations
 * are not cached; and the memory store's byte bound and LRU order.
 *
 * @module
 */

import assert from "node:assert/strict";
import { NO_EVENTS } from "../../src/metrics/events.ts";
import { withCache } from "../../src/providers/cache.ts";
import { createMemoryCacheStore } from "../../src/providers/cache_store.ts";
import { createOllamaProvider } from "../../src/providers/ollama/mod.ts";
import { collect } from "../../src/providers/types.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";

function count(double: OllamaDouble, path: string): number {
  return double.requests.filter((r) => r.path === path).length;
}

function counting() {
  const events = {
    ...NO_EVENTS,
    hits: 0,
    misses: 0,
    cacheHit: () => events.hits++,
    cacheMiss: () => events.misses++,
  };
  return events;
}

Deno.test("cache: a second identical embedding does not reach the provider", async () => {
  const double = await startOllamaDouble();
  const events = counting();
  const provider = withCache(
    createOllamaProvider({ baseUrl: double.url }),
    createMemoryCacheStore(),
    { events },
  );
  try {
    const first = await provider.embed({ model: "all-minilm", input: ["a", "b"] });
    assert.equal(first.cached, undefined);
    const second = await provider.embed({ model: "all-minilm", input: ["a", "b"] });
    assert.equal(second.cached, true);
    assert.deepEqual(second.embeddings, first.embeddings);
    assert.equal(count(double, "/api/embed"), 1);
    // Another input, or another order, is another entry.
    await provider.embed({ model: "all-minilm", input: ["b", "a"] });
    assert.equal(count(double, "/api/embed"), 2);
    assert.deepEqual([events.hits, events.misses], [1, 2]);
  } finally {
    await double.close();
  }
});

Deno.test("cache: only deterministic or cache: true generations are cached", async () => {
  const double = await startOllamaDouble();
  const events = counting();
  const provider = withCache(
    createOllamaProvider({ baseUrl: double.url }),
    createMemoryCacheStore(),
    { events },
  );
  try {
    const base = { model: "llama3.2", prompt: "same prompt" };
    // Not deterministic: both reach the double, neither counts as a miss.
    for (
      const options of [undefined, { temperature: 0 }, { seed: 7 }, { temperature: 0.5, seed: 7 }]
    ) {
      await collect(provider.generate({ ...base, options }));
      await collect(provider.generate({ ...base, options }));
    }
    assert.equal(count(double, "/api/generate"), 8);
    assert.deepEqual([events.hits, events.misses], [0, 0]);

    const deterministic = { ...base, options: { temperature: 0, seed: 42 } };
    const fresh = await collect(provider.generate(deterministic));
    const chunks = [];
    for await (const chunk of provider.generate(deterministic)) chunks.push(chunk);
    assert.equal(count(double, "/api/generate"), 9);
    assert.deepEqual(chunks.slice(0, -1), [{ type: "text", text: "Echo: same prompt" }]);
    const done = chunks.at(-1)!;
    assert.equal(done.type, "done");
    if (done.type === "done") assert.deepEqual(done.result, { ...fresh, cached: true });

    await collect(
      provider.chat({
        model: "llama3.2",
        messages: [{ role: "user", content: "hi" }],
        cache: true,
      }),
    );
    const again = await collect(
      provider.chat({
        model: "llama3.2",
        messages: [{ role: "user", content: "hi" }],
        cache: true,
      }),
    );
    assert.equal(again.cached, true);
    assert.equal(again.text, "Echo: hi");
    assert.equal(count(double, "/api/chat"), 1);
    // keep_alive does not change the answer, so it shares the entry.
    const kept = await collect(provider.generate({ ...deterministic, keepAlive: "1m" }));
    assert.equal(kept.cached, true);
    assert.deepEqual([events.hits, events.misses], [3, 2]);
  } finally {
    await double.close();
  }
});

Deno.test("cache: the memory store holds at most its bytes, least recently used out first", async () => {
  // Each entry: a 3-byte key and a 10-byte value.
  const store = createMemoryCacheStore({ maxBytes: 40 });
  await store.set("k01", "v".repeat(10));
  await store.set("k02", "v".repeat(10));
  await store.set("k03", "v".repeat(10));
  assert.equal(store.bytes(), 39);
  // Using k01 makes k02 the oldest.
  assert.equal(await store.get("k01"), "v".repeat(10));
  await store.set("k04", "w".repeat(10));
  assert.equal(store.bytes(), 39);
  assert.equal(await store.get("k02"), undefined);
  assert.deepEqual(
    await Promise.all(["k01", "k03", "k04"].map((k) => store.get(k))),
    ["v".repeat(10), "v".repeat(10), "w".repeat(10)],
  );
  // Multi-byte text counts in UTF-8 bytes; a larger entry evicts several.
  await store.set("k05", "é".repeat(12));
  assert.equal(store.bytes(), 27 + 13);
  assert.deepEqual(
    await Promise.all(["k01", "k03", "k04", "k05"].map((k) => store.get(k))),
    [undefined, undefined, "w".repeat(10), "é".repeat(12)],
  );
  // An entry larger than the whole bound is not kept, and evicts nothing.
  await store.set("big", "x".repeat(41));
  assert.equal(await store.get("big"), undefined);
  assert.equal(store.bytes(), 40);
});

Deno.test("cache: an entry that is not a result (another writer, a corrupt value) is a miss", async () => {
  const double = await startOllamaDouble();
  const inner = createMemoryCacheStore();
  const values = ["not json", '{"model":1}', '{"model":"m","usage":{},"embeddings":[["x"]]}'];
  let i = 0;
  const store = { ...inner, get: () => Promise.resolve(values[i++ % values.length]) };
  const provider = withCache(createOllamaProvider({ baseUrl: double.url }), store);
  try {
    for (let n = 0; n < values.length; n++) {
      const result = await provider.embed({ model: "all-minilm", input: "x" });
      assert.equal(result.cached, undefined);
      assert.equal(result.embeddings[0].length, 384);
    }
    const generated = await collect(
      provider.generate({ model: "llama3.2", prompt: "p", cache: true }),
    );
    assert.equal(generated.cached, undefined);
    assert.equal(count(double, "/api/embed"), 3);
  } finally {
    await double.close();
  }
});
