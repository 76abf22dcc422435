/**
 * The Anthropic provider against the Anthropic double over real HTTP:
 * streaming, the exact request bodies and headers sent, tool-call round
 * trips, thinking, stop reasons, error mapping, retries, credential
 * refresh, cancellation, deadlines and byte budgets.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type AnthropicProviderOptions,
  createAnthropicProvider,
} from "../../src/providers/anthropic/mod.ts";
import { type CredentialSource, fixedCredential } from "../../src/providers/credential.ts";
import {
  ArgumentError,
  AuthenticationError,
  CapabilityError,
  ConnectionDroppedError,
  InvalidResponseError,
  ModelNotFoundError,
  OverloadedError,
  ProviderTimeoutError,
  ProviderUnreachableError,
  RateLimitError,
  RequestTooLargeError,
  UpstreamError,
  UpstreamTooLargeError,
} from "../../src/providers/errors.ts";
import { type Chunk, collect, type Message, type ToolCall } from "../../src/providers/types.ts";
import {
  ANTHROPIC_ERRORS,
  type AnthropicDouble,
  type DoubleModel,
  signThinking,
  startAnthropicDouble,
} from "../anthropic_double.ts";

const MODEL = "claude-haiku-4-5";
const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

async function withDouble(
  fn: (double: AnthropicDouble) => Promise<void>,
  options: { models?: DoubleModel[] } = {},
): Promise<void> {
  const double = await startAnthropicDouble(options);
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

function provider(double: AnthropicDouble, options: AnthropicProviderOptions = {}) {
  return createAnthropicProvider({
    baseUrl: double.url,
    credential: fixedCredential(double.apiKey, "ANTHROPIC_API_KEY"),
    // Retries without waiting, so tests never sleep.
    retry: { maxRetries: 2, baseDelayMs: 1, random: () => 0 },
    ...options,
  });
}

/** The body of the `index`th request to `/v1/messages`. */
function sentBody(double: AnthropicDouble, index = 0): Record<string, unknown> {
  const sent = double.requests.filter((r) => r.path === "/v1/messages")[index];
  assert.ok(sent, `request ${index} to /v1/messages was sent`);
  return sent.body as Record<string, unknown>;
}

function messagesSent(double: AnthropicDouble): number {
  return double.requests.filter((r) => r.path === "/v1/messages").length;
}

function withoutIds(calls: ToolCall[]): Omit<ToolCall, "id">[] {
  return calls.map(({ id: _id, ...rest }) => rest);
}

