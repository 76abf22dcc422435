/**
 * The host pool against two and three real Ollama doubles: routing to the
 * host that has the model and to the one where it is loaded, around a host
 * that is down, failover before the first token (one clean answer), none
 * after it, a host coming back, the per-host concurrency limit under 50
 * concurrent calls, the bounded queue, and merged model lists.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { FleetEvents } from "../../src/metrics/events.ts";
import { NO_EVENTS } from "../../src/metrics/events.ts";
import { ModelNotFoundError } from "../../src/providers/errors.ts";
import { createOllamaProvider } from "../../src/providers/ollama/mod.ts";
import { normalizeModelName } from "../../src/providers/ollama/convert.ts";
import {
  createPool,
  type HostState,
  MidStreamError,
  PoolBusyError,
  type PoolOptions,
  type PoolProvider,
  PoolUnavailableError,
} from "../../src/providers/pool.ts";
import { buildProviders } from "../../src/providers/registry.ts";
import type { Chunk } from "../../src/providers/types.ts";
import { DEFAULT_MODELS, type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";

const LLAMA = DEFAULT_MODELS.find((m) => m.name.startsWith("llama3.2"))!;
const QWEN = DEFAULT_MODELS.find((m) => m.name.startsWith("qwen3"))!;

function poolOf(doubles: OllamaDouble[], options: PoolOptions = {}): PoolProvider {
  return createPool(
    doubles.map((d) => ({
      address: d.host,
      provider: createOllamaProvider({ baseUrl: d.url }),
    })),
    { modelKey: normalizeModelName, ...options },
  );
}

/** Generations a double received. */
function generations(double: OllamaDouble): number {
  return double.requests.filter((r) => r.path === "/api/generate").length;
}

/** Streams a generation (default: llama3.2, "hello there"); returns its text chunks and final text. */
async function generate(
  pool: PoolProvider,
  { model = "llama3.2", prompt = "hello there", signal }: {
    model?: string;
    prompt?: string;
    signal?: AbortSignal;
  } = {},
): Promise<{ texts: string[]; final: string; model: string }> {
  const texts: string[] = [];
  let final = "";
  let answered = "";
  for await (const chunk of pool.generate({ model, prompt }, { signal })) {
    if (chunk.type === "text") texts.push(chunk.text);
    if (chunk.type === "done") {
      final = chunk.result.text;
      answered = chunk.result.model;
    }
  }
  return { texts, final, model: answered };
}

/** Loads `model` on `double` (a generation through its own API). */
async function load(double: OllamaDouble, model: string): Promise<void> {
  const response = await fetch(`${double.url}/api/generate`, {
    method: "POST",
    body: JSON.stringify({ model, prompt: "warm up" }),
  });
  await response.body?.cancel();
  await response.arrayBuffer().catch(() => {});
}

/** Counts failovers. */
function counting(): FleetEvents & { failovers: number } {
  const events = { ...NO_EVENTS, failovers: 0, failover: () => events.failovers++ };
  return events;
}

