/**
 * The Anthropic double driven by Anthropic's official TypeScript SDK
 * (`npm:@anthropic-ai/sdk`): if the official client cannot read the
 * double, the double is wrong. Creates messages (plain and streamed, with
 * the stream's final message), uses tools, thinks, lists models page by
 * page, reads error replies as the SDK's typed errors, and retries a 429.
 *
 * The SDK speaks API version 2026-10-21; Rune speaks 2023-06-01. The
 * double serves both.
 *
 * @module
 */

import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import {
  ANTHROPIC_ERRORS,
  type AnthropicDouble,
  DEFAULT_MODELS,
  signThinking,
  startAnthropicDouble,
} from "./anthropic_double.ts";

async function withClient(
  fn: (client: Anthropic, double: AnthropicDouble) => Promise<void>,
  options: { maxRetries?: number } = {},
): Promise<void> {
  const double = await startAnthropicDouble();
  try {
    const client = sdkClient(double.apiKey, double.url, options.maxRetries ?? 0);
    await fn(client, double);
  } finally {
    await double.close();
  }
}

/**
 * A client with every setting explicit: the SDK otherwise reads
 * `ANTHROPIC_AUTH_TOKEN`, `ANTHROPIC_BASE_URL` and the like from the
 * environment, and the test must not depend on (or send) them.
 */
function sdkClient(apiKey: string, baseURL: string, maxRetries: number): Anthropic {
  return new Anthropic({ apiKey, authToken: null, baseURL, maxRetries });
}

const MODEL = "claude-haiku-4-5";

const WEATHER_TOOL = {
  name: "get_weather",
  description: "Get the weather in a given city",
  input_schema: {
    type: "object" as const,
    properties: { city: { type: "string", description: "The city" } },
    required: ["city"],
  },
};

Deno.test("the official SDK creates a message and reads its text, stop reason and usage", async () => {
  await withClient(async (client, double) => {
    const message = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: "user", content: "hello there" }],
    });
    assert.equal(message.type, "message");
    assert.equal(message.role, "assistant");
    assert.equal(message.model, "claude-haiku-4-5-20251001");
    assert.match(message.id, /^msg_01[0-9A-Za-z]{22}$/);
    assert.deepEqual(message.content, [{ type: "text", text: "Echo: hello there" }]);
    assert.equal(message.stop_reason, "end_turn");
    assert.equal(message.stop_sequence, null);
    assert.equal(message.usage.output_tokens, 3);
    assert.equal(message.usage.input_tokens, 9);
    const sent = double.requests[0];
    // SDK 1.x sends the key as a bearer token.
    assert.equal(sent.headers.authorization, `Bearer ${double.apiKey}`);
    assert.equal(sent.headers["anthropic-version"], "2026-10-21");
  });
});

Deno.test("the official SDK streams a message and assembles the final message", async () => {
  await withClient(async (client) => {
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: "user", content: "stream these words" }],
    });
    const texts: string[] = [];
    stream.on("text", (text) => texts.push(text));
    const message = await stream.finalMessage();
    assert.deepEqual(texts, ["Echo:", " stream", " these", " words"]);
    assert.deepEqual(message.content, [{ type: "text", text: "Echo: stream these words" }]);
    assert.equal(message.stop_reason, "end_turn");
    assert.equal(message.usage.output_tokens, 4);
  });
});

Deno.test("the official SDK sees every event type in the documented order", async () => {
  await withClient(async (client) => {
    const events = await client.messages.create({
      model: MODEL,
      max_tokens: 100,
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    const types: string[] = [];
    for await (const event of events) {
      types.push(
        event.type === "content_block_delta" ? `${event.type}:${event.delta.type}` : event.type,
      );
    }
    // The SDK swallows "ping" as Anthropic's own client does.
    assert.deepEqual(types, [
      "message_start",
      "content_block_start",
      "content_block_delta:text_delta",
      "content_block_delta:text_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
  });
});

Deno.test("the official SDK streams a tool call and parses its streamed JSON input", async () => {
  await withClient(async (client) => {
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 200,
      tools: [WEATHER_TOOL],
      messages: [{ role: "user", content: "What is the weather in Oslo?" }],
    });
    const fragments: string[] = [];
    stream.on("inputJson", (fragment) => fragments.push(fragment));
    const message = await stream.finalMessage();
    assert.equal(message.stop_reason, "tool_use");
    const call = message.content[0];
    assert.equal(call.type, "tool_use");
    if (call.type !== "tool_use") return;
    assert.match(call.id, /^toolu_01[0-9A-Za-z]{22}$/);
    assert.equal(call.name, "get_weather");
    assert.deepEqual(call.input, { city: "Oslo" });
    assert.equal(fragments.join(""), '{"city":"Oslo"}');
    assert.ok(fragments.length > 1, "the input arrives in several fragments");

    // The round trip: the result goes back in a user turn, paired by id.
    const answer = await client.messages.create({
      model: MODEL,
      max_tokens: 200,
      tools: [WEATHER_TOOL],
      messages: [
        { role: "user", content: "What is the weather in Oslo?" },
        { role: "assistant", content: message.content },
        {
          role: "user",
          content: [{ type: "tool_result", tool_use_id: call.id, content: "12 degrees, rain" }],
        },
      ],
    });
    assert.deepEqual(answer.content, [{ type: "text", text: "Echo: 12 degrees, rain" }]);
  });
});

Deno.test("the official SDK streams thinking with its signature before the answer", async () => {
  await withClient(async (client) => {
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 2048,
      thinking: { type: "enabled", budget_tokens: 1024 },
      messages: [{ role: "user", content: "why?" }],
    });
    const thoughts: string[] = [];
    stream.on("thinking", (delta) => thoughts.push(delta));
    const message = await stream.finalMessage();
    assert.deepEqual(thoughts, ["Let", " me", " think", " about:", " why?"]);
    assert.deepEqual(message.content, [
      {
        type: "thinking",
        thinking: "Let me think about: why?",
        signature: signThinking("Let me think about: why?"),
      },
      { type: "text", text: "Echo: why?" },
    ]);
  });
});