/** A server-sent event as Anthropic writes it. */
function event(data: Record<string, unknown>): string {
  return `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

const START = event({
  type: "message_start",
  message: {
    id: "msg_01",
    type: "message",
    role: "assistant",
    model: MODEL,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: 5, output_tokens: 1 },
  },
});
const END = event({
  type: "message_delta",
  delta: { stop_reason: "end_turn", stop_sequence: null },
  usage: { output_tokens: 2 },
}) + event({ type: "message_stop" });

const WEATHER = {
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

// ---------------------------------------------------------------------------
// Models

Deno.test("listModels() lists Anthropic's models with their capabilities, authenticated and versioned", async () => {
  await withDouble(async (double) => {
    const models = await provider(double).listModels();
    assert.deepEqual(models.map((m) => m.name), [
      "claude-sonnet-4-6",
      "claude-opus-4-6",
      "claude-haiku-4-5-20251001",
      "claude-3-haiku-20240307",
    ]);
    assert.deepEqual(models[0], {
      name: "claude-sonnet-4-6",
      family: "sonnet",
      modifiedAt: "2026-02-17T00:00:00Z",
      capabilities: {
        completion: true,
        streaming: true,
        vision: true,
        tools: true,
        embeddings: false,
        thinking: true,
      },
    });
    assert.equal(models[3].capabilities?.thinking, false);
    const [sent] = double.requests;
    assert.equal(sent.path, "/v1/models");
    assert.deepEqual(sent.query, { limit: "1000" });
    assert.equal(sent.headers["x-api-key"], double.apiKey);
    assert.equal(sent.headers["anthropic-version"], "2023-06-01");
    assert.equal(sent.headers.authorization, undefined);
  });
});

Deno.test("listModels() follows has_more and after_id across pages, and stops after 10 pages", async () => {
  const many = (n: number): DoubleModel[] =>
    Array.from({ length: n }, (_, i) => ({
      id: `claude-test-${String(i).padStart(5, "0")}`,
      displayName: `Test ${i}`,
      createdAt: "2026-01-01T00:00:00Z",
      maxInputTokens: 200000,
      maxTokens: 8192,
      thinking: true,
    }));
  await withDouble(async (double) => {
    const models = await provider(double).listModels();
    assert.equal(models.length, 2500);
    assert.deepEqual(double.requests.map((r) => r.query), [
      { limit: "1000" },
      { limit: "1000", after_id: "claude-test-00999" },
      { limit: "1000", after_id: "claude-test-01999" },
    ]);
  }, { models: many(2500) });
  await withDouble(async (double) => {
    const models = await provider(double).listModels();
    assert.equal(models.length, 10_000, "10 pages of 1000, the rest unread");
    assert.equal(double.requests.length, 10);
  }, { models: many(10_500) });
});

Deno.test("configured models are listed without asking, and described from their names", async () => {
  await withDouble(async (double) => {
    const claude = provider(double, { models: ["claude-sonnet-4-6", "claude-gateway-only"] });
    const models = await claude.listModels();
    assert.deepEqual(models.map((m) => m.name), ["claude-sonnet-4-6", "claude-gateway-only"]);
    assert.equal(double.requests.length, 0);
    // A model Anthropic knows is described by Anthropic; one only the gateway serves, by its name.
    assert.equal((await claude.showModel("claude-sonnet-4-6")).capabilitiesKnown, true);
    const guessed = await claude.showModel("claude-gateway-only");
    assert.equal(guessed.capabilitiesKnown, false);
    assert.equal(guessed.capabilities.vision, true);
    assert.equal(guessed.capabilities.embeddings, false);
    await assert.rejects(claude.showModel("claude-not-configured"), ModelNotFoundError);
  });
});

Deno.test("showModel() reports the model's capabilities, context window and output limit", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    const haiku = await claude.showModel("claude-haiku-4-5");
    assert.deepEqual(haiku, {
      name: "claude-haiku-4-5-20251001",
      family: "haiku",
      modifiedAt: "2025-10-15T00:00:00Z",
      capabilities: {
        completion: true,
        streaming: true,
        vision: true,
        tools: true,
        embeddings: false,
        thinking: true,
      },
      capabilitiesKnown: true,
      contextLength: 200000,
      extra: { display_name: "Claude Haiku 4.5", max_tokens: 64000 },
    });
    assert.equal((await claude.showModel("claude-3-haiku-20240307")).capabilities.thinking, false);
  });
});

Deno.test("an unknown model names it and says how to list the models", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    const expected =
      `Model "claude-nosuch" is not available on Anthropic at ${double.host} (HTTP 404 not_found_error: model: claude-nosuch; request id `;
    await assert.rejects(claude.showModel("claude-nosuch"), (e: Error) => {
      assert.ok(e instanceof ModelNotFoundError);
      assert.equal(e.model, "claude-nosuch");
      assert.ok(e.message.startsWith(expected), e.message);
      assert.match(
        e.message,
        /\): list the models this key can use with "rune ai list --provider anthropic" \(or the ai_anthropic_list_models tool\), and check the spelling\.$/,
      );
      return true;
    });
    await assert.rejects(
      collect(claude.generate({ model: "claude-nosuch", prompt: "x" })),
      (e: Error) => e instanceof ModelNotFoundError && e.message.startsWith(expected),
    );
    assert.equal(messagesSent(double), 1, "a missing model is not retried");
  });
});

Deno.test("capabilities() has no embeddings, and embed() says Anthropic has no embeddings API", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    assert.deepEqual(claude.capabilities(), {
      completion: true,
      streaming: true,
      vision: true,
      tools: true,
      embeddings: false,
      thinking: true,
    });
    assert.equal(claude.type, "anthropic");
    assert.equal(claude.id, "anthropic");
    assert.equal(claude.label, "Anthropic");
    assert.equal(claude.address, double.host);
    await assert.rejects(
      claude.embed({ model: MODEL, input: "x" }),
      (e: Error) =>
        e instanceof CapabilityError && e.capability === "embeddings" &&
        e.message.startsWith(`Anthropic has no embeddings API, so "${MODEL}" cannot embed text`),
    );
    assert.equal(double.requests.length, 0);
  });
});

Deno.test("ping() makes one cheap authenticated call and names the API version", async () => {
  await withDouble(async (double) => {
    assert.equal(await provider(double).ping(), "API 2023-06-01");
    assert.deepEqual(double.requests.map((r) => [r.path, r.query]), [["/v1/models", {
      limit: "1",
    }]]);
    await assert.rejects(
      provider(double, { credential: fixedCredential("sk-ant-wrong", "ANTHROPIC_API_KEY") }).ping(),
      AuthenticationError,
    );
  });
});

// ---------------------------------------------------------------------------
// Generation and chat

Deno.test("generate() streams tokens in order and ends with the final result", async () => {
  await withDouble(async (double) => {
    const chunks: Chunk[] = await Array.fromAsync(
      provider(double).generate({ model: MODEL, prompt: "hello brave new world" }),
    );
    assert.deepEqual(chunks.slice(0, -1), [
      { type: "text", text: "Echo:" },
      { type: "text", text: " hello" },
      { type: "text", text: " brave" },
      { type: "text", text: " new" },
      { type: "text", text: " world" },
    ]);
    const last = chunks.at(-1);
    assert.equal(last?.type, "done");
    if (last?.type !== "done") return;
    const { totalMs, ...usage } = last.result.usage;
    assert.ok(typeof totalMs === "number" && totalMs >= 0);
    assert.deepEqual({ ...last.result, usage }, {
      model: "claude-haiku-4-5-20251001",
      text: "Echo: hello brave new world",
      toolCalls: [],
      doneReason: "stop",
      usage: { promptTokens: 11, completionTokens: 5 },
    });
    assert.deepEqual(sentBody(double), {
      model: MODEL,
      max_tokens: 4096,
      messages: [{ role: "user", content: "hello brave new world" }],
      stream: true,
    });
    const { headers } = double.requests[0];
    assert.equal(headers["x-api-key"], double.apiKey);
    assert.equal(headers["anthropic-version"], "2023-06-01");
    assert.equal(headers["content-type"], "application/json");
    assert.equal(headers.accept, "text/event-stream");
  });
});

Deno.test("generate() sends the system prompt, images with media types, sampling and stop sequences", async () => {
  await withDouble(async (double) => {
    await collect(
      provider(double).generate({
        model: MODEL,
        prompt: "what is this?",
        system: "be brief",
        images: [{ data: PNG, mediaType: "image/png" }, {
          data: "/9j/4AAQ",
          mediaType: "image/jpeg",
        }],
        options: { temperature: 0.2, topP: 0.9, topK: 20, maxTokens: 300, stop: ["\n\n"] },
        providerOptions: { metadata: { user_id: "u-42" }, max_tokens: 1 },
      }),
    );
    assert.deepEqual(sentBody(double), {
      metadata: { user_id: "u-42" },
      model: MODEL,
      max_tokens: 300,
      temperature: 0.2,
      top_p: 0.9,
      top_k: 20,
      stop_sequences: ["\n\n"],
      system: "be brief",
      messages: [{
        role: "user",
        content: [
          { type: "image", source: { type: "base64", media_type: "image/png", data: PNG } },
          { type: "image", source: { type: "base64", media_type: "image/jpeg", data: "/9j/4AAQ" } },
          { type: "text", text: "what is this?" },
        ],
      }],
      stream: true,
    });
  });
});

Deno.test("an image without a recognisable media type is refused by name before sending", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    await assert.rejects(
      collect(claude.generate({ model: MODEL, prompt: "x", images: [{ data: "aGVsbG8=" }] })),
      (e: Error) =>
        e instanceof ArgumentError && e.argument === "images" &&
        e.message ===
          "Anthropic needs the media type of every image, and images[0]: its media type could not be recognised: send a PNG, JPEG, GIF or WebP image, as base64 or as a data: URL that names its type (data:image/png;base64,...).",
    );
    await assert.rejects(
      collect(claude.chat({
        model: MODEL,
        messages: [{
          role: "user",
          content: "x",
          images: [{ data: "Qk0=", mediaType: "image/bmp" }],
        }],
      })),
      (e: Error) =>
        e instanceof ArgumentError && e.argument === "images" &&
        e.message.includes("messages[0].images[0]: its media type is image/bmp"),
    );
    assert.equal(double.requests.length, 0);
  });
});

Deno.test("arguments Anthropic has no equivalent for are refused by name before sending", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    const cases: [Parameters<typeof claude.generate>[0], string, string][] = [
      [
        { model: MODEL, prompt: "x", options: { seed: 7 } },
        "seed",
        "Anthropic does not support seed: Anthropic's Messages API has no seed, so replies cannot be made reproducible; leave seed out.",
      ],
      [
        { model: MODEL, prompt: "x", options: { contextLength: 8192 } },
        "context_length",
        "Anthropic does not support context_length: the context window is fixed per model; leave context_length out (see the model's details for its size).",
      ],
      [
        { model: MODEL, prompt: "x", keepAlive: "5m" },
        "keep_alive",
        "Anthropic does not support keep_alive: a cloud API keeps no model loaded for you; leave keep_alive out.",
      ],
      [
        { model: MODEL, prompt: "x", format: "json" },
        "format",
        "Anthropic has no schema-less JSON mode: give format a JSON Schema (sent as Anthropic's structured output format), or ask for JSON in the prompt.",
      ],
      [
        { model: MODEL, prompt: "x", think: 500 },
        "think",
        "Anthropic needs a thinking budget of at least 1024 tokens, got 500: pass think: true for the default budget (4096), or a whole number from 1024 up.",
      ],
    ];
    for (const [request, argument, message] of cases) {
      await assert.rejects(
        collect(claude.generate(request)),
        (e: Error) =>
          e instanceof ArgumentError && e.argument === argument && e.message === message,
      );
    }
    // An undefined option is no option (the MCP layer maps every field).
    await collect(claude.generate({ model: MODEL, prompt: "x", options: { seed: undefined } }));
    assert.equal(messagesSent(double), 1);
  });
});

Deno.test("a JSON Schema format is sent as Anthropic's structured output format", async () => {
  await withDouble(async (double) => {
    const schema = {
      type: "object",
      properties: { answer: { type: "string" } },
      required: ["answer"],
      additionalProperties: false,
    };
    const result = await collect(
      provider(double).generate({
        model: MODEL,
        prompt: "q",
        format: schema,
        providerOptions: { output_config: { effort: "low" } },
      }),
    );
    assert.deepEqual(sentBody(double).output_config, {
      effort: "low",
      format: { type: "json_schema", schema },
    });
    assert.deepEqual(JSON.parse(result.text), { answer: "Echo: q" });
  });
});

Deno.test("chat() sends system, turns, tools and tool results paired by id, in Anthropic's shape", async () => {
  await withDouble(async (double) => {
    const messages: Message[] = [
      { role: "system", content: "You are terse." },
      { role: "system", content: "Use tools." },
      { role: "user", content: "weather and time in Oslo?" },
      {
        role: "assistant",
        content: "Looking both up.",
        toolCalls: [
          { id: "toolu_01A", name: "get_weather", arguments: { city: "Oslo" } },
          { id: "toolu_01B", name: "get_time", arguments: { zone: "Europe/Oslo" } },
        ],
      },
      { role: "tool", content: "12 degrees", toolCallId: "toolu_01A", toolName: "get_weather" },
      {
        role: "tool",
        content: "14:05",
        toolCallId: "toolu_01B",
        toolName: "get_time",
        images: [{ data: PNG, mediaType: "image/png" }],
      },
      { role: "user", content: "and tomorrow?" },
    ];
    const result = await collect(
      provider(double).chat({
        model: MODEL,
        messages,
        tools: [WEATHER, { name: "get_time" }],
      }),
    );
    assert.equal(result.text, "Echo: 12 degrees 14:05 and tomorrow?");
    assert.deepEqual(sentBody(double), {
      model: MODEL,
      max_tokens: 4096,
      system: "You are terse.\n\nUse tools.",
      messages: [
        { role: "user", content: "weather and time in Oslo?" },
        {
          role: "assistant",
          content: [
            { type: "text", text: "Looking both up." },
            { type: "tool_use", id: "toolu_01A", name: "get_weather", input: { city: "Oslo" } },
            { type: "tool_use", id: "toolu_01B", name: "get_time", input: { zone: "Europe/Oslo" } },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "toolu_01A", content: "12 degrees" },
            {
              type: "tool_result",
              tool_use_id: "toolu_01B",
              content: [
                { type: "text", text: "14:05" },
                { type: "image", source: { type: "base64", media_type: "image/png", data: PNG } },
              ],
            },
            { type: "text", text: "and tomorrow?" },
          ],
        },
      ],
      tools: [
        {
          name: "get_weather",
          description: "Weather for a city",
          input_schema: WEATHER.parameters,
        },
        { name: "get_time", input_schema: { type: "object", properties: {} } },
      ],
      stream: true,
    });
  });
});

Deno.test("a tool message without tool_call_id is refused: Anthropic pairs results by id", async () => {
  await withDouble(async (double) => {
    await assert.rejects(
      collect(
        provider(double).chat({
          model: MODEL,
          messages: [
            { role: "user", content: "x" },
            {
              role: "assistant",
              content: "",
              toolCalls: [{ id: "toolu_1", name: "f", arguments: {} }],
            },
            { role: "tool", content: "r", toolName: "f" },
          ],
        }),
      ),
      (e: Error) =>
        e instanceof ArgumentError && e.argument === "tool_call_id" &&
        e.message ===
          'Anthropic pairs each tool result with its call by id, and messages[2] (a tool message) has no tool_call_id: send the id of the tool call it answers (the "id" of the call in the assistant message).',
    );
    await assert.rejects(
      collect(
        provider(double).chat({
          model: MODEL,
          messages: [
            { role: "user", content: "x" },
            { role: "assistant", content: "", toolCalls: [{ name: "f", arguments: {} }] },
          ],
        }),
      ),
      (e: Error) => e instanceof ArgumentError && e.argument === "tool_calls",
    );
    assert.equal(double.requests.length, 0);
  });
});

Deno.test("a tool call round trip: the streamed call, its result by id, and the answer", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    const question: Message = { role: "user", content: "What is the weather in Paris?" };
    const chunks = await Array.fromAsync(
      claude.chat({ model: MODEL, messages: [question], tools: [WEATHER] }),
    );
    const calls = chunks.filter((c) => c.type === "tool_calls");
    assert.equal(calls.length, 1);
    const last = chunks.at(-1);
    assert.equal(last?.type, "done");
    if (last?.type !== "done" || calls[0].type !== "tool_calls") return;
    const [call] = last.result.toolCalls;
    assert.match(call.id ?? "", /^toolu_01[0-9A-Za-z]{22}$/);
    assert.deepEqual(withoutIds(last.result.toolCalls), [
      { name: "get_weather", arguments: { city: "Paris" } },
    ]);
    assert.deepEqual(calls[0].toolCalls, last.result.toolCalls);
    assert.equal(last.result.doneReason, "tool_calls");
    assert.equal(last.result.text, "");

    const answer = await collect(claude.chat({
      model: MODEL,
      tools: [WEATHER],
      messages: [
        question,
        { role: "assistant", content: "", toolCalls: last.result.toolCalls },
        { role: "tool", content: "18 degrees, sunny", toolCallId: call.id, toolName: call.name },
      ],
    }));
    assert.equal(answer.text, "Echo: 18 degrees, sunny");
    assert.equal(answer.doneReason, "stop");
  });
});

Deno.test("thinking streams first with a budget, and max_tokens is raised above the budget", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    const chunks = await Array.fromAsync(
      claude.generate({ model: MODEL, prompt: "why?", think: true }),
    );
    assert.deepEqual(chunks.slice(0, -1), [
      { type: "thinking", text: "Let" },
      { type: "thinking", text: " me" },
      { type: "thinking", text: " think" },
      { type: "thinking", text: " about:" },
      { type: "thinking", text: " why?" },
      { type: "text", text: "Echo:" },
      { type: "text", text: " why?" },
    ]);
    const last = chunks.at(-1);
    if (last?.type !== "done") throw new Error("no final chunk");
    assert.equal(last.result.thinking, "Let me think about: why?");
    assert.equal(last.result.usage.completionTokens, 7);
    assert.deepEqual(sentBody(double, 0).thinking, { type: "enabled", budget_tokens: 4096 });
    assert.equal(sentBody(double, 0).max_tokens, 8192);

    await collect(
      claude.generate({ model: MODEL, prompt: "x", think: 2000, options: { maxTokens: 1000 } }),
    );
    assert.deepEqual(sentBody(double, 1).thinking, { type: "enabled", budget_tokens: 2000 });
    assert.equal(sentBody(double, 1).max_tokens, 3000, "the budget plus the answer's 1000");
    await collect(
      claude.generate({ model: MODEL, prompt: "x", think: 2000, options: { maxTokens: 5000 } }),
    );
    assert.equal(sentBody(double, 2).max_tokens, 5000, "already above the budget: as asked");
    await collect(claude.generate({ model: MODEL, prompt: "x", think: false }));
    assert.equal(sentBody(double, 3).thinking, undefined);
    assert.equal(sentBody(double, 3).max_tokens, 4096);
  });
});

Deno.test("with thinking on, a tool round trip gives the signed thinking back before the call", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    const question: Message = { role: "user", content: "What is the weather in Rome?" };
    const first = await collect(
      claude.chat({ model: MODEL, messages: [question], tools: [WEATHER], think: true }),
    );
    assert.equal(first.thinking, "Let me think about: What is the weather in Rome?");
    assert.equal(first.toolCalls.length, 1);
    const turn: Message = {
      role: "assistant",
      content: first.text,
      thinking: first.thinking,
      toolCalls: first.toolCalls,
    };
    const result: Message = {
      role: "tool",
      content: "25 degrees",
      toolCallId: first.toolCalls[0].id,
    };
    const answer = await collect(
      claude.chat({
        model: MODEL,
        messages: [question, turn, result],
        tools: [WEATHER],
        think: true,
      }),
    );
    assert.equal(answer.text, "Echo: 25 degrees");
    const assistant = (sentBody(double, 1).messages as Record<string, unknown>[])[1];
    assert.deepEqual((assistant.content as unknown[])[0], {
      type: "thinking",
      thinking: first.thinking,
      signature: signThinking(first.thinking!),
    });

    // Thinking this provider never saw has no signature: it is left out, and Anthropic says why
    // it needs it.
    await assert.rejects(
      collect(claude.chat({
        model: MODEL,
        tools: [WEATHER],
        think: true,
        messages: [question, { ...turn, thinking: "edited thoughts" }, result],
      })),
      (e: Error) =>
        e instanceof UpstreamError && e.status === 400 &&
        e.message.includes(
          "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`.",
        ),
    );
    const sent = (sentBody(double, 2).messages as Record<string, unknown>[])[1];
    assert.equal((sent.content as Record<string, unknown>[])[0].type, "tool_use");
  });
});

