/**
 * The Ollama double driven by Ollama's official JavaScript client
 * (`npm:ollama`): if the official client cannot read the double, the
 * double is wrong. Lists, streams a generation, chats with tools (one call,
 * and several calls with text), embeds, shows a model, lists the loaded
 * ones, and reads Ollama's error replies.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Ollama } from "ollama";
import { DEFAULT_MODELS, type OllamaDouble, startOllamaDouble } from "./ollama_double.ts";

async function withClient(fn: (client: Ollama, double: OllamaDouble) => Promise<void>) {
  const double = await startOllamaDouble();
  try {
    await fn(new Ollama({ host: double.url }), double);
  } finally {
    await double.close();
  }
}

const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the weather in a given city",
    parameters: {
      type: "object",
      required: ["city"],
      properties: { city: { type: "string", description: "The city" } },
    },
  },
};

Deno.test("the official client lists the double's models", async () => {
  await withClient(async (client) => {
    const { models } = await client.list();
    assert.deepEqual(
      models.map((m) => [m.name, m.size, m.details.family, m.details.parameter_size]),
      DEFAULT_MODELS.map((m) => [m.name, m.size, m.family, m.parameterSize]),
    );
  });
});

Deno.test("the official client streams a generation from the double", async () => {
  await withClient(async (client) => {
    const parts = [];
    for await (
      const part of await client.generate({
        model: "llama3.2",
        prompt: "hello there",
        stream: true,
      })
    ) {
      parts.push(part);
    }
    assert.deepEqual(parts.map((p) => p.response), ["Echo:", " hello", " there", ""]);
    const last = parts.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.done_reason, "stop");
    assert.equal(last.eval_count, 3);
    assert.ok(parts.slice(0, -1).every((p) => p.done === false));
  });
});

Deno.test("the official client reads the double's tool calls", async () => {
  await withClient(async (client, double) => {
    const one = await client.chat({
      model: "llama3.2",
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tools: [WEATHER_TOOL],
    });
    assert.equal(one.message.content, "");
    assert.deepEqual(one.message.tool_calls?.map((c) => c.function), [
      { index: 0, name: "get_weather", arguments: { city: "Paris" } },
    ]);

    double.scriptNext({
      content: "Both, then.",
      toolCalls: [
        { name: "get_weather", arguments: { city: "Lima" } },
        { name: "get_weather", arguments: { city: "Quito" } },
      ],
    });
    const text: string[] = [];
    const calls: unknown[] = [];
    for await (
      const part of await client.chat({
        model: "llama3.2",
        messages: [{ role: "user", content: "Lima and Quito?" }],
        tools: [WEATHER_TOOL],
        stream: true,
      })
    ) {
      text.push(part.message.content);
      for (const call of part.message.tool_calls ?? []) calls.push(call.function.arguments);
    }
    assert.equal(text.join(""), "Both, then.");
    assert.deepEqual(calls, [{ city: "Lima" }, { city: "Quito" }]);
  });
});

Deno.test("the official client embeds with the double, shows a model and lists loaded ones", async () => {
  await withClient(async (client) => {
    const embedded = await client.embed({ model: "all-minilm", input: ["a", "b"] });
    assert.equal(embedded.model, "all-minilm");
    assert.deepEqual(embedded.embeddings.map((v) => v.length), [384, 384]);
    assert.notDeepEqual(embedded.embeddings[0], embedded.embeddings[1]);

    const shown = await client.show({ model: "qwen3" });
    assert.deepEqual(shown.capabilities, ["completion", "tools", "thinking"]);
    assert.equal(shown.details.family, "qwen3");
    // Typed as a Map by the client, but it is the JSON object Ollama sends.
    const info = shown.model_info as unknown as Record<string, unknown>;
    assert.equal(info["general.architecture"], "qwen3");

    const running = await client.ps();
    assert.deepEqual(running.models.map((m) => m.name), ["all-minilm:latest"]);
  });
});

Deno.test("the official client reads the double's errors as Ollama's", async () => {
  await withClient(async (client) => {
    await assert.rejects(
      client.generate({ model: "nope", prompt: "x" }),
      (error: Error & { status_code?: number }) =>
        error.message === "model 'nope' not found" && error.status_code === 404,
    );
    await assert.rejects(
      client.generate({ model: "llama3.2", prompt: "x", keep_alive: "5 minutes" }),
      (error: Error & { status_code?: number }) =>
        error.message === 'time: unknown unit " minutes" in duration "5 minutes"' &&
        error.status_code === 400,
    );
  });
});
