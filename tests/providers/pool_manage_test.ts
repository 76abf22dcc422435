/**
 * Model management over a pool of real Ollama doubles: a pull reaches every
 * host with steady progress and makes the model routable at once, a delete
 * removes it everywhere, `running` and `inspect` read the hosts, and the
 * cache wrapper passes management through.
 *
 * @module
 */

import assert from "node:assert/strict";
import { withCache } from "../../src/providers/cache.ts";
import { createMemoryCacheStore } from "../../src/providers/cache_store.ts";
import { createMemoryRateStore } from "../../src/providers/limiter.ts";
import { withLimits } from "../../src/providers/limits.ts";
import { ModelNotFoundError } from "../../src/providers/errors.ts";
import { normalizeModelName } from "../../src/providers/ollama/convert.ts";
import { createOllamaProvider } from "../../src/providers/ollama/mod.ts";
import { createPool, type PoolProvider } from "../../src/providers/pool.ts";
import type { PullProgress } from "../../src/providers/types.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";

const LIBRARY = "smollm2:135m";

function poolOf(doubles: OllamaDouble[]): PoolProvider {
  return createPool(
    doubles.map((d) => ({ address: d.host, provider: createOllamaProvider({ baseUrl: d.url }) })),
    { modelKey: normalizeModelName },
  );
}

async function withPool(fn: (pool: PoolProvider, doubles: OllamaDouble[]) => Promise<void>) {
  const doubles = [await startOllamaDouble(), await startOllamaDouble()];
  const pool = poolOf(doubles);
  try {
    await fn(pool, doubles);
  } finally {
    await pool.close();
    for (const d of doubles) await d.close();
  }
}

Deno.test("a pull through the pool downloads on every host, progress never goes back", async () => {
  await withPool(async (pool, doubles) => {
    const steps: PullProgress[] = [];
    for await (const step of pool.modelManagement!.pull(LIBRARY)) steps.push(step);
    for (const d of doubles) assert.ok(d.installed.includes(LIBRARY), d.installed.join(", "));
    // Each host's steps, with its address in front, in the pool's order.
    const first = steps.findIndex((s) => s.status.startsWith(`${doubles[1].host}: `));
    assert.ok(first > 0);
    assert.ok(steps.slice(0, first).every((s) => s.status.startsWith(`${doubles[0].host}: `)));
    assert.ok(steps.slice(first).every((s) => s.status.startsWith(`${doubles[1].host}: `)));
    for (let i = 1; i < steps.length; i++) {
      assert.ok(steps[i].completed >= steps[i - 1].completed, `step ${i} went back`);
    }
    // Only the very last step is done, and it counts both hosts' bytes.
    assert.deepEqual(steps.map((s) => s.done).filter(Boolean), [true]);
    const last = steps.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.completed, last.total);
    assert.equal(last.total, 2 * steps[first - 1].total);
  });
});

Deno.test("a model just pulled through the pool is routed to at once", async () => {
  await withPool(async (pool) => {
    // The pool has seen every host's list (without the model) before the pull.
    assert.equal((await pool.listModels()).some((m) => m.name === LIBRARY), false);
    const before = pool.hosts().map((h) => h.models);
    for await (const _ of pool.modelManagement!.pull(LIBRARY)) { /* drain */ }
    // Known to every host's routing entry right away, not at the next health check.
    assert.deepEqual(pool.hosts().map((h) => h.models), before.map((n) => n! + 1));
    let text = "";
    for await (const chunk of pool.generate({ model: LIBRARY, prompt: "hi there" })) {
      if (chunk.type === "text") text += chunk.text;
    }
    assert.match(text, /hi there/);
  });
});

Deno.test("a delete through the pool removes the model from every host that has it", async () => {
  await withPool(async (pool, doubles) => {
    const model = doubles[0].installed[0];
    await pool.listModels();
    const before = pool.hosts().map((h) => h.models);
    await pool.modelManagement!.delete(model);
    for (const d of doubles) assert.equal(d.installed.includes(model), false);
    assert.deepEqual(pool.hosts().map((h) => h.models), before.map((n) => n! - 1));
    await assert.rejects(
      pool.modelManagement!.delete(model),
      (error: unknown) =>
        error instanceof ModelNotFoundError &&
        error.message.includes(
          `not installed on any host (${doubles[0].host}, ${doubles[1].host})`,
        ),
    );
  });
});

Deno.test("running lists every host's loaded models; inspect reads the first host that has it", async () => {
  await withPool(async (pool, doubles) => {
    const model = doubles[0].installed[0];
    for await (const _ of pool.generate({ model, prompt: "load it" })) { /* drain */ }
    const running = await pool.modelManagement!.running();
    assert.deepEqual(running.map((m) => m.name), [model]);
    const card = await pool.modelManagement!.inspect(model);
    assert.equal(card.name, model);
    assert.equal(typeof card.parameters, "object");
  });
});

Deno.test("the cache and limit wrappers pass model management through unchanged", () => {
  const provider = createOllamaProvider({ baseUrl: "http://127.0.0.1:9" });
  assert.ok(provider.modelManagement);
  const cached = withCache(provider, createMemoryCacheStore());
  assert.equal(cached.modelManagement, provider.modelManagement);
  const limited = withLimits(provider, { store: createMemoryRateStore() });
  assert.equal(limited.modelManagement, provider.modelManagement);
});