Deno.test("every stop reason is normalised", async () => {
  await withDouble(async (double) => {
    const claude = provider(double);
    const reasonOf = async (
      request: Partial<Parameters<typeof claude.generate>[0]> = {},
    ) =>
      (await collect(claude.generate({ model: MODEL, prompt: "one two three", ...request })))
        .doneReason;
    assert.equal(await reasonOf(), "stop", "end_turn");
    assert.equal(await reasonOf({ options: { stop: [" two"] } }), "stop", "stop_sequence");
    assert.equal(await reasonOf({ options: { maxTokens: 2 } }), "length", "max_tokens");
    for (
      const [stopReason, expected] of [
        ["refusal", "content_filter"],
        ["pause_turn", "stop"],
        ["model_context_window_exceeded", "length"],
        ["tool_use", "tool_calls"],
      ] as const
    ) {
      double.scriptNext({ content: "x", stopReason });
      assert.equal(await reasonOf(), expected, stopReason);
    }
    const cut = await collect(
      claude.generate({ model: MODEL, prompt: "one two three", options: { stop: [" two"] } }),
    );
    assert.equal(cut.text, "Echo: one");
  });
});

// ---------------------------------------------------------------------------
// Errors

Deno.test("a rejected key names the variable it came from, never the key", async () => {
  await withDouble(async (double) => {
    const key = "sk-ant-api03-SECRET-never-shown";
    const claude = provider(double, { credential: fixedCredential(key, "ANTHROPIC_API_KEY") });
    await assert.rejects(collect(claude.generate({ model: MODEL, prompt: "x" })), (e: Error) => {
      assert.ok(e instanceof AuthenticationError);
      assert.equal(e.status, 401);
      assert.equal(e.credential, "ANTHROPIC_API_KEY");
      assert.match(
        e.message,
        new RegExp(
          `^Anthropic at ${double.host} rejected the API key from ANTHROPIC_API_KEY \\(HTTP 401 authentication_error: invalid x-api-key; request id req_011C\\w+\\): check that ANTHROPIC_API_KEY holds a current Anthropic key`,
        ),
      );
      assert.ok(!e.message.includes(key));
      return true;
    });
    assert.equal(messagesSent(double), 1, "a rejected key is not retried");
  });
});

