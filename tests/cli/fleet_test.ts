/**
 * `rune serve`'s fleet settings in process: flags and configuration checked
 * with messages that say what to write, and the wrappers in the order that
 * matters (a cache hit reaches no limit; a provider's own limit hands the
 * call to its fallback); the configuration's `hosts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { setupFleet } from "../../src/cli/fleet.ts";
import { parseConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { UsageError } from "../../src/errors.ts";
import { NO_EVENTS } from "../../src/metrics/events.ts";
import type { PoolProvider } from "../../src/providers/pool.ts";
import { buildProviders } from "../../src/providers/registry.ts";
import { collect, type Provider } from "../../src/providers/types.ts";
import { createFakeProvider } from "../fake_provider.ts";

function fleet(values: Record<string, unknown>, config: Config = {}, providers?: Provider[]) {
  return setupFleet({
    values,
    config,
    providers: providers ?? [createFakeProvider({ id: "ollama" })],
    events: NO_EVENTS,
    log: () => {},
  });
}

Deno.test("fleet flags: wrong values are usage errors that say what to write", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ cache: "disk" }, /--cache must be memory or off, got "disk"/],
    [{ "cache-max-bytes": "lots" }, /--cache-max-bytes needs a positive whole number of bytes/],
    [{ redis: "127.0.0.1:6379" }, /--redis needs a redis:\/\/ or rediss:\/\/ URL/],
    [{ "rate-limit": "10 per minute" }, /--rate-limit needs a rate such as 10\/s, 600\/m/],
  ];
  for (const [values, message] of cases) {
    await assert.rejects(fleet(values), (error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, message);
      return true;
    });
  }
  await assert.rejects(
    fleet({}, { fallbacks: { "nowhere/m": ["ollama/m1"] } }),
    /fallbacks in the configuration: Unknown provider "nowhere" in "nowhere\/m"/,
  );
});

Deno.test("fleet: the configuration sets the cache, the limit and the fallbacks; flags win", async () => {
  const config = parseConfig(
    JSON.stringify({ cache: { store: "off" }, rate_limit: "10/m" }),
  );
  const off = await fleet({}, config);
  assert.deepEqual(off.health(), { cache: { store: "off" } });
  assert.deepEqual(off.clientLimit?.rate, { limit: 10, windowMs: 60_000, text: "10/m" });
  const on = await fleet(
    { cache: "memory", "cache-max-bytes": "1000", "rate-limit": "2/s" },
    config,
  );
  assert.deepEqual(on.health(), {
    cache: { store: "memory", status: "up", bytes: 0, max_bytes: 1000 },
  });
  assert.equal(on.clientLimit?.rate.text, "2/s");
  await Promise.all([off.close(), on.close()]);
});

Deno.test("fleet: a cached embedding reaches no limit, and a provider's own limit hands over to its fallback", async () => {
  const cloud = createFakeProvider({ id: "cloud" });
  const local = createFakeProvider({ id: "ollama" });
  const config: Config = {
    providers: [{ id: "cloud", type: "openai", rpm: 1 }],
    fallbacks: { "cloud/big": ["ollama/small"] },
  };
  const setup = await fleet({}, config, [cloud, local]);
  const [wrapped] = setup.providers;
  try {
    await wrapped.embed({ model: "big", input: "same" });
    const again = await wrapped.embed({ model: "big", input: "same" });
    assert.equal(again.cached, true, "answered from the cache, past the rpm of 1");
    assert.equal(cloud.calls.length, 1);
    // The minute's one request is used: the generation goes to the fallback, which says so.
    const result = await collect(wrapped.generate({ model: "big", prompt: "hello" }));
    assert.equal(result.model, "ollama/small");
    assert.equal(cloud.calls.length, 1);
    assert.deepEqual(local.calls.map((c) => c.method), ["generate"]);
  } finally {
    await setup.close();
  }
});

Deno.test("config hosts: several hosts make one pooled provider; base_url and hosts exclude each other", () => {
  const config = parseConfig(JSON.stringify({
    providers: [
      {
        id: "gpus",
        type: "ollama",
        hosts: ["127.0.0.1", "localhost:9"],
        max_in_flight_per_host: 2,
      },
      { id: "vllm", type: "openai", hosts: ["http://127.0.0.1:9/v1", "https://localhost/v1"] },
    ],
  }));
  const providers = buildProviders({ config, env: () => undefined });
  const [gpus, vllm] = providers.filter((p) =>
    p.id === "gpus" || p.id === "vllm"
  ) as PoolProvider[];
  try {
    assert.deepEqual(gpus.hosts().map((h) => h.host), ["127.0.0.1:11434", "localhost:9"]);
    assert.deepEqual(vllm.hosts().map((h) => h.host), ["127.0.0.1:9", "localhost:443"]);
    assert.equal(vllm.address, "127.0.0.1:9, localhost:443");
  } finally {
    gpus.close();
    vllm.close();
  }
  assert.throws(
    () =>
      buildProviders({
        config: parseConfig(JSON.stringify({
          providers: [{ id: "x", type: "openai", base_url: "http://a/v1", hosts: ["http://b/v1"] }],
        })),
        env: () => undefined,
      }),
    /provider "x" has both base_url and hosts: give one of them/,
  );
  assert.throws(
    () =>
      buildProviders({
        config: parseConfig(JSON.stringify({
          providers: [{ id: "x", type: "openai", hosts: ["b:8000"] }],
        })),
        env: () => undefined,
      }),
    /provider "x" has host "b:8000": expected an http:\/\/ or https:\/\/ URL/,
  );
});
