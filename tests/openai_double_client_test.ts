/**
 * The OpenAI double driven by OpenAI's official TypeScript SDK
 * (`npm:openai`): if the official client cannot read the double, the
 * double is wrong. Streams and non-streamed chat completions, tool calls
 * assembled from fragments, reasoning text, embeddings (the SDK asks for
 * base64 by default), model listing, OpenAI's errors as the SDK's typed
 * errors, and the SDK's own retry after a 429 with `retry-after`.
 *
 * @module
 */

import assert from "node:assert/strict";
import OpenAI, {
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  NotFoundError,
  RateLimitError,
} from "openai";
import { embedText } from "./ollama_double.ts";
import {
  DEFAULT_MODELS,
  DOUBLE_API_KEY,
  HIDDEN_REASONING_TOKENS,
  type OpenAiDouble,
  startOpenAiDouble,
} from "./openai_double.ts";

async function withClient(
  fn: (client: OpenAI, double: OpenAiDouble) => Promise<void>,
  options: { maxRetries?: number } = {},
) {
  const double = await startOpenAiDouble();
  try {
    await fn(
      new OpenAI({
        apiKey: DOUBLE_API_KEY,
        baseURL: double.url,
        maxRetries: options.maxRetries ?? 0,
      }),
      double,
    );
  } finally {
    await double.close();
  }
}

const WEATHER_TOOL = {
  type: "function" as const,
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

Deno.test("the official SDK lists the double's models", async () => {
  await withClient(async (client) => {
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    assert.deepEqual(
      models.map((m) => [m.id, m.object, m.created, m.owned_by]),
      DEFAULT_MODELS.map((m) => [m.id, "model", m.created, m.ownedBy]),
    );
    const one = await client.models.retrieve("o4-mini");
    assert.equal(one.id, "o4-mini");
    await assert.rejects(client.models.retrieve("nope"), NotFoundError);
  });
});

Deno.test("the official SDK streams a chat completion from the double, usage last", async () => {
  await withClient(async (client) => {
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hello there" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.deepEqual(chunks.map((c) => c.choices[0]?.delta.content), [
      "",
      "Echo:",
      " hello",
      " there",
      undefined,
      undefined,
    ]);
    assert.equal(chunks[0].choices[0].delta.role, "assistant");
    assert.deepEqual(chunks.map((c) => c.choices[0]?.finish_reason ?? null), [
      null,
      null,
      null,
      null,
      "stop",
      null,
    ]);
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null), "usage null until the last");
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage?.completion_tokens, 3);
    assert.equal(last.usage?.total_tokens, (last.usage?.prompt_tokens ?? 0) + 3);
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1, "one id for every chunk");
    assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
  });
});

Deno.test("the official SDK reads a whole chat completion with usage details", async () => {
  await withClient(async (client) => {
    const completion = await client.chat.completions.create({
      model: "o4-mini",
      messages: [{ role: "user", content: "think briefly" }],
      max_completion_tokens: 100,
      reasoning_effort: "low",
    });
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.choices[0].message.content, "Echo: think briefly");
    assert.equal(completion.choices[0].finish_reason, "stop");
    assert.equal(
      completion.usage?.completion_tokens_details?.reasoning_tokens,
      HIDDEN_REASONING_TOKENS,
    );
    assert.equal(completion.usage?.completion_tokens, HIDDEN_REASONING_TOKENS + 3);
  });
});

Deno.test("the official SDK assembles the double's streamed tool-call fragments", async () => {
  await withClient(async (client, double) => {
    double.scriptNext({
      content: "Both, then.",
      toolCalls: [
        { name: "get_weather", arguments: { city: "Lima", days: 3 } },
        { name: "get_weather", arguments: { city: "Quito" } },
      ],
    });
    // The SDK's stream helper accumulates deltas the way OpenAI documents them.
    const runner = client.chat.completions.stream({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Lima and Quito?" }],
      tools: [WEATHER_TOOL],
    });
    const final = await runner.finalChatCompletion();
    const message = final.choices[0].message;
    assert.equal(message.content, "Both, then.");
    assert.equal(final.choices[0].finish_reason, "tool_calls");
    const calls = message.tool_calls?.map((c) => {
      assert.equal(c.type, "function");
      return c.type === "function" ? [c.function.name, JSON.parse(c.function.arguments)] : [];
    });
    assert.deepEqual(calls, [
      ["get_weather", { city: "Lima", days: 3 }],
      ["get_weather", { city: "Quito" }],
    ]);
    assert.match(message.tool_calls?.[0].id ?? "", /^call_[A-Za-z0-9]{24}$/);

    // The tool results go back by id and the model answers.
    const ids = message.tool_calls!.map((c) => c.id);
    const answer = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [
        { role: "user", content: "Lima and Quito?" },
        message,
        { role: "tool", tool_call_id: ids[0], content: "sunny" },
        { role: "tool", tool_call_id: ids[1], content: "rain" },
      ],
      tools: [WEATHER_TOOL],
    });
    assert.equal(answer.choices[0].message.content, "Echo: rain");
  });
});