Deno.test("Anthropic's error replies become typed errors that say what to do", async () => {
  await withDouble(async (double) => {
    const claude = provider(double, { retry: { maxRetries: 0 } });
    const call = () => collect(claude.generate({ model: MODEL, prompt: "x" }));
    double.failNext({
      kind: "status",
      status: 403,
      type: "permission_error",
      message: ANTHROPIC_ERRORS.permission,
    });
    await assert.rejects(
      call(),
      (e: Error) =>
        e instanceof AuthenticationError && e.status === 403 &&
        e.message.startsWith(
          `The API key from ANTHROPIC_API_KEY may not use this on Anthropic at ${double.host} (HTTP 403 permission_error: ${ANTHROPIC_ERRORS.permission}; request id`,
        ) &&
        e.message.endsWith(
          `: use a key of a workspace that has access to "${MODEL}", or pick another model.`,
        ),
    );

    double.failNext({
      kind: "status",
      status: 429,
      type: "rate_limit_error",
      message: ANTHROPIC_ERRORS.rateLimited,
      headers: { "retry-after": "20" },
    });
    await assert.rejects(
      call(),
      (e: Error) =>
        e instanceof RateLimitError && e.status === 429 && e.retryAfterMs === 20_000 &&
        e.message.includes(
          "): retry in 20 s (Anthropic's retry-after); lasting limits are raised in the Anthropic Console (Settings, Limits).",
        ),
    );

    double.failNext({
      kind: "status",
      status: 413,
      type: "request_too_large",
      message: ANTHROPIC_ERRORS.tooLarge,
    });
    await assert.rejects(call(), (e: Error) =>
      e instanceof RequestTooLargeError &&
      e.message.endsWith(
        ": the Messages API takes at most 32 MB per request; send fewer or smaller images, or a shorter conversation.",
      ));

    double.failNext({
      kind: "status",
      status: 529,
      type: "overloaded_error",
      message: ANTHROPIC_ERRORS.overloaded,
    });
    await assert.rejects(call(), (e: Error) =>
      e instanceof OverloadedError && e.status === 529 &&
      e.message.startsWith(
        `Anthropic at ${double.host} is temporarily overloaded (HTTP 529 overloaded_error: Overloaded; request id`,
      ) && e.message.endsWith(
        "): this is Anthropic's capacity, not your account; retry in a few seconds, or pick another model.",
      ));

    double.failNext({
      kind: "status",
      status: 500,
      type: "api_error",
      message: ANTHROPIC_ERRORS.apiError,
    });
    await assert.rejects(
      call(),
      (e: Error) =>
        e instanceof UpstreamError && e.status === 500 && e.errorType === "api_error" &&
        e.message.includes("this is on Anthropic's side; retry in a moment"),
    );

    double.failNext({
      kind: "raw",
      status: 502,
      body: "<html><body>502 Bad Gateway</body></html>",
      contentType: "text/html",
    });
    await assert.rejects(call(), (e: Error) =>
      e instanceof UpstreamError && e.status === 502 &&
      e.message ===
        `Anthropic at ${double.host} answered /v1/messages with HTTP 502 and a reply that is not an Anthropic error (text/html: "<html><body>502 Bad Gateway</body></html>"): a proxy or gateway between Rune and Anthropic may have failed; retry, and check ANTHROPIC_BASE_URL (or base_url in the configuration file).`);
  });
});

