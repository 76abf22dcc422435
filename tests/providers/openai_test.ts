/**
 * The OpenAI-compatible provider against the OpenAI double over real HTTP:
 * exact request bodies in both dialects, streaming, tool calls assembled
 * from fragments and sent back by id, reasoning text, embeddings, every
 * stop reason, every error class and its message, retries before the first
 * token only, cancellation, deadlines, byte budgets, keyless servers,
 * credential refresh, deviating servers, refused arguments, and the key in
 * no error message.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fixedCredential } from "../../src/providers/credential.ts";
import {
  ArgumentError,
  AuthenticationError,
  ConnectionDroppedError,
  InvalidResponseError,
  ModelNotFoundError,
  ProviderTimeoutError,
  ProviderUnreachableError,
  UpstreamError,
  UpstreamTooLargeError,
} from "../../src/providers/errors.ts";
import {
  createOpenAiProvider,
  MAX_TOOL_CALLS,
  type OpenAiProviderOptions,
} from "../../src/providers/openai/mod.ts";
import {
  type ChatRequest,
  type Chunk,
  collect,
  type FinalResult,
  type Provider,
} from "../../src/providers/types.ts";
import { embedText } from "../ollama_double.ts";
import {
  DOUBLE_API_KEY,
  HIDDEN_REASONING_TOKENS,
  OPENAI_ERRORS,
  type OpenAiDouble,
  type OpenAiDoubleOptions,
  startOpenAiDouble,
} from "../openai_double.ts";

const CHAT = "/v1/chat/completions";

async function withDouble(
  fn: (double: OpenAiDouble) => Promise<void>,
  options: OpenAiDoubleOptions = {},
): Promise<void> {
  const double = await startOpenAiDouble(options);
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

function provider(double: OpenAiDouble, options: OpenAiProviderOptions = {}): Provider {
  return createOpenAiProvider({
    baseUrl: double.url,
    credential: fixedCredential(DOUBLE_API_KEY, "OPENAI_API_KEY"),
    retry: { baseDelayMs: 1 },
    ...options,
  });
}

function sent(double: OpenAiDouble, path = CHAT): Record<string, unknown>[] {
  return double.requests.filter((r) => r.path === path).map((r) =>
    r.body as Record<string, unknown>
  );
}

function user(content: string): ChatRequest["messages"][number] {
  return { role: "user", content };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the call to fail");
}

Deno.test("the provider reports its defaults: id openai, label OpenAI, type openai, embeddings", () => {
  const openai = createOpenAiProvider();
  assert.equal(openai.id, "openai");
  assert.equal(openai.label, "OpenAI");
  assert.equal(openai.type, "openai");
  assert.equal(openai.address, "api.openai.com/v1");
  assert.deepEqual(openai.capabilities(), {
    completion: true,
    streaming: true,
    vision: true,
    tools: true,
    embeddings: true,
    thinking: true,
  });
  const local = createOpenAiProvider({ id: "vllm", label: "vLLM", baseUrl: "http://h:8000/v1/" });
  assert.equal(local.address, "h:8000/v1");
  assert.equal(local.id, "vllm");
});

Deno.test("listModels() lists /models with the bearer key and maps created and owner", async () => {
  await withDouble(async (double) => {
    const models = await provider(double).listModels();
    assert.deepEqual(models, [
      { name: "gpt-4o-mini", modifiedAt: "2024-07-16T23:32:21.000Z", family: "system" },
      { name: "o4-mini", modifiedAt: "2025-04-09T19:02:31.000Z", family: "system" },
      { name: "deepseek-reasoner", modifiedAt: "2025-01-22T00:00:00.000Z", family: "deepseek" },
      { name: "text-embedding-3-small", modifiedAt: "2024-01-22T18:43:17.000Z", family: "system" },
    ]);
    const request = double.requests[0];
    assert.equal(request.path, "/v1/models");
    assert.equal(request.headers.authorization, `Bearer ${DOUBLE_API_KEY}`);
  });
});

Deno.test("a server without /models lists the configured models, or says to configure them", async () => {
  await withDouble(async (double) => {
    const configured = provider(double, { id: "llamacpp", models: ["qwen3-8b", "gemma-3"] });
    assert.deepEqual(await configured.listModels(), [{ name: "qwen3-8b" }, { name: "gemma-3" }]);
    const bare = provider(double, { id: "llamacpp", label: "llama.cpp" });
    const error = await failure(bare.listModels());
    assert.ok(error instanceof UpstreamError && error.status === 404);
    assert.equal(
      error.message,
      `llama.cpp at ${double.host}/v1 has no model listing (HTTP 404 on /models): name the server's models in the "models" of provider "llamacpp", or check that the base_url of provider "llamacpp" is the API's base URL (usually ending in /v1).`,
    );
    // Listing is all showModel can go by; without it, the details are a guess.
    const details = await bare.showModel("whatever");
    assert.equal(details.capabilitiesKnown, false);
    assert.equal(details.name, "whatever");
  }, { quirks: { listModels: false } });
});

Deno.test("showModel() guesses capabilities from a listed name and refuses an unlisted one", async () => {
  await withDouble(async (double) => {
    const openai = provider(double);
    const embedding = await openai.showModel("text-embedding-3-small");
    assert.deepEqual(embedding, {
      name: "text-embedding-3-small",
      modifiedAt: "2024-01-22T18:43:17.000Z",
      family: "system",
      capabilities: {
        completion: false,
        streaming: false,
        vision: false,
        tools: false,
        embeddings: true,
        thinking: false,
      },
      capabilitiesKnown: false,
      extra: { owned_by: "system" },
    });
    assert.equal((await openai.showModel("o4-mini")).capabilities.thinking, true);
    assert.equal((await openai.showModel("gpt-4o-mini")).capabilities.thinking, false);
    const error = await failure(openai.showModel("gpt-9"));
    assert.ok(error instanceof ModelNotFoundError && error.model === "gpt-9");
    assert.equal(
      error.message,
      `Model "gpt-9" is not among the 4 models OpenAI at ${double.host}/v1 lists: pick one from "rune ai list --provider openai" (or ai_list_models), and check its spelling.`,
    );
  });
});

Deno.test("generate() streams tokens in order and ends with usage from the final chunk", async () => {
  await withDouble(async (double) => {
    const chunks: Chunk[] = await Array.fromAsync(
      provider(double).generate({ model: "gpt-4o-mini", prompt: "hello brave new world" }),
    );
    assert.deepEqual(chunks.slice(0, -1), [
      { type: "text", text: "Echo:" },
      { type: "text", text: " hello" },
      { type: "text", text: " brave" },
      { type: "text", text: " new" },
      { type: "text", text: " world" },
    ]);
    assert.deepEqual(chunks.at(-1), {
      type: "done",
      result: {
        model: "gpt-4o-mini",
        text: "Echo: hello brave new world",
        toolCalls: [],
        doneReason: "stop",
        // The double counts 3 + (words + 4) per message.
        usage: { promptTokens: 11, completionTokens: 5 },
      },
    });
    assert.deepEqual(sent(double), [{
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hello brave new world" }],
      stream: true,
      stream_options: { include_usage: true },
    }]);
    assert.equal(double.requests[0].headers.accept, "text/event-stream, application/json");
  });
});

Deno.test("a compatible server gets max_tokens, top_k, response_format, reasoning_effort and provider options", async () => {
  await withDouble(async (double) => {
    const schema = {
      title: "Echo reply",
      type: "object",
      properties: { answer: { type: "string" } },
    };
    const result = await collect(
      provider(double).generate({
        model: "deepseek-reasoner",
        prompt: "q",
        system: "be brief",
        format: schema,
        think: 2048,
        options: { temperature: 0.2, topP: 0.9, topK: 20, seed: 7, maxTokens: 64, stop: ["\n"] },
        providerOptions: { user: "u-1", temperature: 9, repetition_penalty: 1.1 },
      }),
    );
    assert.deepEqual(sent(double), [{
      user: "u-1",
      temperature: 0.2,
      repetition_penalty: 1.1,
      model: "deepseek-reasoner",
      messages: [{ role: "system", content: "be brief" }, { role: "user", content: "q" }],
      response_format: {
        type: "json_schema",
        json_schema: { name: "Echo_reply", schema },
      },
      top_p: 0.9,
      top_k: 20,
      seed: 7,
      stop: ["\n"],
      max_tokens: 64,
      reasoning_effort: "low",
      stream: true,
      stream_options: { include_usage: true },
    }]);
    assert.equal(result.thinking, "Okay, the user wants me to echo: Echo: q");
    assert.equal(result.text, '{"answer":"Echo: q"}');
  }, { strict: false });
});

Deno.test("OpenAI's own API gets max_completion_tokens and reasoning_effort from a budget", async () => {
  await withDouble(async (double) => {
    const openai = provider(double, { dialect: "openai" });
    const result = await collect(
      openai.chat({
        model: "o4-mini",
        messages: [user("plan it as json")],
        think: 20_000,
        format: "json",
        options: { maxTokens: 100 },
      }),
    );
    assert.deepEqual(sent(double), [{
      model: "o4-mini",
      messages: [{ role: "user", content: "plan it as json" }],
      response_format: { type: "json_object" },
      max_completion_tokens: 100,
      reasoning_effort: "high",
      stream: true,
      stream_options: { include_usage: true },
    }]);
    assert.equal(result.text, '{"echo":"Echo: plan it as json"}');
  });
});

Deno.test("OpenAI's reasoning model answers with hidden reasoning counted in usage", async () => {
  await withDouble(async (double) => {
    const result = await collect(
      provider(double, { dialect: "openai" }).chat({
        model: "o4-mini",
        messages: [user("answer in json please")],
        think: true,
        format: "json",
        options: { maxTokens: 100 },
      }),
    );
    assert.equal(sent(double)[0].reasoning_effort, "medium");
    assert.equal(result.text, '{"echo":"Echo: answer in json please"}');
    assert.equal(result.thinking, undefined);
    assert.equal(result.usage.completionTokens, HIDDEN_REASONING_TOKENS + 5);
    assert.equal(result.doneReason, "stop");
  });
});

Deno.test("arguments a server cannot honour are refused by name before anything is sent", async () => {
  await withDouble(async (double) => {
    const openai = provider(double, { dialect: "openai" });
    const local = provider(double, { id: "vllm", label: "vLLM" });
    const cases: [Promise<unknown>, string, string][] = [
      [
        collect(openai.generate({ model: "gpt-4o-mini", prompt: "x", options: { topK: 5 } })),
        "top_k",
        `Provider "openai" (OpenAI) cannot honour top_k: OpenAI's API has no top-k sampling and answers 400 for it; leave options.top_k out, or use options.top_p.`,
      ],
      [
        collect(local.generate({ model: "m", prompt: "x", options: { contextLength: 8192 } })),
        "context_length",
        `Provider "vllm" (vLLM) cannot honour context_length: Chat Completions has no per-request context size; it is a server setting (vLLM --max-model-len, llama.cpp -c, LM Studio's model settings). Leave options.context_length out.`,
      ],
      [
        collect(local.chat({ model: "m", messages: [user("x")], keepAlive: "5m" })),
        "keep_alive",
        `Provider "vllm" (vLLM) cannot honour keep_alive: Chat Completions servers load and unload models themselves; leave keep_alive out (it is for Ollama's own API).`,
      ],
      [
        collect(openai.chat({ model: "gpt-4o-mini", messages: [user("x")], think: true })),
        "think",
        `Provider "openai" (OpenAI) cannot honour think: OpenAI's model "gpt-4o-mini" does not reason; pick a reasoning model such as "o4-mini" or "gpt-5", or leave think out.`,
      ],
      [
        collect(openai.chat({
          model: "gpt-4o-mini",
          messages: [user("x"), { role: "tool", content: "sunny", toolName: "get_weather" }],
        })),
        "tool_call_id",
        `Provider "openai" (OpenAI) cannot honour tool_call_id: messages[1] is a tool result without tool_call_id; Chat Completions pairs results with calls by id: give the id of the tool call it answers.`,
      ],
      [
        collect(openai.chat({
          model: "gpt-4o-mini",
          messages: [user("x"), {
            role: "assistant",
            content: "",
            toolCalls: [{ name: "f", arguments: {} }],
          }],
        })),
        "tool_calls",
        `Provider "openai" (OpenAI) cannot honour tool_calls: messages[1].tool_calls[0] has no id; Chat Completions pairs tool results with calls by id: send the id the model gave the call.`,
      ],
      [
        collect(openai.chat({
          model: "gpt-4o-mini",
          messages: [{
            role: "system",
            content: "s",
            images: [{ data: "x", mediaType: "image/png" }],
          }],
        })),
        "images",
        `Provider "openai" (OpenAI) cannot honour images: messages[0] (role system) carries images, but Chat Completions takes images only in user messages; move them to a user message.`,
      ],
      [
        collect(openai.generate({ model: "gpt-4o-mini", prompt: "x", images: [{ data: "AAAA" }] })),
        "images",
        `Provider "openai" (OpenAI) cannot honour images: image 1 is not PNG, JPEG, GIF or WebP (its media type is unknown); send it as a data: URL with its media type, or convert it.`,
      ],
      [
        openai.embed({ model: "text-embedding-3-small", input: "x", keepAlive: 0 }),
        "keep_alive",
        `Provider "openai" (OpenAI) cannot honour keep_alive: the embeddings API has no keep_alive; leave it out.`,
      ],
      [
        openai.embed({ model: "text-embedding-3-small", input: "x", truncate: true }),
        "truncate",
        `Provider "openai" (OpenAI) cannot honour truncate: the embeddings API does not truncate long inputs (it answers with an error); shorten the input instead.`,
      ],
    ];
    for (const [call, argument, message] of cases) {
      const error = await failure(call);
      assert.ok(error instanceof ArgumentError, `${argument}: ${error}`);
      assert.equal(error.argument, argument);
      assert.equal(error.message, message);
    }
    assert.deepEqual(double.requests, []);
  });
});

const WEATHER = {
  name: "get_weather",
  description: "Weather for a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

Deno.test("a tool call is assembled from its fragments and its result goes back by id", async () => {
  await withDouble(async (double) => {
    const openai = provider(double);
    const chunks = await Array.fromAsync(
      openai.chat({
        model: "gpt-4o-mini",
        messages: [user("what is the weather in Paris?")],
        tools: [WEATHER],
      }),
    );
    assert.equal(chunks.length, 2);
    const [calls, done] = chunks;
    assert.equal(calls.type, "tool_calls");
    if (calls.type !== "tool_calls" || done.type !== "done") return;
    const id = calls.toolCalls[0].id ?? "";
    assert.match(id, /^call_[A-Za-z0-9]{24}$/);
    assert.deepEqual(calls.toolCalls, [{ id, name: "get_weather", arguments: { city: "Paris" } }]);
    assert.deepEqual(done.result.toolCalls, calls.toolCalls);
    assert.equal(done.result.doneReason, "tool_calls");
    assert.equal(done.result.text, "");
    assert.deepEqual(sent(double)[0].tools, [{ type: "function", function: WEATHER }]);

    const answer = await collect(openai.chat({
      model: "gpt-4o-mini",
      messages: [
        user("what is the weather in Paris?"),
        { role: "assistant", content: "", toolCalls: calls.toolCalls },
        { role: "tool", content: "sunny, 21 °C", toolCallId: id, toolName: "get_weather" },
      ],
      tools: [WEATHER],
    }));
    assert.equal(answer.text, "Echo: sunny, 21 °C");
    assert.equal(answer.doneReason, "stop");
    assert.deepEqual(sent(double)[1].messages, [
      { role: "user", content: "what is the weather in Paris?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [{
          id,
          type: "function",
          function: { name: "get_weather", arguments: '{"city":"Paris"}' },
        }],
      },
      { role: "tool", tool_call_id: id, content: "sunny, 21 °C" },
    ]);
  });
});

Deno.test("several tool calls and the text beside them come back whole, in order", async () => {
  await withDouble(async (double) => {
    const script = {
      content: "Let me look both up.",
      toolCalls: [
        { name: "get_weather", arguments: { city: "Oslo", days: 3, detail: { wind: true } } },
        { name: "get_time", arguments: { zone: "Europe/Oslo" } },
      ],
    };
    const expected = script.toolCalls.map(({ name, arguments: args }) => ({
      name,
      arguments: args,
    }));
    for (const wholeToolCalls of [false, true]) {
      double.quirks = { wholeToolCalls };
      double.scriptNext(script);
      const chunks = await Array.fromAsync(
        provider(double).chat({
          model: "gpt-4o-mini",
          messages: [user("weather and time in Oslo")],
          tools: [WEATHER, { name: "get_time" }],
        }),
      );
      assert.deepEqual(chunks.slice(0, 5).map((c) => c.type === "text" && c.text), [
        "Let",
        " me",
        " look",
        " both",
        " up.",
      ]);
      const calls = chunks[5];
      assert.equal(calls.type, "tool_calls");
      if (calls.type !== "tool_calls") return;
      assert.deepEqual(calls.toolCalls.map(({ id: _, ...rest }) => rest), expected);
      assert.equal(new Set(calls.toolCalls.map((c) => c.id)).size, 2, "each call keeps its id");
      const done = chunks[6];
      assert.ok(done.type === "done" && done.result.doneReason === "tool_calls");
    }
  });
});

Deno.test("malformed tool-call arguments are an invalid response naming the call", async () => {
  await withDouble(async (double) => {
    double.scriptNext({ toolCalls: [{ name: "get_weather", arguments: '{"city": "Par' }] });
    const error = await failure(
      collect(provider(double).chat({ model: "gpt-4o-mini", messages: [user("x")] })),
    );
    assert.ok(error instanceof InvalidResponseError);
    assert.match(
      error.message,
      new RegExp(
        `^Invalid response from OpenAI at ${double.host}/v1: the arguments of tool call "get_weather" \\(call_\\w+\\) are not valid JSON \\("\\{\\\\"city\\\\": \\\\"Par"\\): the model wrote malformed arguments`,
      ),
    );
    double.scriptNext({ toolCalls: [{ name: "f", arguments: "[1,2]" }] });
    await assert.rejects(
      collect(provider(double).chat({ model: "gpt-4o-mini", messages: [user("x")] })),
      (e: Error) =>
        e instanceof InvalidResponseError && /"\[1,2\]", not a JSON object/.test(e.message),
    );
  });
});

Deno.test(`more than ${MAX_TOOL_CALLS} tool calls in one reply are refused`, async () => {
  await withDouble(async (double) => {
    double.scriptNext({
      toolCalls: Array.from({ length: MAX_TOOL_CALLS + 1 }, (_, i) => ({
        name: `f${i}`,
        arguments: {},
      })),
    });
    await assert.rejects(
      collect(provider(double).chat({ model: "gpt-4o-mini", messages: [user("x")] })),
      (e: Error) =>
        e instanceof InvalidResponseError &&
        e.message.endsWith(`makes more than ${MAX_TOOL_CALLS} tool calls; ask for fewer.`),
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("reasoning_content and reasoning deltas become thinking", async () => {
  await withDouble(async (double) => {
    for (const reasoningField of ["reasoning_content", "reasoning"] as const) {
      double.quirks = { reasoningField };
      const chunks = await Array.fromAsync(
        provider(double).chat({ model: "deepseek-reasoner", messages: [user("hi")] }),
      );
      assert.equal(
        chunks.filter((c) => c.type === "thinking").map((c) => c.text).join(""),
        "Okay, the user wants me to echo: Echo: hi",
      );
      assert.equal(chunks[0].type, "thinking", "thinking streams first");
      const done = chunks.at(-1);
      assert.ok(done?.type === "done");
      assert.equal(done.result.thinking, "Okay, the user wants me to echo: Echo: hi");
      assert.equal(done.result.text, "Echo: hi");
    }
  });
});

Deno.test("images go as image_url data URLs with their media type", async () => {
  await withDouble(async (double) => {
    const png = "iVBORw0KGgoAAAANSUhEUg==";
    const result = await collect(
      provider(double).generate({
        model: "gpt-4o-mini",
        prompt: "what is it?",
        images: [{ data: png, mediaType: "image/png" }],
      }),
    );
    assert.deepEqual(sent(double)[0].messages, [{
      role: "user",
      content: [
        { type: "text", text: "what is it?" },
        { type: "image_url", image_url: { url: `data:image/png;base64,${png}` } },
      ],
    }]);
    assert.equal(result.text, "Echo: what is it? [image: image/png, 16 bytes]");
  });
});

Deno.test("every finish_reason maps onto the neutral stop reasons", async () => {
  await withDouble(async (double) => {
    const openai = provider(double);
    const reason = async (request: Partial<ChatRequest> = {}) =>
      (await collect(
        openai.chat({ model: "gpt-4o-mini", messages: [user("a b c d")], ...request }),
      )).doneReason;
    assert.equal(await reason(), "stop");
    assert.equal(await reason({ options: { maxTokens: 2 } }), "length");
    double.scriptNext({ content: "filtered", finishReason: "content_filter" });
    assert.equal(await reason(), "content_filter");
    double.scriptNext({ toolCalls: [{ name: "f", arguments: {} }], finishReason: "function_call" });
    assert.equal(await reason(), "tool_calls");
    // A forced tool_choice makes OpenAI say "stop" with tool calls: they still stopped for tools.
    assert.equal(
      await reason({
        tools: [WEATHER],
        providerOptions: { tool_choice: { type: "function", function: { name: "get_weather" } } },
      }),
      "tool_calls",
    );
    assert.equal(
      (double.requests.at(-1)?.body as Record<string, unknown>).tool_choice !== undefined,
      true,
    );
    double.scriptNext({ refusal: "I can't help with that." });
    const refused = await collect(openai.chat({ model: "gpt-4o-mini", messages: [user("x")] }));
    assert.equal(refused.text, "I can't help with that.");
    assert.equal(refused.doneReason, "stop");
  });
});

Deno.test("deviating servers still work: no usage, no [DONE], no finish_reason, whole JSON replies", async () => {
  await withDouble(async (double) => {
    const openai = provider(double, { id: "local", label: "Local" });
    const expect = (result: FinalResult, usage: FinalResult["usage"]) => {
      assert.equal(result.text, "Echo: a b");
      assert.equal(result.doneReason, "stop");
      assert.deepEqual(result.usage, usage);
    };
    const ask = () => collect(openai.chat({ model: "gpt-4o-mini", messages: [user("a b")] }));
    double.quirks = { usage: false };
    expect(await ask(), {});
    double.quirks = { done: false };
    expect(await ask(), { promptTokens: 9, completionTokens: 3 });
    double.quirks = { finishReason: false, done: false, usage: false };
    expect(await ask(), {});
    double.quirks = { ignoreStream: true };
    expect(await ask(), { promptTokens: 9, completionTokens: 3 });
    double.quirks = { ignoreStream: true };
    double.scriptNext({ reasoning: "hm", toolCalls: [{ name: "f", arguments: { a: 1 } }] });
    const whole = await Array.fromAsync(
      openai.chat({ model: "gpt-4o-mini", messages: [user("x")] }),
    );
    assert.deepEqual(whole[0], { type: "thinking", text: "hm" });
    assert.ok(whole[1].type === "tool_calls");
    assert.deepEqual(whole[1].toolCalls.map(({ id: _, ...rest }) => rest), [
      { name: "f", arguments: { a: 1 } },
    ]);
    assert.ok(whole[2].type === "done" && whole[2].result.doneReason === "tool_calls");
  }, { strict: false });
});

Deno.test("a server that refuses stream_options is asked again without it, once per provider", async () => {
  await withDouble(async (double) => {
    const vllm = provider(double, { id: "vllm", label: "vLLM" });
    const first = await collect(vllm.generate({ model: "gpt-4o-mini", prompt: "one" }));
    assert.equal(first.text, "Echo: one");
    assert.deepEqual(first.usage, {});
    const second = await collect(vllm.generate({ model: "gpt-4o-mini", prompt: "two" }));
    assert.equal(second.text, "Echo: two");
    assert.deepEqual(sent(double).map((b) => b.stream_options), [
      { include_usage: true },
      undefined,
      undefined,
    ]);
  }, { strict: false, quirks: { rejectStreamOptions: true } });
});

Deno.test("embed() embeds one text and a batch, in input order whatever the reply's order", async () => {
  await withDouble(async (double) => {
    const openai = provider(double);
    const one = await openai.embed({ model: "text-embedding-3-small", input: "hello" });
    assert.deepEqual(one, {
      model: "text-embedding-3-small",
      embeddings: [Array.from(embedText("hello", 1536))],
      usage: { promptTokens: 1 },
    });
    double.quirks = { reverseEmbeddings: true };
    const batch = await openai.embed({
      model: "text-embedding-3-small",
      input: ["a", "b c", "hello"],
      providerOptions: { dimensions: 8 },
    });
    assert.deepEqual(
      batch.embeddings,
      ["a", "b c", "hello"].map((t) => Array.from(embedText(t, 8))),
    );
    assert.deepEqual(batch.usage, { promptTokens: 4 });
    const packed = await openai.embed({
      model: "text-embedding-3-small",
      input: ["x", "y"],
      providerOptions: { encoding_format: "base64", dimensions: 4 },
    });
    assert.deepEqual(packed.embeddings, ["x", "y"].map((t) => Array.from(embedText(t, 4))));
    assert.deepEqual(sent(double, "/v1/embeddings"), [
      { model: "text-embedding-3-small", input: "hello" },
      { dimensions: 8, model: "text-embedding-3-small", input: ["a", "b c", "hello"] },
      {
        encoding_format: "base64",
        dimensions: 4,
        model: "text-embedding-3-small",
        input: ["x", "y"],
      },
    ]);
  });
});

Deno.test("an embedding reply with the wrong number of vectors is an invalid response", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "body",
      status: 200,
      contentType: "application/json",
      body: JSON.stringify({
        object: "list",
        data: [{ object: "embedding", index: 0, embedding: [1, 2] }],
        model: "m",
      }),
    });
    await assert.rejects(
      provider(double).embed({ model: "text-embedding-3-small", input: ["a", "b"] }),
      (e: Error) =>
        e instanceof InvalidResponseError &&
        e.message.startsWith(
          `Invalid response from OpenAI at ${double.host}/v1: /embeddings returned 1 vectors for 2 inputs`,
        ),
    );
    double.failNext({
      kind: "body",
      status: 200,
      contentType: "application/json",
      body: JSON.stringify({ data: [{ index: 0, embedding: ["x"] }] }),
    });
    await assert.rejects(
      provider(double).embed({ model: "text-embedding-3-small", input: "a" }),
      (e: Error) =>
        e instanceof InvalidResponseError &&
        /^Invalid response from OpenAI at .*: \/embeddings: data\[0\]\.embedding/.test(e.message),
    );
  });
});

Deno.test("a rejected key names where it came from, never the key", async () => {
  await withDouble(async (double) => {
    const secret = "sk-proj-Wrong0123456789SECRET";
    const openai = provider(double, { credential: fixedCredential(secret, "OPENAI_API_KEY") });
    for (
      const call of [
        collect(openai.generate({ model: "gpt-4o-mini", prompt: "x" })),
        openai.listModels(),
        openai.embed({ model: "text-embedding-3-small", input: "x" }),
        openai.ping(),
      ]
    ) {
      const error = await failure(call);
      assert.ok(error instanceof AuthenticationError && error.status === 401);
      assert.equal(error.credential, "OPENAI_API_KEY");
      assert.equal(
        error.message,
        `OpenAI at ${double.host}/v1 rejected the API key from OPENAI_API_KEY (HTTP 401, invalid_api_key): check that OPENAI_API_KEY holds a current key for OpenAI, or create a new one.`,
      );
      assertNoKey(error, secret);
    }
    // A 401 is not retried: each call asked once.
    assert.equal(double.requests.length, 4);
  });
});

Deno.test("a keyless provider sends no Authorization, and says so when the server wants a key", async () => {
  await withDouble(async (double) => {
    const local = createOpenAiProvider({ id: "lmstudio", label: "LM Studio", baseUrl: double.url });
    assert.equal(
      (await collect(local.generate({ model: "gpt-4o-mini", prompt: "hi" }))).text,
      "Echo: hi",
    );
    assert.equal(double.requests[0].headers.authorization, undefined);
    double.apiKey = DOUBLE_API_KEY;
    const error = await failure(local.listModels());
    assert.ok(error instanceof AuthenticationError && error.credential === undefined);
    assert.equal(
      error.message,
      `LM Studio at ${double.host}/v1 requires an API key (HTTP 401, invalid_request_error), but provider "lmstudio" has none configured: set its key (api_key_env in its config entry, or OPENAI_API_KEY for "openai").`,
    );
  }, { apiKey: null });
});

Deno.test("after a 401 the credential is refreshed once and the request sent again", async () => {
  await withDouble(async (double) => {
    let current = "sk-old-rotated-away-0000";
    let refreshes = 0;
    const credential = {
      describe: "the credential store",
      get: () => Promise.resolve(current),
      refresh: () => {
        refreshes++;
        current = DOUBLE_API_KEY;
        return Promise.resolve(current);
      },
    };
    const openai = provider(double, { credential });
    const result = await collect(openai.generate({ model: "gpt-4o-mini", prompt: "fresh" }));
    assert.equal(result.text, "Echo: fresh");
    assert.equal(refreshes, 1);
    assert.deepEqual(double.requests.map((r) => r.headers.authorization), [
      "Bearer sk-old-rotated-away-0000",
      `Bearer ${DOUBLE_API_KEY}`,
    ]);
    // A refresh that brings nothing new ends in the 401, after one refresh.
    double.apiKey = "sk-someone-else-entirely";
    const error = await failure(openai.listModels());
    assert.ok(error instanceof AuthenticationError);
    assert.equal(refreshes, 2);
    assert.match(error.message, /rejected the API key from the credential store/);
    assertNoKey(error, DOUBLE_API_KEY);
    assert.equal(double.requests.length, 3);
  });
});

Deno.test("Azure's api-key header and api-version query go with every request", async () => {
  await withDouble(async (double) => {
    const azure = provider(double, {
      id: "azure",
      label: "Azure OpenAI",
      authHeader: "api-key",
      query: { "api-version": "2024-10-21" },
      headers: { "x-ms-client": "rune" },
    });
    assert.equal((await azure.listModels()).length, 4);
    assert.equal(
      (await collect(azure.generate({ model: "gpt-4o-mini", prompt: "az" }))).text,
      "Echo: az",
    );
    assert.equal(
      (await azure.embed({ model: "text-embedding-3-small", input: "x" })).embeddings.length,
      1,
    );
    for (const request of double.requests) {
      assert.equal(request.query, "?api-version=2024-10-21");
      assert.equal(request.headers["api-key"], DOUBLE_API_KEY);
      assert.equal(request.headers.authorization, undefined);
      assert.equal(request.headers["x-ms-client"], "rune");
    }
  }, { authHeader: "api-key" });
});

Deno.test("an unknown model names it and says how to list models", async () => {
  await withDouble(async (double) => {
    const openai = provider(double);
    for (
      const call of [
        collect(openai.generate({ model: "gpt-9", prompt: "x" })),
        openai.embed({ model: "gpt-9", input: "x" }),
      ]
    ) {
      const error = await failure(call);
      assert.ok(error instanceof ModelNotFoundError && error.model === "gpt-9");
      assert.equal(
        error.message,
        `Model "gpt-9" is not available on OpenAI at ${double.host}/v1 (HTTP 404: The model \`gpt-9\` does not exist or you do not have access to it.): pick one from "rune ai list --provider openai" (or ai_list_models), and check its spelling.`,
      );
    }
    // Not retried.
    assert.equal(double.requests.length, 2);
  });
});

Deno.test("each error reply becomes its typed error with an actionable message", async () => {
  await withDouble(async (double) => {
    const openai = provider(double, { retry: { maxRetries: 0 } });
    const at = `OpenAI at ${double.host}/v1`;
    const ask = () =>
      failure(collect(openai.chat({ model: "gpt-4o-mini", messages: [user("x")] })));
    const cases: [() => void, number, string][] = [
      [
        () => double.failNext({ kind: "status", status: 429, headers: { "retry-after": "20" } }),
        429,
        `${at} is rate limiting requests (HTTP 429: ${OPENAI_ERRORS.rateLimited.message}): retry in 20 s, or send fewer requests or tokens per minute.`,
      ],
      [
        () => double.failNext({ kind: "status", status: 429, error: OPENAI_ERRORS.quota }),
        429,
        `${at} says the account's quota is used up (HTTP 429: ${OPENAI_ERRORS.quota.message}): check the plan and billing of the account behind OPENAI_API_KEY; retrying will not help.`,
      ],
      [
        () => double.failNext({ kind: "status", status: 400, error: OPENAI_ERRORS.contextLength }),
        400,
        `The request is longer than model "gpt-4o-mini"'s context window on ${at} (HTTP 400: ${OPENAI_ERRORS.contextLength.message}): shorten the messages or the prompt, ask for fewer tokens, or pick a model with a longer context.`,
      ],
      [
        () => double.failNext({ kind: "status", status: 413 }),
        413,
        `${at} refused the request as too large (HTTP 413: ${OPENAI_ERRORS.tooLarge.message}): send fewer or smaller messages, images or inputs.`,
      ],
      [
        () => double.failNext({ kind: "status", status: 503 }),
        503,
        `${at} is overloaded (HTTP 503: ${OPENAI_ERRORS.overloaded.message}): retry in a moment.`,
      ],
      [
        () => double.failNext({ kind: "status", status: 500 }),
        500,
        `${at} failed (HTTP 500: ${OPENAI_ERRORS.server.message}): a problem on the server's side; retry in a moment, and check its status page or log if it persists.`,
      ],
      [
        () =>
          double.failNext({
            kind: "body",
            status: 502,
            body: "<html><body>502 Bad Gateway</body></html>",
          }),
        502,
        `${at} failed (HTTP 502: text/html; charset=utf-8: "<html><body>502 Bad Gateway</body></html>"): a problem on the server's side; retry in a moment, and check its status page or log if it persists.`,
      ],
      [
        () =>
          double.failNext({
            kind: "body",
            status: 422,
            contentType: "application/json",
            body: JSON.stringify({ detail: "Field required: messages" }),
          }),
        422,
        `${at} refused the request (HTTP 422: Field required: messages): fix that argument, or leave it out for this server.`,
      ],
      [
        () =>
          double.failNext({
            kind: "body",
            status: 400,
            contentType: "application/json",
            body: JSON.stringify({
              object: "error",
              message: "temperature must be in [0, 2]",
              type: "BadRequestError",
              param: "temperature",
              code: 400,
            }),
          }),
        400,
        `${at} refused the request (argument temperature) (HTTP 400: temperature must be in [0, 2]): fix that argument, or leave it out for this server.`,
      ],
    ];
    for (const [inject, status, message] of cases) {
      inject();
      const error = await ask();
      assert.ok(error instanceof UpstreamError, String(error));
      assert.equal(error.status, status);
      assert.equal(error.message, message);
    }
    const rateLimited = (() => {
      double.failNext({ kind: "status", status: 429, headers: { "retry-after": "20" } });
      return ask();
    })();
    assert.equal(((await rateLimited) as UpstreamError).retryAfterMs, 20_000);
    double.failNext({ kind: "body", status: 404, body: "<html>Not Found</html>" }, 1, CHAT);
    const missing = await ask();
    assert.ok(missing instanceof UpstreamError && missing.status === 404);
    assert.match(missing.message, /has no \/chat\/completions .*usually ending in \/v1/);
    double.failNext({ kind: "body", status: 418, body: "<html>teapot</html>" });
    const odd = await ask();
    assert.ok(odd instanceof InvalidResponseError);
    assert.match(
      odd.message,
      /answered \/chat\/completions with HTTP 418 and a body that is not an API error/,
    );
  });
});

Deno.test("an error event in the middle of a stream ends the call after the text seen", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "error-in-stream", afterTokens: 2 });
    const seen: string[] = [];
    const error = await failure((async () => {
      for await (
        const c of provider(double).generate({ model: "gpt-4o-mini", prompt: "a b c d" })
      ) {
        if (c.type === "text") seen.push(c.text);
      }
    })());
    assert.ok(error instanceof UpstreamError && error.status === 200);
    assert.equal(
      error.message,
      `OpenAI at ${double.host}/v1 reported an error in the middle of the reply: ${OPENAI_ERRORS.server.message}; retry, and check the server's status or log if it persists.`,
    );
    assert.deepEqual(seen, ["Echo:", " a"]);
    assert.equal(double.requests.length, 1, "not retried after tokens");
  });
});

Deno.test("429 and 5xx before the first token are retried, honouring retry-after", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "status", status: 429, headers: { "retry-after-ms": "5" } });
    double.failNext({ kind: "status", status: 500 });
    const result = await collect(
      provider(double).generate({ model: "gpt-4o-mini", prompt: "third time" }),
    );
    assert.equal(result.text, "Echo: third time");
    assert.equal(double.requests.length, 3);
    double.failNext({ kind: "status", status: 503 }, 3);
    const error = await failure(
      collect(provider(double).generate({ model: "gpt-4o-mini", prompt: "x" })),
    );
    assert.ok(error instanceof UpstreamError && error.status === 503);
    assert.equal(double.requests.length, 6, "1 try and 2 retries");
    double.failNext({ kind: "status", status: 429, error: OPENAI_ERRORS.quota });
    await assert.rejects(provider(double).listModels(), UpstreamError);
    assert.equal(double.requests.length, 7, "an exhausted quota is not retried");
    // A wait longer than the retry policy allows is not waited for.
    double.failNext({ kind: "status", status: 429, headers: { "retry-after": "3600" } });
    await assert.rejects(
      provider(double).embed({ model: "text-embedding-3-small", input: "x" }),
      (e: Error) => e instanceof UpstreamError && /retry in 3600 s/.test(e.message),
    );
    assert.equal(double.requests.length, 8);
  });
});

Deno.test("a connection dropped mid-stream is not retried and says so", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "drop", afterTokens: 2 });
    const error = await failure(
      collect(provider(double).generate({ model: "gpt-4o-mini", prompt: "a b c d" })),
    );
    assert.ok(error instanceof ConnectionDroppedError);
    assert.equal(
      error.message,
      `OpenAI at ${double.host}/v1 closed the connection in the middle of the reply after 3 chunks: it may have crashed or restarted, or a proxy cut the stream; check its status or log and retry.`,
    );
    assert.equal(double.requests.length, 1);
  });
});

Deno.test("a connection reset before the reply is retried", async () => {
  // A server that closes the first connection unanswered, then answers with an event stream.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const chunk = (delta: unknown, finish: string | null = null) =>
    `data: ${
      JSON.stringify({ id: "c", choices: [{ index: 0, delta, finish_reason: finish }] })
    }\n\n`;
  const reply = [chunk({ role: "assistant", content: "" }), chunk({ content: "after reset" })]
    .concat([chunk({}, "stop"), "data: [DONE]\n\n"]).join("");
  let connections = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      connections++;
      const buffer = new Uint8Array(64 * 1024);
      await conn.read(buffer);
      if (connections === 1) {
        conn.close();
        continue;
      }
      const body = new TextEncoder().encode(reply);
      await conn.write(new TextEncoder().encode(
        `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`,
      ));
      await conn.write(body);
      conn.close();
      break;
    }
  })();
  try {
    const local = createOpenAiProvider({
      baseUrl: `http://127.0.0.1:${port}/v1`,
      retry: { baseDelayMs: 1 },
    });
    const result = await collect(local.generate({ model: "m", prompt: "x" }));
    assert.equal(result.text, "after reset");
    assert.equal(connections, 2);
  } finally {
    // The loop closes the listener when it ends; a failed test leaves it open.
    try {
      listener.close();
    } catch {
      // already closed
    }
    await serving.catch(() => {});
  }
});

Deno.test("an unreachable server names the address and the setting to check", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const local = createOpenAiProvider({ id: "vllm", baseUrl: `http://127.0.0.1:${port}/v1` });
  const error = await failure(local.listModels());
  assert.ok(error instanceof ProviderUnreachableError && error.reason === "refused");
  assert.match(
    error.message,
    new RegExp(
      `^Cannot reach OpenAI at 127\\.0\\.0\\.1:${port}/v1: the connection was refused .*: is the server running there\\? Check the base_url of provider "vllm"\\.$`,
    ),
  );
});

Deno.test("aborting a generation closes the upstream stream at once", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 20;
    const controller = new AbortController();
    let texts = 0;
    await assert.rejects(
      (async () => {
        for await (
          const c of provider(double).generate({
            model: "gpt-4o-mini",
            prompt: "one two three four five six seven eight nine ten",
          }, { signal: controller.signal })
        ) {
          if (c.type === "text" && ++texts === 3) controller.abort();
        }
      })(),
      (e: Error) => e.name === "AbortError",
    );
    await double.waitForOpenStreams(0);
    assert.equal(texts, 3);
  });
});

Deno.test("a consumer that stops reading closes the upstream stream", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 5;
    for await (const c of provider(double).generate({ model: "gpt-4o-mini", prompt: "a b c" })) {
      assert.equal(c.type, "text");
      break;
    }
    await double.waitForOpenStreams(0);
  });
});

Deno.test("hanging after the headers trips the first-token timeout", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "hang-after-headers" });
    const error = await failure(
      collect(
        provider(double, { timeouts: { firstTokenMs: 100 } }).generate({
          model: "gpt-4o-mini",
          prompt: "x",
        }),
      ),
    );
    assert.ok(error instanceof ProviderTimeoutError && error.phase === "first-token");
    await double.waitForOpenStreams(0);
  });
});

Deno.test("a reasoning model's silence after its role chunk counts as first-token wait, not idle", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "pause-after-role", ms: 300 });
    const patient = provider(double, { timeouts: { idleMs: 100, firstTokenMs: 10_000 } });
    const result = await collect(patient.chat({ model: "o4-mini", messages: [user("think")] }));
    assert.equal(result.text, "Echo: think");
  });
});

Deno.test("tokens slower than the idle timeout end the stream with an idle timeout", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 300;
    const error = await failure(
      collect(
        provider(double, { timeouts: { idleMs: 100 } }).generate({
          model: "gpt-4o-mini",
          prompt: "a b c d e",
        }),
      ),
    );
    assert.ok(error instanceof ProviderTimeoutError && error.phase === "idle");
    assert.match(error.message, /went silent for 0\.1s in the middle of a reply \(idle timeout\)/);
    await double.waitForOpenStreams(0);
  });
});

Deno.test("the total timeout bounds the whole call", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 50;
    const error = await failure(
      collect(
        provider(double, { timeouts: { totalMs: 150 } }).generate({
          model: "gpt-4o-mini",
          prompt: Array.from({ length: 100 }, (_, i) => `w${i}`).join(" "),
        }),
      ),
    );
    assert.ok(error instanceof ProviderTimeoutError && error.phase === "total");
    await double.waitForOpenStreams(0);
  });
});

Deno.test("slow headers count against the first-token timeout, not the connect timeout", async () => {
  await withDouble(async (double) => {
    const patient = provider(double, { timeouts: { connectMs: 100, firstTokenMs: 10_000 } });
    double.failNext({ kind: "slow-headers", ms: 300 });
    assert.equal(
      (await collect(patient.generate({ model: "gpt-4o-mini", prompt: "late" }))).text,
      "Echo: late",
    );
    double.failNext({ kind: "slow-headers", ms: 300 });
    assert.equal(
      (await patient.embed({ model: "text-embedding-3-small", input: "x" })).embeddings.length,
      1,
    );
  });
});

Deno.test("byte budgets bound streamed text, replies, error bodies and events", async () => {
  await withDouble(async (double) => {
    const stream = await failure(
      collect(
        provider(double, { limits: { maxStreamBytes: 16 } }).generate({
          model: "gpt-4o-mini",
          prompt: "a rather long prompt that echoes back past the budget",
        }),
      ),
    );
    assert.ok(stream instanceof UpstreamTooLargeError && stream.limit === "stream");
    await double.waitForOpenStreams(0);

    const reply = await failure(provider(double, { limits: { maxReplyBytes: 100 } }).listModels());
    assert.ok(reply instanceof UpstreamTooLargeError && reply.limit === "reply");
    assert.match(reply.message, /sent a reply to \/models larger than 100 bytes/);

    double.failNext({ kind: "body", status: 500, body: "x".repeat(10_000) });
    const big = await failure(
      collect(
        provider(double, { limits: { maxErrorBytes: 100 }, retry: { maxRetries: 0 } })
          .generate({ model: "gpt-4o-mini", prompt: "x" }),
      ),
    );
    assert.ok(big instanceof UpstreamError && big.status === 500);
    assert.match(big.message, /cut short/);

    double.failNext({
      kind: "raw-stream",
      events: [`{"choices":[{"delta":{"content":"${"y".repeat(50_000)}"}}]}`],
    });
    const event = await failure(
      collect(
        provider(double, { maxEventLength: 1000 }).generate({ model: "gpt-4o-mini", prompt: "x" }),
      ),
    );
    assert.ok(event instanceof InvalidResponseError);
    assert.match(event.message, /longer than 1000 characters/);
    await double.waitForOpenStreams(0);
  });
});

Deno.test("malformed chunks and empty streams are invalid responses", async () => {
  await withDouble(async (double) => {
    const ask = () =>
      failure(collect(provider(double).generate({ model: "gpt-4o-mini", prompt: "x" })));
    double.failNext({ kind: "raw-stream", events: ['{"choices": "many"}'] });
    const shape = await ask();
    assert.ok(shape instanceof InvalidResponseError);
    assert.match(shape.message, /\/chat\/completions chunk 1: choices: expected array/);
    double.failNext({ kind: "raw-stream", events: ["not json"] });
    const text = await ask();
    assert.ok(text instanceof InvalidResponseError);
    assert.match(text.message, /chunk 1 is not JSON \(not json\)/);
    double.failNext({ kind: "raw-stream", events: ["[DONE]"] });
    const empty = await ask();
    assert.ok(empty instanceof InvalidResponseError);
    assert.match(empty.message, /sent an event stream without a single chunk/);
    double.failNext({ kind: "body", status: 200, body: "<html>login</html>" }, 1, CHAT);
    const page = await ask();
    assert.ok(page instanceof InvalidResponseError);
    assert.match(page.message, /answered with text\/html.*instead of an event stream/);
  });
});

Deno.test("the key is in no error message, even when a server echoes it", async () => {
  await withDouble(async (double) => {
    const openai = provider(double, { retry: { maxRetries: 0 } });
    const echo = {
      message: `bad request from key ${DOUBLE_API_KEY}`,
      type: "x",
      param: null,
      code: null,
    };
    double.failNext({ kind: "status", status: 400, error: echo });
    assertNoKey(await failure(collect(openai.generate({ model: "gpt-4o-mini", prompt: "x" }))));
    double.failNext({ kind: "error-in-stream", afterTokens: 1, error: echo });
    assertNoKey(await failure(collect(openai.generate({ model: "gpt-4o-mini", prompt: "x" }))));
    double.failNext({ kind: "body", status: 500, body: `proxy saw Bearer ${DOUBLE_API_KEY}` });
    assertNoKey(await failure(openai.listModels()));
  });
});

Deno.test("ping() answers with the API version, also from a server without /models", async () => {
  await withDouble(async (double) => {
    assert.equal(await provider(double).ping(), "2020-10-01");
    double.quirks = { listModels: false };
    assert.equal(await provider(double).ping(), "unknown");
  });
});

Deno.test("concurrent calls keep their own deadlines", async () => {
  await withDouble(async (double) => {
    const openai = provider(double, { timeouts: { firstTokenMs: 1000 } });
    double.failNext({ kind: "hang-after-headers" });
    const stuck = collect(openai.generate({ model: "gpt-4o-mini", prompt: "stuck" }));
    await double.waitForOpenStreams(1);
    const fine = await Promise.all(
      Array.from(
        { length: 5 },
        (_, i) => collect(openai.generate({ model: "gpt-4o-mini", prompt: `${i}` })),
      ),
    );
    assert.deepEqual(fine.map((r) => r.text), [
      "Echo: 0",
      "Echo: 1",
      "Echo: 2",
      "Echo: 3",
      "Echo: 4",
    ]);
    await assert.rejects(
      stuck,
      (e: Error) => e instanceof ProviderTimeoutError && e.phase === "first-token",
    );
    await double.waitForOpenStreams(0);
  });
});

/** Asserts that neither `secret` nor its masked form appears in the error or its causes. */
function assertNoKey(error: Error, secret = DOUBLE_API_KEY): void {
  let current: unknown = error;
  while (current instanceof Error) {
    assert.ok(!current.message.includes(secret), `key in: ${current.message}`);
    assert.ok(
      !current.message.includes(secret.slice(-4) + "."),
      `masked key in: ${current.message}`,
    );
    assert.ok(!current.message.includes(secret.slice(0, 8)), `key prefix in: ${current.message}`);
    current = current.cause;
  }
}