Deno.test("pool: a call goes to the host that has the model", async () => {
  const a = await startOllamaDouble({ models: [LLAMA] });
  const b = await startOllamaDouble({ models: [QWEN] });
  const pool = poolOf([a, b]);
  try {
    await pool.refresh();
    assert.equal((await generate(pool, { model: "qwen3" })).final, "Echo: hello there");
    assert.equal((await generate(pool, { model: "llama3.2" })).final, "Echo: hello there");
    assert.equal((await generate(pool, { model: "qwen3:latest" })).final, "Echo: hello there");
    assert.deepEqual([generations(a), generations(b)], [1, 2]);
    await assert.rejects(generate(pool, { model: "llava" }), (error) => {
      assert.ok(error instanceof ModelNotFoundError);
      assert.match(error.message, /Model "llava" is on none of the hosts of Ollama/);
      assert.ok(error.message.includes(a.host) && error.message.includes(b.host));
      return true;
    });
    assert.deepEqual(
      [generations(a), generations(b)],
      [1, 2],
      "a model nobody has is sent nowhere",
    );
  } finally {
    pool.close();
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("pool: a call prefers the host where the model is loaded", async () => {
  const doubles = await Promise.all([0, 1, 2].map(() => startOllamaDouble({ models: [LLAMA] })));
  await load(doubles[2], "llama3.2");
  const before = doubles.map(generations);
  const pool = poolOf(doubles);
  try {
    await pool.refresh();
    assert.deepEqual(pool.hosts().map((h) => h.loaded), [[], [], ["llama3.2:latest"]]);
    for (let i = 0; i < 5; i++) await generate(pool);
    assert.deepEqual(doubles.map((d, i) => generations(d) - before[i]), [0, 0, 5]);
  } finally {
    pool.close();
    await Promise.all(doubles.map((d) => d.close()));
  }
});

Deno.test("pool: calls go around a host that is down", async () => {
  const dead = await startOllamaDouble();
  await dead.close();
  const live = await startOllamaDouble();
  const changes: HostState[] = [];
  const pool = poolOf([dead, live], { onHostChange: (s) => changes.push(s) });
  try {
    await pool.refresh();
    for (let i = 0; i < 3; i++) assert.equal((await generate(pool)).final, "Echo: hello there");
    assert.equal(generations(live), 3);
    const [deadState, liveState] = pool.hosts();
    assert.equal(deadState.state, "down");
    assert.match(deadState.error!, /connection was refused/);
    assert.equal(liveState.state, "up");
    assert.deepEqual(
      changes.map((c) => [c.host, c.state]).sort(),
      [
        [dead.host, "down"],
        [live.host, "up"],
      ].sort(),
    );
  } finally {
    pool.close();
    await live.close();
  }
});

Deno.test("pool: a host failing before the first token is replaced transparently", async () => {
  const a = await startOllamaDouble();
  const b = await startOllamaDouble();
  await load(a, "llama3.2");
  const events = counting();
  const pool = poolOf([a, b], { events });
  try {
    await pool.refresh();
    for (
      const fault of [
        { kind: "status", status: 500, error: "runner crashed" },
        { kind: "drop", afterTokens: 0 },
        { kind: "non-json", body: "<html>bad gateway</html>" },
      ] as const
    ) {
      a.failNext(fault, 1, "/api/generate");
      const { texts, final } = await generate(pool, { model: "llama3.2", prompt: "one two three" });
      assert.equal(texts.join(""), "Echo: one two three", `${fault.kind}: the text once`);
      assert.equal(final, "Echo: one two three");
    }
    assert.equal(events.failovers, 3);
    assert.equal(generations(b), 3, "each call answered by the other host");
  } finally {
    pool.close();
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("pool: a failure after the first token is a clear error, not a second answer", async () => {
  const a = await startOllamaDouble();
  const b = await startOllamaDouble();
  await load(a, "llama3.2");
  const events = counting();
  const pool = poolOf([a, b], { events });
  try {
    await pool.refresh();
    const bBefore = generations(b);
    a.failNext({ kind: "drop", afterTokens: 2 }, 1, "/api/generate");
    const texts: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of pool.generate({ model: "llama3.2", prompt: "one two three" })) {
          if (chunk.type === "text") texts.push(chunk.text);
        }
      })(),
      (error) => {
        assert.ok(error instanceof MidStreamError);
        assert.match(error.message, /closed the connection in the middle of the reply/);
        assert.match(error.message, /did not retry it on another host \(the text would repeat\)/);
        return true;
      },
    );
    assert.deepEqual(texts, ["Echo:", " one"]);
    assert.equal(generations(b), bBefore, "nothing was sent to the other host");
    assert.equal(events.failovers, 0);
  } finally {
    pool.close();
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("pool: a host that comes back is routed to again", async () => {
  const a = await startOllamaDouble({ models: [QWEN] });
  const b = await startOllamaDouble({ models: [LLAMA] });
  const port = a.port;
  const states: HostState[] = [];
  let notify = () => {};
  const pool = poolOf([a, b], {
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    onHostChange: (s) => {
      states.push(s);
      notify();
    },
  });
  const until = async (test: () => boolean) => {
    while (!test()) await new Promise<void>((resolve) => (notify = resolve));
  };
  let again: OllamaDouble | undefined;
  try {
    await pool.refresh();
    await a.close();
    // The next call finds it gone; the pool marks it down at once.
    await assert.rejects(generate(pool, { model: "qwen3" }), /connection was refused/);
    assert.equal(pool.hosts()[0].state, "down");
    await assert.rejects(generate(pool, { model: "qwen3" }), (error) => {
      assert.ok(error instanceof PoolUnavailableError);
      assert.match(error.message, /The hosts of Ollama that have "qwen3" are down: 127\.0\.0\.1:/);
      return true;
    });
    again = await startOllamaDouble({ models: [QWEN], port });
    // The background check (with backoff) finds it again, with no call needed.
    await until(() => states.at(-1)?.host === a.host && states.at(-1)?.state === "up");
    assert.equal((await generate(pool, { model: "qwen3" })).final, "Echo: hello there");
    assert.equal(generations(again), 1);
  } finally {
    pool.close();
    await Promise.all([b.close(), again?.close()]);
  }
});

Deno.test("pool: 50 concurrent calls never run more than 4 at once on a host", async () => {
  const doubles = await Promise.all([0, 1].map(() => startOllamaDouble({ tokenDelayMs: 20 })));
  const pool = poolOf(doubles);
  try {
    await pool.refresh();
    const prompt = "a b c d e f g h i j";
    const reached = Promise.all(doubles.map((d) => d.waitForOpenStreams(4)));
    const results = await Promise.all(
      Array.from({ length: 50 }, () => generate(pool, { model: "llama3.2", prompt })),
    );
    await reached;
    assert.deepEqual(new Set(results.map((r) => r.final)), new Set([`Echo: ${prompt}`]));
    assert.deepEqual(doubles.map((d) => d.peakOpenStreams), [4, 4]);
    assert.equal(doubles.reduce((n, d) => n + generations(d), 0), 50);
    assert.deepEqual(pool.hosts().map((h) => h.inFlight), [0, 0]);
  } finally {
    pool.close();
    await Promise.all(doubles.map((d) => d.close()));
  }
});

Deno.test("pool: past the in-flight limit and a full queue, a call is refused at once", async () => {
  const a = await startOllamaDouble({ tokenDelayMs: 20 });
  const pool = poolOf([a], { maxInFlightPerHost: 1, maxQueued: 1 });
  const stop = new AbortController();
  try {
    await pool.refresh();
    const running = generate(pool, {
      model: "llama3.2",
      prompt: "x ".repeat(200),
      signal: stop.signal,
    }).catch((e) => e);
    await a.waitForOpenStreams(1);
    const queued = generate(pool, { model: "llama3.2", prompt: "queued", signal: stop.signal })
      .catch((e) => e);
    await assert.rejects(generate(pool), (error) => {
      assert.ok(error instanceof PoolBusyError);
      assert.match(error.message, /runs 1 calls and 1 more are waiting/);
      return true;
    });
    stop.abort();
    assert.equal((await running).name, "AbortError");
    assert.equal((await queued).name, "AbortError");
    await a.waitForOpenStreams(0);
    assert.deepEqual(pool.hosts().map((h) => h.inFlight), [0]);
  } finally {
    pool.close();
    await a.close();
  }
});

Deno.test("pool: the model list merges the hosts and says where each model is", async () => {
  const a = await startOllamaDouble({ models: [LLAMA, QWEN] });
  const b = await startOllamaDouble({ models: [LLAMA] });
  await load(b, "llama3.2");
  const [provider] = buildProviders({
    config: {},
    env: () => undefined,
    ollamaHosts: [a.host, b.host],
  });
  try {
    const models = await provider.listModels();
    assert.deepEqual(
      models.map((m) => [m.name, m.hosts, m.loaded !== undefined]),
      [["llama3.2:latest", [a.host, b.host], true], ["qwen3:latest", [a.host], false]],
    );
    assert.equal(provider.address, `${a.host}, ${b.host}`);
  } finally {
    (provider as PoolProvider).close();
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("pool: with every host down, a call fails at once naming each host", async () => {
  const a = await startOllamaDouble();
  const b = await startOllamaDouble();
  await Promise.all([a.close(), b.close()]);
  const pool = poolOf([a, b]);
  try {
    await pool.refresh();
    const chunks: Chunk[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of pool.generate({ model: "llama3.2", prompt: "x" })) {
          chunks.push(chunk);
        }
      })(),
      (error) => {
        assert.ok(error instanceof PoolUnavailableError);
        assert.match(error.message, /Every host of Ollama \(provider "ollama"\) is down/);
        assert.ok(error.message.includes(`${a.host} (Cannot reach Ollama`));
        return true;
      },
    );
    assert.deepEqual(chunks, []);
  } finally {
    pool.close();
  }
});