Deno.test("an invalid request is reported with Anthropic's own message", async () => {
  await withDouble(async (double) => {
    await assert.rejects(
      collect(
        provider(double).generate({ model: MODEL, prompt: "x", providerOptions: { bogus: 1 } }),
      ),
      (e: Error) =>
        e instanceof UpstreamError && e.status === 400 && e.errorType === "invalid_request_error" &&
        e.message.startsWith(
          `Anthropic at ${double.host} refused the request as invalid (HTTP 400 invalid_request_error: bogus: Extra inputs are not permitted; request id`,
        ) && e.message.endsWith(
          "): fix what Anthropic names (an argument, a message or a limit of the model) and retry.",
        ),
    );
    assert.equal(messagesSent(double), 1, "an invalid request is not retried");
  });
});

Deno.test("an error event in the middle of the reply ends the call, without a retry", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "error-event",
      afterTokens: 2,
      type: "overloaded_error",
      message: ANTHROPIC_ERRORS.overloaded,
    });
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of provider(double).generate({ model: MODEL, prompt: "a b c d" })) {
          if (c.type === "text") seen.push(c.text);
        }
      })(),
      (e: Error) =>
        e instanceof OverloadedError && e.status === 200 &&
        e.message ===
          `Anthropic at ${double.host} is temporarily overloaded in the middle of the reply (overloaded_error: Overloaded): this is Anthropic's capacity, not your account; retry in a few seconds, or pick another model.`,
    );
    assert.deepEqual(seen, ["Echo:", " a"]);
    assert.equal(messagesSent(double), 1, "tokens were relayed: no retry");
  });
});

// ---------------------------------------------------------------------------
// Retries