Deno.test("the official SDK lists models page by page", async () => {
  await withClient(async (client, double) => {
    const ids: string[] = [];
    for await (const model of client.models.list({ limit: 2 })) ids.push(model.id);
    assert.deepEqual(ids, DEFAULT_MODELS.map((m) => m.id));
    assert.deepEqual(
      double.requests.map((r) => r.query),
      [{ limit: "2" }, { limit: "2", after_id: DEFAULT_MODELS[1].id }],
    );
    const one = await client.models.retrieve("claude-haiku-4-5-20251001");
    assert.equal(one.display_name, "Claude Haiku 4.5");
    assert.equal(one.max_tokens, 64000);
  });
});

Deno.test("the official SDK reads the double's errors as its typed errors", async () => {
  await withClient(async (client, double) => {
    await assert.rejects(
      client.messages.create({
        model: "claude-nosuch",
        max_tokens: 10,
        messages: [{ role: "user", content: "x" }],
      }),
      (e: unknown) =>
        e instanceof Anthropic.NotFoundError && e.status === 404 &&
        e.type === "not_found_error" && /^req_011C/.test(e.requestID ?? "") &&
        JSON.stringify(e.error) ===
          `{"type":"error","error":{"type":"not_found_error","message":"model: claude-nosuch"},"request_id":"${e.requestID}"}`,
    );
    const wrongKey = sdkClient("sk-wrong", double.url, 0);
    await assert.rejects(
      wrongKey.models.list(),
      (e: unknown) =>
        e instanceof Anthropic.AuthenticationError && e.type === "authentication_error" &&
        e.message.includes(`"message":"${ANTHROPIC_ERRORS.invalidBearer}"`),
    );
    double.failNext({
      kind: "status",
      status: 529,
      type: "overloaded_error",
      message: ANTHROPIC_ERRORS.overloaded,
    });
    await assert.rejects(
      client.messages.create({
        model: MODEL,
        max_tokens: 10,
        messages: [{ role: "user", content: "x" }],
      }),
      (e: unknown) => e instanceof Anthropic.OverloadedError && e.status === 529,
    );
    await assert.rejects(
      client.messages.create({
        model: MODEL,
        max_tokens: 2048,
        thinking: { type: "enabled", budget_tokens: 512 },
        messages: [{ role: "user", content: "x" }],
      }),
      (e: unknown) =>
        e instanceof Anthropic.BadRequestError && e.type === "invalid_request_error" &&
        e.message.includes(
          '"message":"thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"',
        ),
    );
  });
});

Deno.test("the official SDK raises an error event in the middle of a stream", async () => {
  await withClient(async (client, double) => {
    double.failNext({
      kind: "error-event",
      afterTokens: 2,
      type: "overloaded_error",
      message: ANTHROPIC_ERRORS.overloaded,
    });
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: "user", content: "a b c" }],
    });
    const texts: string[] = [];
    stream.on("text", (text) => texts.push(text));
    await assert.rejects(
      stream.finalMessage(),
      (e: unknown) => e instanceof Anthropic.APIError && e.type === "overloaded_error",
    );
    assert.deepEqual(texts, ["Echo:", " a"]);
  });
});

Deno.test("the official SDK retries a 429 after the double's retry-after", async () => {
  await withClient(async (client, double) => {
    double.failNext({
      kind: "status",
      status: 429,
      type: "rate_limit_error",
      message: ANTHROPIC_ERRORS.rateLimited,
      headers: { "retry-after": "0" },
    });
    const message = await client.messages.create({
      model: MODEL,
      max_tokens: 10,
      messages: [{ role: "user", content: "again" }],
    });
    assert.deepEqual(message.content, [{ type: "text", text: "Echo: again" }]);
    assert.deepEqual(double.requests.map((r) => r.headers["x-stainless-retry-count"]), ["0", "1"]);
  }, { maxRetries: 2 });
});
