/**
 * What upstream calls report for metrics, through the registry as the
 * daemon builds providers: tokens in and out and generation speed, upstream
 * errors by kind (not local refusals), and a provider's retries.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type FleetEvents, NO_EVENTS } from "../../src/metrics/events.ts";
import { buildProviders } from "../../src/providers/registry.ts";
import { collect } from "../../src/providers/types.ts";
import { DOUBLE_API_KEY, startOpenAiDouble } from "../openai_double.ts";
import { startOllamaDouble } from "../ollama_double.ts";

function recorder() {
  const seen = {
    tokens: [] as unknown[][],
    errors: [] as string[][],
    retries: [] as string[],
    speeds: 0,
  };
  const events: FleetEvents = {
    ...NO_EVENTS,
    tokens: (labels, counts) =>
      void seen.tokens.push([labels.provider, labels.model, counts.input, counts.output]),
    tokensPerSecond: () => void seen.speeds++,
    upstreamError: (...args) => void seen.errors.push(args),
    retry: (provider) => void seen.retries.push(provider),
  };
  return { seen, events };
}

Deno.test("observed: Ollama calls report their tokens, and failures by kind", async () => {
  const double = await startOllamaDouble();
  const { seen, events } = recorder();
  const [ollama] = buildProviders({
    config: {},
    env: () => undefined,
    ollamaHost: double.host,
    common: { events },
  });
  try {
    const result = await collect(ollama.generate({ model: "llama3.2", prompt: "one two" }));
    const embedded = await ollama.embed({ model: "all-minilm", input: "x" });
    assert.deepEqual(seen.tokens, [
      ["ollama", "llama3.2", result.usage.promptTokens, result.usage.completionTokens],
      ["ollama", "all-minilm", embedded.usage.promptTokens, 0],
    ]);
    assert.equal(seen.speeds, 1);
    double.failNext({ kind: "status", status: 500, error: "runner crashed" });
    await assert.rejects(collect(ollama.generate({ model: "llama3.2", prompt: "x" })));
    await assert.rejects(collect(ollama.generate({ model: "nope", prompt: "x" })));
    await assert.rejects(
      collect(ollama.generate({ model: "llama3.2", prompt: "x", keepAlive: "soon" })),
    );
    assert.deepEqual(seen.errors, [["ollama", "server_error"], ["ollama", "model_not_found"]]);
  } finally {
    await double.close();
  }
});

Deno.test("observed: an OpenAI-compatible provider's retries are counted", async () => {
  const double = await startOpenAiDouble();
  const { seen, events } = recorder();
  const providers = buildProviders({
    config: {
      providers: [{ id: "vllm", type: "openai", base_url: double.url, api_key_env: "KEY" }],
    },
    env: (name) => (name === "KEY" ? DOUBLE_API_KEY : undefined),
    common: { events },
  });
  const vllm = providers.find((p) => p.id === "vllm")!;
  try {
    double.failNext({ kind: "status", status: 503, headers: { "retry-after": "0" } });
    const result = await collect(
      vllm.chat({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
    );
    assert.ok(result.text.length > 0);
    assert.deepEqual(seen.retries, ["vllm"]);
    assert.deepEqual(seen.errors, [], "a retried failure is not the call's failure");
  } finally {
    await double.close();
  }
});