Deno.test("a 429 is retried after its retry-after, not the backoff, and the reply streams once", async () => {
  await withDouble(async (double) => {
    const waits: number[] = [];
    double.failNext({
      kind: "status",
      status: 429,
      type: "rate_limit_error",
      message: ANTHROPIC_ERRORS.rateLimited,
      headers: { "retry-after": "0" },
    });
    // The backoff alone would wait a minute; the total deadline fails the test long before.
    const claude = provider(double, {
      retry: { maxRetries: 2, baseDelayMs: 60_000, random: () => 0.5 },
      timeouts: { totalMs: 10_000 },
      onRetry: (error, attempt, ms) => {
        assert.ok(error instanceof RateLimitError);
        waits.push(attempt, ms);
      },
    });
    const chunks = await Array.fromAsync(claude.generate({ model: MODEL, prompt: "again" }));
    assert.deepEqual(chunks.filter((c) => c.type === "text").map((c) => c.text), [
      "Echo:",
      " again",
    ]);
    assert.deepEqual(waits, [1, 0]);
    assert.equal(messagesSent(double), 2);
  });
});

Deno.test("without retry-after, retries back off exponentially; they stop at the limit with the last error", async () => {
  await withDouble(async (double) => {
    const waits: number[] = [];
    const claude = provider(double, {
      retry: { maxRetries: 2, baseDelayMs: 2, random: () => 0.5 },
      onRetry: (_error, _attempt, ms) => waits.push(ms),
    });
    double.failNext({
      kind: "status",
      status: 529,
      type: "overloaded_error",
      message: "Overloaded",
    }, 2);
    const result = await collect(claude.generate({ model: MODEL, prompt: "x" }));
    assert.equal(result.text, "Echo: x");
    assert.equal(messagesSent(double), 3);
    // Full jitter over a doubling base: 0.5 × 2 ms, 0.5 × 4 ms.
    assert.deepEqual(waits, [1, 2]);

    double.failNext({
      kind: "status",
      status: 500,
      type: "api_error",
      message: "Internal server error",
    }, 3);
    await assert.rejects(
      collect(claude.generate({ model: MODEL, prompt: "x" })),
      (e: Error) => e instanceof UpstreamError && e.status === 500,
    );
    assert.equal(messagesSent(double), 6, "one attempt and two retries");
  });
});

Deno.test("a retry-after longer than the longest wait is not waited for", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "status",
      status: 429,
      type: "rate_limit_error",
      message: ANTHROPIC_ERRORS.rateLimited,
      headers: { "retry-after": "3600" },
    });
    await assert.rejects(
      collect(provider(double).generate({ model: MODEL, prompt: "x" })),
      (e: Error) => e instanceof RateLimitError && e.message.includes("retry in 3600 s"),
    );
    assert.equal(messagesSent(double), 1);
  });
});

Deno.test("failures before the first token are retried: an error event, a cut connection", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "error-event",
      afterTokens: 0,
      type: "overloaded_error",
      message: "Overloaded",
    });
    double.failNext({ kind: "drop", afterTokens: 0 });
    const result = await collect(provider(double).generate({ model: MODEL, prompt: "x" }));
    assert.equal(result.text, "Echo: x");
    assert.equal(messagesSent(double), 3);
    await double.waitForOpenStreams(0);
  });
});

Deno.test("a connection cut after tokens becomes ConnectionDroppedError, without a retry", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "drop", afterTokens: 2 });
    await assert.rejects(
      collect(provider(double).generate({ model: MODEL, prompt: "a b c d" })),
      (e: Error) =>
        e instanceof ConnectionDroppedError &&
        e.message.startsWith(
          `Anthropic at ${double.host} closed the connection in the middle of the reply after 4 events`,
        ),
    );
    assert.equal(messagesSent(double), 1);
  });
});

Deno.test("models listing is retried after a 529 too", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "status",
      status: 529,
      type: "overloaded_error",
      message: "Overloaded",
    });
    assert.equal((await provider(double).listModels()).length, 4);
    assert.equal(double.requests.length, 2);
  });
});

// ---------------------------------------------------------------------------
// Credentials

/** A bearer credential holding `token` that refreshes to whatever `refresh` returns. */
function oauthCredential(
  token: string,
  refresh?: () => string | undefined,
): CredentialSource & { refreshes: number } {
  const source = {
    describe: "the credential store (anthropic)",
    refreshes: 0,
    get: () => Promise.resolve(token),
    ...(refresh && {
      refresh: () => {
        source.refreshes++;
        const fresh = refresh();
        if (fresh !== undefined) token = fresh;
        return Promise.resolve(fresh);
      },
    }),
  };
  return source;
}

Deno.test("after a 401 the credential is refreshed once and the request sent again", async () => {
  await withDouble(async (double) => {
    const stale = double.bearerToken;
    const current = double.rotateToken();
    const credential = oauthCredential(stale, () => current);
    const claude = provider(double, { credential, authScheme: "bearer" });
    const result = await collect(claude.generate({ model: MODEL, prompt: "x" }));
    assert.equal(result.text, "Echo: x");
    assert.equal(credential.refreshes, 1);
    assert.deepEqual(
      double.requests.map((r) => [r.headers.authorization, r.headers["x-api-key"]]),
      [[`Bearer ${stale}`, undefined], [`Bearer ${current}`, undefined]],
    );
    // The fresh token is asked for on every request, never cached by the provider.
    await collect(claude.generate({ model: MODEL, prompt: "y" }));
    assert.equal(credential.refreshes, 1);
    assert.equal(double.requests.at(-1)?.headers.authorization, `Bearer ${current}`);
  });
});

Deno.test("a refresh that gives nothing new ends with the 401, naming the credential", async () => {
  await withDouble(async (double) => {
    const stale = double.bearerToken;
    double.rotateToken();
    const same = oauthCredential(stale, () => stale);
    await assert.rejects(
      collect(
        provider(double, { credential: same, authScheme: "bearer" }).generate({
          model: MODEL,
          prompt: "x",
        }),
      ),
      (e: Error) =>
        e instanceof AuthenticationError && e.credential === "the credential store (anthropic)" &&
        e.message.includes("Invalid bearer token") && !e.message.includes(stale),
    );
    assert.equal(same.refreshes, 1);
    assert.equal(messagesSent(double), 1);
    const none = oauthCredential(stale, () => undefined);
    await assert.rejects(
      provider(double, { credential: none, authScheme: "bearer" }).listModels(),
      AuthenticationError,
    );
    assert.equal(none.refreshes, 1);
  });
});

