/**
 * The metrics module in process: every event lands in its series with the
 * contract's names and labels, the text parses strictly, the model label is
 * bounded, and the test's parser refuses what Prometheus would refuse.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  createPrometheusMetrics,
  MAX_CLIENT_LABELS,
  MAX_MODEL_LABELS,
} from "../../src/metrics/prometheus.ts";
import { parsePrometheusText, valueOf } from "../prometheus_text.ts";

Deno.test("metrics: each event is counted under the contract's series names", async () => {
  const metrics = createPrometheusMetrics();
  const call = { tool: "ai_ollama_generate", provider: "ollama", model: "llama3.2" };
  metrics.toolCall(call, { outcome: "ok", seconds: 0.2, ttftSeconds: 0.05 });
  metrics.toolCall(call, { outcome: "ok", seconds: 0.4, ttftSeconds: 0.1 });
  metrics.toolCall(call, { outcome: "error", seconds: 0.01 });
  metrics.tokens({ provider: "ollama", model: "llama3.2" }, { input: 11, output: 7 });
  metrics.tokensPerSecond({ provider: "ollama", model: "llama3.2" }, 42);
  metrics.upstreamError("ollama", "unreachable");
  metrics.retry("anthropic");
  metrics.failover("ollama");
  metrics.fallback("anthropic");
  metrics.cacheHit();
  metrics.cacheMiss();
  metrics.cacheMiss();
  metrics.rateLimited("client");
  metrics.watch({
    sessions: () => ({ stdio: 1, websocket: 2, http: 3 }),
    hosts: () => [
      { provider: "ollama", host: "a:1", up: true, inFlight: 2 },
      { provider: "ollama", host: "b:2", up: false, inFlight: 0 },
    ],
    cacheBytes: () => 1234,
  });
  assert.equal(metrics.contentType, "text/plain; version=0.0.4; charset=utf-8");
  const families = parsePrometheusText(await metrics.render());
  const ok = { ...call, outcome: "ok" };
  assert.equal(valueOf(families, "rune_tool_calls_total", ok), 2);
  assert.equal(valueOf(families, "rune_tool_calls_total", { ...call, outcome: "error" }), 1);
  assert.equal(
    valueOf(families, "rune_client_tool_calls_total", { client: "anonymous", outcome: "ok" }),
    2,
  );
  assert.equal(valueOf(families, "rune_tool_call_duration_seconds_count", ok), 2);
  assert.equal(valueOf(families, "rune_tool_call_duration_seconds_sum", ok), 0.2 + 0.4);
  assert.equal(
    valueOf(families, "rune_tool_call_duration_seconds_bucket", { ...ok, le: "0.25" }),
    1,
  );
  assert.equal(valueOf(families, "rune_time_to_first_token_seconds_count", ok), 2);
  assert.equal(
    valueOf(families, "rune_time_to_first_token_seconds_count", { ...call, outcome: "error" }),
    0,
  );
  assert.equal(valueOf(families, "rune_tokens_total", { direction: "in" }), 11);
  assert.equal(valueOf(families, "rune_tokens_total", { direction: "out" }), 7);
  assert.equal(valueOf(families, "rune_tokens_per_second_count"), 1);
  assert.equal(
    valueOf(families, "rune_upstream_errors_total", { provider: "ollama", kind: "unreachable" }),
    1,
  );
  assert.equal(valueOf(families, "rune_retries_total", { provider: "anthropic" }), 1);
  assert.equal(valueOf(families, "rune_failovers_total", { provider: "ollama" }), 1);
  assert.equal(valueOf(families, "rune_fallbacks_total", { provider: "anthropic" }), 1);
  assert.equal(valueOf(families, "rune_cache_hits_total"), 1);
  assert.equal(valueOf(families, "rune_cache_misses_total"), 2);
  assert.equal(valueOf(families, "rune_cache_bytes"), 1234);
  assert.equal(valueOf(families, "rune_rate_limited_total", { scope: "client" }), 1);
  assert.deepEqual(
    ["stdio", "websocket", "http"].map((t) => valueOf(families, "rune_sessions", { transport: t })),
    [1, 2, 3],
  );
  assert.equal(valueOf(families, "rune_upstream_host_up", { host: "a:1" }), 1);
  assert.equal(valueOf(families, "rune_upstream_host_up", { host: "b:2" }), 0);
  assert.equal(valueOf(families, "rune_upstream_in_flight", { host: "a:1" }), 2);
  assert.deepEqual(
    [...families.values()].map((f) => [f.name, f.type]).sort(),
    [
      ["rune_cache_bytes", "gauge"],
      ["rune_cache_hits_total", "counter"],
      ["rune_cache_misses_total", "counter"],
      ["rune_client_tool_calls_total", "counter"],
      ["rune_failovers_total", "counter"],
      ["rune_fallbacks_total", "counter"],
      ["rune_rate_limited_total", "counter"],
      ["rune_retries_total", "counter"],
      ["rune_sessions", "gauge"],
      ["rune_time_to_first_token_seconds", "histogram"],
      ["rune_tokens_per_second", "histogram"],
      ["rune_tokens_total", "counter"],
      ["rune_tool_call_duration_seconds", "histogram"],
      ["rune_tool_calls_total", "counter"],
      ["rune_upstream_errors_total", "counter"],
      ["rune_upstream_host_up", "gauge"],
      ["rune_upstream_in_flight", "gauge"],
    ],
  );
});

Deno.test(`metrics: past ${MAX_MODEL_LABELS} models, new model names are counted as "other"`, async () => {
  const metrics = createPrometheusMetrics();
  for (let i = 0; i < MAX_MODEL_LABELS + 10; i++) {
    metrics.toolCall({ tool: "ai_generate", provider: "ollama", model: `m${i}` }, {
      outcome: "ok",
      seconds: 0.001,
    });
  }
  // A model seen before the bound keeps its series.
  metrics.toolCall({ tool: "ai_generate", provider: "ollama", model: "m0" }, {
    outcome: "ok",
    seconds: 0.001,
  });
  const families = parsePrometheusText(await metrics.render());
  const series = families.get("rune_tool_calls_total")!.samples;
  assert.equal(series.length, MAX_MODEL_LABELS + 1);
  assert.equal(valueOf(families, "rune_tool_calls_total", { model: "other" }), 10);
  assert.equal(valueOf(families, "rune_tool_calls_total", { model: "m0" }), 2);
});

Deno.test(`metrics: calls per client identity, anonymous by default, past ${MAX_CLIENT_LABELS} "other"`, async () => {
  const metrics = createPrometheusMetrics();
  const call = (client?: string) =>
    metrics.toolCall({ tool: "ai_generate", provider: "ollama", model: "m", client }, {
      outcome: "ok",
      seconds: 0.001,
    });
  call();
  call("token:1");
  call("token:1");
  for (let i = 0; i < MAX_CLIENT_LABELS + 5; i++) call(`oauth:${i.toString(16).padStart(32, "0")}`);
  const families = parsePrometheusText(await metrics.render());
  assert.equal(valueOf(families, "rune_client_tool_calls_total", { client: "anonymous" }), 1);
  assert.equal(valueOf(families, "rune_client_tool_calls_total", { client: "token:1" }), 2);
  // anonymous and token:1 took two of the labels: 254 identities get theirs, 7 are "other".
  assert.equal(
    valueOf(families, "rune_client_tool_calls_total", { client: "other" }),
    MAX_CLIENT_LABELS + 5 - (MAX_CLIENT_LABELS - 2),
  );
  assert.equal(families.get("rune_client_tool_calls_total")!.samples.length, MAX_CLIENT_LABELS + 1);
});

Deno.test("the test's Prometheus parser refuses what Prometheus would", () => {
  const head = "# HELP x x\n# TYPE x counter\n";
  assert.throws(() => parsePrometheusText(`${head}x{a="b\\q"} 1\n`), /bad escape/);
  assert.throws(() => parsePrometheusText(`${head}x{1a="b"} 1\n`), /bad label name/);
  assert.throws(() => parsePrometheusText(`${head}x{a=b} 1\n`), /not quoted/);
  assert.throws(() => parsePrometheusText(`${head}x one\n`), /bad value/);
  assert.throws(() => parsePrometheusText(`y 1\n`), /undeclared family/);
  assert.throws(() => parsePrometheusText(`${head}x 1\n# TYPE x gauge\n`), /TYPE after samples/);
  const histogram = "# TYPE h histogram\n";
  assert.throws(
    () =>
      parsePrometheusText(
        `${histogram}h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n`,
      ),
    /not cumulative/,
  );
  assert.throws(
    () => parsePrometheusText(`${histogram}h_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n`),
    /differs from _count/,
  );
  const parsed = parsePrometheusText(`${head}x{a="q\\"uote\\\\ \\n"} 3 1700000000\n`);
  assert.deepEqual(parsed.get("x")!.samples, [{
    name: "x",
    labels: { a: 'q"uote\\ \n' },
    value: 3,
  }]);
});