Deno.test("the official SDK reads reasoning_content deltas as extra fields", async () => {
  await withClient(async (client) => {
    const stream = await client.chat.completions.create({
      model: "deepseek-reasoner",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    let reasoning = "";
    let content = "";
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as { content?: string; reasoning_content?: string };
      reasoning += delta?.reasoning_content ?? "";
      content += delta?.content ?? "";
    }
    assert.equal(reasoning, "Okay, the user wants me to echo: Echo: hi");
    assert.equal(content, "Echo: hi");
  });
});

Deno.test("the official SDK embeds with the double, as base64 and as floats", async () => {
  await withClient(async (client) => {
    // The SDK asks for base64 unless told otherwise, and decodes it.
    const packed = await client.embeddings.create({
      model: "text-embedding-3-small",
      input: ["a", "hello"],
    });
    assert.equal(packed.object, "list");
    assert.deepEqual(packed.data.map((d) => d.index), [0, 1]);
    assert.deepEqual(packed.data[1].embedding, Array.from(embedText("hello", 1536)));
    const floats = await client.embeddings.create({
      model: "text-embedding-3-small",
      input: "hello",
      encoding_format: "float",
      dimensions: 8,
    });
    assert.deepEqual(floats.data[0].embedding, Array.from(embedText("hello", 8)));
    assert.deepEqual(floats.usage, { prompt_tokens: 1, total_tokens: 1 });
  });
});

Deno.test("the official SDK raises its typed errors for the double's error replies", async () => {
  await withClient(async (client, double) => {
    await assert.rejects(
      client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
      (e: Error) =>
        e instanceof NotFoundError && e.code === "model_not_found" &&
        e.message === "404 The model `nope` does not exist or you do not have access to it.",
    );
    await assert.rejects(
      client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "x" }],
        // @ts-expect-error: OpenAI has no top_k, and says so.
        top_k: 3,
      }),
      (e: Error) =>
        e instanceof BadRequestError &&
        e.message === "400 Unrecognized request argument supplied: top_k",
    );
    await assert.rejects(
      client.chat.completions.create({
        model: "o4-mini",
        messages: [{ role: "user", content: "x" }],
        max_tokens: 5,
      }),
      (e: Error) =>
        e instanceof BadRequestError && e.code === "unsupported_parameter" &&
        e.param === "max_tokens",
    );
    const wrong = new OpenAI({ apiKey: "sk-wrong-key-1234", baseURL: double.url, maxRetries: 0 });
    await assert.rejects(
      wrong.models.list(),
      (e: Error) =>
        e instanceof AuthenticationError && e.code === "invalid_api_key" &&
        /^401 Incorrect API key provided: sk-wr\*+1234\./.test(e.message),
    );
    double.failNext({ kind: "status", status: 500 });
    await assert.rejects(
      client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "x" }],
      }),
      (e: Error) =>
        e instanceof InternalServerError &&
        e.message ===
          "500 The server had an error while processing your request. Sorry about that!",
    );
    double.failNext({ kind: "error-in-stream", afterTokens: 1 });
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "a b c" }],
      stream: true,
    });
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? "");
      })(),
      (e: Error) => /The server had an error while processing your request/.test(e.message),
    );
    assert.deepEqual(seen, ["", "Echo:"]);
  });
});

Deno.test("the official SDK retries the double's 429 after its retry-after", async () => {
  await withClient(async (client, double) => {
    double.failNext({ kind: "status", status: 429, headers: { "retry-after-ms": "10" } });
    const completion = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "again" }],
    });
    assert.equal(completion.choices[0].message.content, "Echo: again");
    assert.equal(double.requests.filter((r) => r.path === "/v1/chat/completions").length, 2);
    double.failNext({ kind: "status", status: 429, headers: { "retry-after": "0" } }, 5);
    await assert.rejects(
      client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "x" }],
      }),
      (e: Error) => e instanceof RateLimitError && e.code === "rate_limit_exceeded",
    );
  }, { maxRetries: 1 });
});