Deno.test("configured headers are sent, but cannot replace the credential or the version", async () => {
  await withDouble(async (double) => {
    await collect(
      provider(double, {
        headers: {
          "anthropic-beta": "output-128k-2025-02-19",
          "X-Api-Key": "sk-other",
          Authorization: "Bearer other",
          "anthropic-version": "2026-10-21",
        },
      }).generate({ model: MODEL, prompt: "x" }),
    );
    const { headers } = double.requests[0];
    assert.equal(headers["anthropic-beta"], "output-128k-2025-02-19");
    assert.equal(headers["x-api-key"], double.apiKey);
    assert.equal(headers.authorization, undefined);
    assert.equal(headers["anthropic-version"], "2023-06-01");
  });
});

Deno.test("the key never appears in any error message or cause", async () => {
  await withDouble(async (double) => {
    const key = "sk-ant-api03-LEAKCHECK-0123456789abcdef";
    const claude = provider(double, {
      credential: fixedCredential(key, "ANTHROPIC_API_KEY"),
      retry: { maxRetries: 0 },
    });
    const errors: unknown[] = [];
    const capture = async (work: Promise<unknown>) => {
      try {
        await work;
      } catch (error) {
        errors.push(error);
      }
    };
    await capture(collect(claude.generate({ model: MODEL, prompt: "x" })));
    await capture(claude.listModels());
    await capture(claude.showModel(MODEL));
    await capture(claude.ping());
    const good = provider(double, { retry: { maxRetries: 0 } });
    for (
      const [status, type] of [[403, "permission_error"], [429, "rate_limit_error"], [
        500,
        "api_error",
      ]] as const
    ) {
      double.failNext({ kind: "status", status, type, message: "m" });
      await capture(collect(good.generate({ model: MODEL, prompt: "x" })));
    }
    double.failNext({ kind: "error-event", afterTokens: 1, type: "api_error", message: "m" });
    await capture(collect(good.generate({ model: MODEL, prompt: "x" })));
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    await capture(
      collect(
        createAnthropicProvider({
          baseUrl: `http://127.0.0.1:${port}`,
          credential: fixedCredential(key, "ANTHROPIC_API_KEY"),
          retry: { maxRetries: 0 },
        }).generate({ model: MODEL, prompt: "x" }),
      ),
    );
    assert.equal(errors.length, 9);
    for (const error of errors) {
      let current: unknown = error;
      for (let depth = 0; current instanceof Error && depth < 8; depth++) {
        assert.ok(!current.message.includes(key), `no key in: ${current.message}`);
        assert.ok(!String(current.stack).includes(key));
        current = current.cause;
      }
    }
    for (const key of [double.apiKey]) {
      for (const error of errors) assert.ok(!(error as Error).message.includes(key));
    }
  });
});

Deno.test("an unreachable Anthropic names the address and what to check", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const claude = createAnthropicProvider({
    baseUrl: `http://127.0.0.1:${port}`,
    retry: { maxRetries: 0 },
  });
  await assert.rejects(claude.listModels(), (e: Error) => {
    assert.ok(e instanceof ProviderUnreachableError);
    assert.equal(e.reason, "refused");
    assert.match(e.message, new RegExp(`^Cannot reach Anthropic at 127\\.0\\.0\\.1:${port}`));
    assert.match(e.message, /ANTHROPIC_BASE_URL \(or base_url in the configuration file\)/);
    return true;
  });
});

// ---------------------------------------------------------------------------
// Invalid replies

Deno.test("tool arguments that are not valid JSON become InvalidResponseError", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "raw",
      body: START +
        event({
          type: "content_block_start",
          index: 0,
          content_block: { type: "tool_use", id: "toolu_1", name: "f", input: {} },
        }) +
        event({
          type: "content_block_delta",
          index: 0,
          delta: { type: "input_json_delta", partial_json: '{"a":' },
        }) +
        event({ type: "content_block_stop", index: 0 }) + END,
    });
    await assert.rejects(
      collect(provider(double).chat({ model: MODEL, messages: [{ role: "user", content: "x" }] })),
      (e: Error) =>
        e instanceof InvalidResponseError &&
        e.message.startsWith(
          `Invalid response from Anthropic at ${double.host}: /v1/messages: the arguments of tool call "f" (block 0) are not valid JSON: "{\\"a\\":".`,
        ),
    );
  });
});

Deno.test("unknown event, block and delta types are skipped; a delta for no block is invalid", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "raw",
      body: START +
        event({ type: "future_event", anything: true }) +
        event({
          type: "content_block_start",
          index: 0,
          content_block: {
            type: "server_tool_use",
            id: "srvtoolu_1",
            name: "web_search",
            input: {},
          },
        }) +
        event({
          type: "content_block_delta",
          index: 0,
          delta: { type: "input_json_delta", partial_json: '{"q":"x"}' },
        }) +
        event({ type: "content_block_stop", index: 0 }) +
        event({
          type: "content_block_start",
          index: 1,
          content_block: { type: "text", text: "" },
        }) +
        event({
          type: "content_block_delta",
          index: 1,
          delta: { type: "text_delta", text: "Hi" },
        }) +
        event({
          type: "content_block_delta",
          index: 1,
          delta: { type: "citations_delta", citation: {} },
        }) +
        event({ type: "content_block_stop", index: 1 }) + END,
    });
    const result = await collect(provider(double).generate({ model: MODEL, prompt: "x" }));
    assert.equal(result.text, "Hi");
    assert.deepEqual(result.toolCalls, []);
    assert.deepEqual(result.usage.completionTokens, 2);

    double.failNext({
      kind: "raw",
      body: START +
        event({ type: "content_block_delta", index: 3, delta: { type: "text_delta", text: "x" } }) +
        END,
    });
    await assert.rejects(
      collect(provider(double).generate({ model: MODEL, prompt: "x" })),
      (e: Error) =>
        e instanceof InvalidResponseError &&
        e.message.includes("a delta arrived for content block 3, which never started"),
    );
  });
});

Deno.test("a 200 reply that is not an event stream, or an event that is not JSON, is invalid", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "raw", body: "<html>proxy</html>", contentType: "text/html" });
    await assert.rejects(
      collect(provider(double).generate({ model: MODEL, prompt: "x" })),
      (e: Error) =>
        e instanceof InvalidResponseError &&
        e.message ===
          `Invalid response from Anthropic at ${double.host}: /v1/messages answered with text/html: "<html>proxy</html>" instead of an event stream: is ANTHROPIC_BASE_URL (or base_url in the configuration file) pointing at Anthropic's API?`,
    );
    double.failNext({ kind: "raw", body: START + "event: content_block_start\ndata: {oops\n\n" });
    await assert.rejects(
      collect(provider(double).generate({ model: MODEL, prompt: "x" })),
      (e: Error) =>
        e instanceof InvalidResponseError &&
        e.message ===
          `Invalid response from Anthropic at ${double.host}: /v1/messages event 2 (content_block_start) is not JSON: "{oops"`,
    );
    double.failNext({
      kind: "raw",
      body: START + event({ type: "message_delta", delta: { stop_reason: 3 } }),
    });
    await assert.rejects(
      collect(provider(double).generate({ model: MODEL, prompt: "x" })),
      (e: Error) =>
        e instanceof InvalidResponseError &&
        e.message.startsWith(
          `Invalid response from Anthropic at ${double.host}: /v1/messages event 2 (message_delta): delta.stop_reason:`,
        ),
    );
  });
});

Deno.test("a stream that ends without message_stop is a dropped connection", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "raw",
      body: START +
        event({
          type: "content_block_start",
          index: 0,
          content_block: { type: "text", text: "" },
        }) +
        event({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hi" } }),
    });
    await assert.rejects(
      collect(provider(double).generate({ model: MODEL, prompt: "x" })),
      (e: Error) =>
        e instanceof ConnectionDroppedError &&
        e.message ===
          `Anthropic at ${double.host} ended the reply after 3 events without "message_stop": the connection was cut; retry.`,
    );
  });
});

// ---------------------------------------------------------------------------
// Cancellation, deadlines, budgets

Deno.test("aborting a generation closes the upstream stream at once", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 20;
    const controller = new AbortController();
    let texts = 0;
    await assert.rejects(
      (async () => {
        for await (
          const c of provider(double).generate(
            { model: MODEL, prompt: "a ".repeat(500) },
            { signal: controller.signal },
          )
        ) {
          if (c.type === "text" && ++texts === 3) controller.abort();
        }
      })(),
      (e: Error) => e.name === "AbortError",
    );
    await double.waitForOpenStreams(0);
    assert.equal(texts, 3);
    assert.equal(double.streamsStarted, 1);
  });
});

Deno.test("a consumer that stops reading closes the upstream stream", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 20;
    for await (const c of provider(double).generate({ model: MODEL, prompt: "a ".repeat(500) })) {
      if (c.type === "text") break;
    }
    await double.waitForOpenStreams(0);
  });
});

Deno.test("Anthropic hanging after the headers trips the first-token timeout", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "hang-after-headers" });
    await assert.rejects(
      collect(
        provider(double, { timeouts: { firstTokenMs: 100 }, retry: { maxRetries: 0 } }).generate({
          model: MODEL,
          prompt: "x",
        }),
      ),
      (e: Error) =>
        e instanceof ProviderTimeoutError && e.phase === "first-token" &&
        e.message.startsWith(`Anthropic at ${double.host} sent nothing back within 0.1s`),
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("tokens slower than the idle timeout end the stream with an idle timeout", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 300;
    await assert.rejects(
      collect(
        provider(double, { timeouts: { idleMs: 100 } }).generate({
          model: MODEL,
          prompt: "a b c d e",
        }),
      ),
      (e: Error) => e instanceof ProviderTimeoutError && e.phase === "idle",
    );
    await double.waitForOpenStreams(0);
    assert.equal(messagesSent(double), 1, "a deadline is not retried");
  });
});

Deno.test("the total timeout bounds the whole call, retries included", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 50;
    await assert.rejects(
      collect(
        provider(double, { timeouts: { totalMs: 150 } }).generate({
          model: MODEL,
          prompt: "a ".repeat(100),
        }),
      ),
      (e: Error) => e instanceof ProviderTimeoutError && e.phase === "total",
    );
    await double.waitForOpenStreams(0);
    double.failNext({
      kind: "status",
      status: 429,
      type: "rate_limit_error",
      message: "m",
      headers: { "retry-after": "20" },
    });
    await assert.rejects(
      collect(
        provider(double, { timeouts: { totalMs: 200 } }).generate({ model: MODEL, prompt: "x" }),
      ),
      (e: Error) => e instanceof ProviderTimeoutError && e.phase === "total",
    );
  });
});

Deno.test("a reply past the stream budget is stopped and its body cancelled", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 1;
    await assert.rejects(
      collect(
        provider(double, { limits: { maxStreamBytes: 40 } }).generate({
          model: MODEL,
          prompt: "word ".repeat(200),
        }),
      ),
      (e: Error) => e instanceof UpstreamTooLargeError && e.limit === "stream" && e.maxBytes === 40,
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("a model list past the reply budget and an event past its length are refused", async () => {
  await withDouble(async (double) => {
    await assert.rejects(
      provider(double, { limits: { maxReplyBytes: 200 } }).listModels(),
      (e: Error) => e instanceof UpstreamTooLargeError && e.limit === "reply",
    );
    // 100 000 characters in one event arrive over several reads; the parser stops at 1024.
    double.failNext({
      kind: "raw",
      body: START +
        event({
          type: "content_block_start",
          index: 0,
          content_block: { type: "text", text: "" },
        }) +
        event({
          type: "content_block_delta",
          index: 0,
          delta: { type: "text_delta", text: "x".repeat(100_000) },
        }) + END,
    });
    await assert.rejects(
      collect(provider(double, { maxEventLength: 1024 }).generate({ model: MODEL, prompt: "x" })),
      (e: Error) =>
        e instanceof InvalidResponseError && /longer than 1024 characters/.test(e.message),
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("only the first bytes of an error body are read, and the status still decides", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "status",
      status: 529,
      type: "overloaded_error",
      message: "x".repeat(10_000),
    });
    await assert.rejects(
      collect(
        provider(double, { limits: { maxErrorBytes: 100 }, retry: { maxRetries: 0 } }).generate({
          model: MODEL,
          prompt: "x",
        }),
      ),
      (e: Error) =>
        e instanceof OverloadedError && e.status === 529 && e.message.includes("cut short") &&
        e.message.length < 1000,
    );
  });
});
