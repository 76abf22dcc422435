/**
 * The Ollama provider against the Ollama double over real HTTP: streaming,
 * capabilities, error mapping, timeouts and cancellation.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ArgumentError,
  CapabilityError,
  ConnectionDroppedError,
  InvalidResponseError,
  ModelNotFoundError,
  ProviderTimeoutError,
  ProviderUnreachableError,
  UpstreamError,
} from "../../src/providers/errors.ts";
import { createOllamaProvider, type OllamaTimeouts } from "../../src/providers/ollama/mod.ts";
import { type Chunk, collect, type ToolCall } from "../../src/providers/types.ts";
import {
  embedText,
  OLLAMA_ERRORS,
  type OllamaDouble,
  startOllamaDouble,
} from "../ollama_double.ts";

async function withDouble(
  fn: (double: OllamaDouble) => Promise<void>,
  options: { tokenDelayMs?: number } = {},
): Promise<void> {
  const double = await startOllamaDouble(options);
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

function provider(double: OllamaDouble, timeouts: Partial<OllamaTimeouts> = {}) {
  return createOllamaProvider({ baseUrl: double.url, timeouts, cacheMs: 0 });
}

Deno.test("listModels() returns the installed models with details", async () => {
  await withDouble(async (double) => {
    const models = await provider(double).listModels();
    const llama = models.find((m) => m.name === "llama3.2:latest");
    assert.ok(llama, "llama3.2:latest listed");
    assert.equal(llama.family, "llama");
    assert.equal(llama.parameterSize, "3.2B");
    assert.equal(llama.quantization, "Q4_K_M");
    assert.equal(llama.size, 2019393189);
    assert.deepEqual(models.map((m) => m.name).sort(), [
      "all-minilm:latest",
      "llama3.2:latest",
      "llava:latest",
      "qwen3:latest",
    ]);
  });
});

Deno.test("listModels() reuses /api/tags within the cache window", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url, cacheMs: 60_000 });
    await ollama.listModels();
    await ollama.listModels();
    assert.equal(double.requests.filter((r) => r.path === "/api/tags").length, 1);
  });
});

Deno.test("showModel() maps Ollama capabilities", async () => {
  await withDouble(async (double) => {
    const ollama = provider(double);
    const qwen = await ollama.showModel("qwen3");
    assert.equal(qwen.capabilities.thinking, true);
    assert.equal(qwen.capabilities.tools, true);
    assert.equal(qwen.capabilities.embeddings, false);
    const minilm = await ollama.showModel("all-minilm");
    assert.equal(minilm.capabilities.embeddings, true);
    assert.equal(minilm.capabilities.completion, false);
    assert.equal((await ollama.showModel("llava")).capabilities.vision, true);
  });
});

Deno.test("generate() streams tokens in order and ends with the final result", async () => {
  await withDouble(async (double) => {
    const chunks: Chunk[] = await Array.fromAsync(
      provider(double).generate({ model: "llama3.2", prompt: "hello brave new world" }),
    );
    const texts = chunks.filter((c) => c.type === "text").map((c) => c.text);
    assert.deepEqual(texts, ["Echo:", " hello", " brave", " new", " world"]);
    const last = chunks.at(-1);
    assert.equal(last?.type, "done");
    if (last?.type !== "done") return;
    assert.equal(last.result.text, "Echo: hello brave new world");
    assert.equal(last.result.doneReason, "stop");
    assert.equal(last.result.usage.completionTokens, 5);
    // The double counts the prompt's words plus 10 template tokens.
    assert.equal(last.result.usage.promptTokens, 14);
    assert.ok((last.result.usage.totalMs ?? 0) > 0, "a duration is reported");
    const sent = double.requests.find((r) => r.path === "/api/generate")?.body as Record<
      string,
      unknown
    >;
    assert.equal(sent.stream, true);
  });
});

Deno.test("generate() sends system, format, options, think and keep_alive in Ollama's names", async () => {
  await withDouble(async (double) => {
    const schema = { type: "object", properties: { answer: { type: "string" } } };
    const result = await collect(
      provider(double).generate({
        model: "qwen3",
        prompt: "q",
        system: "be brief",
        format: schema,
        think: true,
        keepAlive: "1m",
        options: { temperature: 0.2, topP: 0.9, topK: 20, seed: 7, maxTokens: 12, stop: ["\n"] },
      }),
    );
    const body = double.requests.find((r) => r.path === "/api/generate")?.body;
    assert.deepEqual(body, {
      model: "qwen3",
      prompt: "q",
      system: "be brief",
      format: schema,
      options: { temperature: 0.2, top_p: 0.9, top_k: 20, seed: 7, num_predict: 12, stop: ["\n"] },
      think: true,
      keep_alive: "1m",
      stream: true,
    });
    // num_predict 12 cuts the whole generation: 8 thinking tokens, then 4 answer tokens.
    assert.equal(result.thinking, "Okay, the user wants me to echo: q");
    assert.equal(result.text, '{"answer":"Echo: q"}{"answer":"Echo: q"}');
    assert.equal(result.doneReason, "length");
  });
});

Deno.test("chat() returns tool calls the model made", async () => {
  await withDouble(async (double) => {
    const result = await collect(
      provider(double).chat({
        model: "llama3.2",
        messages: [{ role: "user", content: "what is the weather in Paris?" }],
        tools: [{
          name: "get_weather",
          description: "Weather for a city",
          parameters: { type: "object", properties: { city: { type: "string" } } },
        }],
      }),
    );
    assert.match(result.toolCalls[0]?.id ?? "", /^call_[a-z0-9]{8}$/, "Ollama 0.13 ids");
    assert.deepEqual(withoutIds(result.toolCalls), [
      { name: "get_weather", arguments: { city: "Paris" } },
    ]);
    assert.equal(result.text, "");
    assert.equal(result.doneReason, "tool_calls");
  });
});

Deno.test("chat() returns several tool calls and the text the model said beside them", async () => {
  await withDouble(async (double) => {
    double.scriptNext({
      content: "Let me look both up.",
      toolCalls: [
        { name: "get_weather", arguments: { city: "Oslo", days: 3, detail: { wind: true } } },
        { name: "get_time", arguments: { zone: "Europe/Oslo" } },
      ],
    });
    const chunks = await Array.fromAsync(
      provider(double).chat({
        model: "llama3.2",
        messages: [{ role: "user", content: "weather and time in Oslo" }],
        tools: [{ name: "get_weather" }, { name: "get_time" }],
      }),
    );
    const expected = [
      { name: "get_weather", arguments: { city: "Oslo", days: 3, detail: { wind: true } } },
      { name: "get_time", arguments: { zone: "Europe/Oslo" } },
    ];
    const calls = chunks.at(-2);
    assert.equal(calls?.type, "tool_calls");
    if (calls?.type !== "tool_calls") return;
    assert.deepEqual(chunks.slice(0, -2), [
      { type: "text", text: "Let" },
      { type: "text", text: " me" },
      { type: "text", text: " look" },
      { type: "text", text: " both" },
      { type: "text", text: " up." },
    ]);
    assert.deepEqual(withoutIds(calls.toolCalls), expected);
    const ids = calls.toolCalls.map((c) => c.id);
    assert.equal(new Set(ids).size, 2, "each call has its own id");
    const last = chunks.at(-1);
    assert.equal(last?.type, "done");
    if (last?.type !== "done") return;
    assert.deepEqual(last.result.toolCalls, calls.toolCalls);
    assert.equal(last.result.text, "Let me look both up.");
    assert.equal(last.result.doneReason, "tool_calls");
  });
});

Deno.test("chat() streams the reply to the last user message", async () => {
  await withDouble(async (double) => {
    const result = await collect(
      provider(double).chat({
        model: "llama3.2",
        messages: [
          { role: "system", content: "s" },
          { role: "user", content: "first" },
          { role: "assistant", content: "Echo: first" },
          { role: "user", content: "second turn" },
        ],
      }),
    );
    assert.equal(result.text, "Echo: second turn");
  });
});

Deno.test("embed() embeds one text and a batch", async () => {
  await withDouble(async (double) => {
    const ollama = provider(double);
    const one = await ollama.embed({ model: "all-minilm", input: "hello" });
    assert.equal(one.embeddings.length, 1);
    // Written as shortest float32 decimals: read back as float32, they are the double's vector.
    assert.deepEqual(one.embeddings[0].map(Math.fround), Array.from(embedText("hello")));
    const batch = await ollama.embed({ model: "all-minilm", input: ["a", "b", "hello"] });
    assert.equal(batch.embeddings.length, 3);
    assert.deepEqual(batch.embeddings[2], one.embeddings[0]);
  });
});

Deno.test("an unreachable Ollama names the address and suggests ollama serve", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const ollama = createOllamaProvider({ baseUrl: `http://127.0.0.1:${port}` });
  await assert.rejects(ollama.listModels(), (error: Error) => {
    assert.ok(error instanceof ProviderUnreachableError);
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(error.message, /ollama serve/);
    return true;
  });
});

Deno.test("an unknown model names it and suggests ollama pull", async () => {
  await withDouble(async (double) => {
    await assert.rejects(
      collect(provider(double).generate({ model: "nosuch", prompt: "x" })),
      (error: Error) =>
        error instanceof ModelNotFoundError && error.model === "nosuch" &&
        /ollama pull nosuch/.test(error.message),
    );
    await assert.rejects(
      provider(double).embed({ model: "nosuch", input: "x" }),
      ModelNotFoundError,
    );
  });
});

Deno.test("missing capabilities become CapabilityError for embeddings, images, tools, thinking", async () => {
  await withDouble(async (double) => {
    const ollama = provider(double);
    // Ollama's /api/embed does not check; Rune asks /api/show first and never sends the request.
    await assert.rejects(
      ollama.embed({ model: "llama3.2", input: "x" }),
      (e: Error) =>
        e instanceof CapabilityError && e.capability === "embeddings" &&
        e.message ===
          'Model "llama3.2" does not support embeddings: pick an embedding model such as "nomic-embed-text" or "all-minilm".',
    );
    assert.deepEqual(double.requests.filter((r) => r.path === "/api/embed"), []);
    await assert.rejects(
      collect(ollama.generate({ model: "llama3.2", prompt: "x", images: [{ data: "aGk=" }] })),
      (e: Error) => e instanceof CapabilityError && e.capability === "vision",
    );
    await assert.rejects(
      collect(ollama.chat({
        model: "llava",
        messages: [{ role: "user", content: "x" }],
        tools: [{ name: "f" }],
      })),
      (e: Error) => e instanceof CapabilityError && e.capability === "tools",
    );
    await assert.rejects(
      collect(ollama.generate({ model: "llama3.2", prompt: "x", think: true })),
      (e: Error) => e instanceof CapabilityError && e.capability === "thinking",
    );
  });
});

Deno.test("an HTTP error status becomes UpstreamError with Ollama's message", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "status", status: 500, error: "llama runner process has terminated" });
    await assert.rejects(
      collect(provider(double).generate({ model: "llama3.2", prompt: "x" })),
      (e: Error) =>
        e instanceof UpstreamError && e.status === 500 && /llama runner process/.test(e.message),
    );
  });
});

Deno.test("an error line inside the stream ends the call with that error", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "error-in-stream", afterTokens: 2, error: "out of memory" });
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of provider(double).generate({ model: "llama3.2", prompt: "a b c d" })) {
          if (c.type === "text") seen.push(c.text);
        }
      })(),
      (e: Error) => e instanceof UpstreamError && /out of memory/.test(e.message),
    );
    assert.deepEqual(seen, ["Echo:", " a"]);
  });
});

Deno.test("a connection dropped mid-stream becomes ConnectionDroppedError", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "drop", afterTokens: 2 });
    await assert.rejects(
      collect(provider(double).generate({ model: "llama3.2", prompt: "a b c d" })),
      (e: Error) => e instanceof ConnectionDroppedError && /closed the connection/.test(e.message),
    );
  });
});

Deno.test("a non-JSON reply becomes InvalidResponseError", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "non-json",
      body: "<html><body>502 Bad Gateway</body></html>",
      contentType: "text/html",
    });
    await assert.rejects(
      provider(double).listModels(),
      (e: Error) => e instanceof InvalidResponseError && /Bad Gateway/.test(e.message),
    );
    double.failNext({
      kind: "non-json",
      body: "<html>proxy</html>",
      contentType: "text/html",
      status: 200,
    });
    await assert.rejects(
      collect(provider(double).generate({ model: "llama3.2", prompt: "x" })),
      InvalidResponseError,
    );
  });
});

Deno.test("Ollama hanging after the headers trips the first-token timeout", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "hang-after-headers" });
    await assert.rejects(
      collect(provider(double, { firstTokenMs: 100 }).generate({ model: "llama3.2", prompt: "x" })),
      (e: Error) => e instanceof ProviderTimeoutError && e.phase === "first-token",
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("a trickling Ollama trips the idle timeout and the error says so", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "trickle", intervalMs: 60_000 });
    await assert.rejects(
      collect(
        provider(double, { firstTokenMs: 150, idleMs: 100 }).generate({
          model: "llama3.2",
          prompt: "x",
        }),
      ),
      (e: Error) => e instanceof ProviderTimeoutError && /timeout/.test(e.message),
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("tokens slower than the idle timeout end the stream with an idle timeout", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 300;
    await assert.rejects(
      collect(
        provider(double, { idleMs: 100 }).generate({ model: "llama3.2", prompt: "a b c d e" }),
      ),
      (e: Error) =>
        e instanceof ProviderTimeoutError && e.phase === "idle" && /idle timeout/.test(e.message),
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("the total timeout bounds the whole call", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 50;
    await assert.rejects(
      collect(
        provider(double, { totalMs: 150 }).generate({
          model: "llama3.2",
          prompt: "x",
          options: { maxTokens: 1000 },
        }),
      ),
      (e: Error) => e instanceof ProviderTimeoutError && e.phase === "total",
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("aborting a generation cancels the upstream stream", async () => {
  await withDouble(async (double) => {
    double.tokenDelayMs = 20;
    const controller = new AbortController();
    let texts = 0;
    await assert.rejects(
      (async () => {
        for await (
          const c of provider(double).generate({
            model: "llama3.2",
            prompt: "x",
            options: { maxTokens: 100_000 },
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

Deno.test("listModels() marks the models /api/ps reports as loaded", async () => {
  await withDouble(async (double) => {
    const ollama = provider(double);
    assert.ok((await ollama.listModels()).every((m) => m.loaded === undefined));
    await collect(ollama.generate({ model: "llama3.2", prompt: "warm up" }));
    const models = await ollama.listModels();
    const llama = models.find((m) => m.name === "llama3.2:latest");
    assert.equal(llama?.loaded?.sizeVram, 2019393189);
    assert.match(llama.loaded.expiresAt ?? "", /^\d{4}-\d\d-\d\dT/);
    assert.equal(models.find((m) => m.name === "llava:latest")?.loaded, undefined);
  });
});

Deno.test("generate() sends keep_alive when given", async () => {
  await withDouble(async (double) => {
    await collect(provider(double).generate({ model: "llama3.2", prompt: "x", keepAlive: 0 }));
    const body = double.requests.find((r) => r.path === "/api/generate")?.body as Record<
      string,
      unknown
    >;
    assert.equal(body.keep_alive, 0);
  });
});

Deno.test("a slow model load counts against the first-token timeout, not the connect timeout", async () => {
  await withDouble(async (double) => {
    const patient = provider(double, { connectMs: 100, firstTokenMs: 10_000 });
    double.failNext({ kind: "slow-load", ms: 300 });
    const result = await collect(patient.generate({ model: "llama3.2", prompt: "loaded" }));
    assert.equal(result.text, "Echo: loaded");
    double.failNext({ kind: "slow-load", ms: 300 });
    const embedded = await patient.embed({ model: "all-minilm", input: "x" });
    assert.equal(embedded.embeddings.length, 1);
    double.failNext({ kind: "slow-load", ms: 300 });
    await assert.rejects(
      collect(
        provider(double, { connectMs: 10_000, firstTokenMs: 100 }).generate({
          model: "llama3.2",
          prompt: "x",
        }),
      ),
      (e: Error) =>
        e instanceof ProviderTimeoutError && e.phase === "first-token" &&
        /--first-token-timeout/.test(e.message),
    );
  });
});

Deno.test("concurrent calls keep their own deadlines", async () => {
  await withDouble(async (double) => {
    const ollama = provider(double, { firstTokenMs: 200 });
    double.failNext({ kind: "hang-after-headers" });
    const stuck = collect(ollama.generate({ model: "llama3.2", prompt: "stuck" }));
    const fine = await Array.fromAsync(
      Array.from(
        { length: 5 },
        (_, i) => collect(ollama.generate({ model: "llama3.2", prompt: `${i}` })),
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

Deno.test("failed model lookups are not cached", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url, cacheMs: 60_000 });
    await assert.rejects(ollama.showModel("nosuch"), ModelNotFoundError);
    await assert.rejects(ollama.showModel("nosuch"), ModelNotFoundError);
    assert.equal(double.requests.filter((r) => r.path === "/api/show").length, 2);
  });
});

Deno.test("Ollama's 503 busy reply says the server is busy and how to raise its queue", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "status", status: 503, error: OLLAMA_ERRORS.busy });
    await assert.rejects(
      collect(provider(double).generate({ model: "llama3.2", prompt: "x" })),
      (e: Error) =>
        e instanceof UpstreamError && e.status === 503 &&
        e.message ===
          `Ollama at ${double.host} is busy (HTTP 503: server busy, please try again.  maximum pending requests exceeded): too many requests are waiting; retry in a moment, or raise OLLAMA_MAX_QUEUE or OLLAMA_NUM_PARALLEL on the Ollama server.`,
    );
    assert.equal(
      (await collect(provider(double).generate({ model: "llama3.2", prompt: "x" }))).text,
      "Echo: x",
    );
  });
});

Deno.test("Ollama's 429 reply says requests are rate limited", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "status", status: 429, error: OLLAMA_ERRORS.rateLimited });
    await assert.rejects(
      collect(
        provider(double).chat({ model: "llama3.2", messages: [{ role: "user", content: "x" }] }),
      ),
      (e: Error) =>
        e instanceof UpstreamError && e.status === 429 &&
        e.message ===
          `Ollama at ${double.host} is rate limiting requests (HTTP 429: rate limit exceeded): wait a moment and retry; cloud models have usage limits.`,
    );
  });
});

Deno.test("a keep_alive Ollama cannot parse is refused before sending, in Go's words", async () => {
  await withDouble(async (double) => {
    await assert.rejects(
      collect(
        provider(double).generate({ model: "llama3.2", prompt: "x", keepAlive: "5 minutes" }),
      ),
      (e: Error) =>
        e instanceof ArgumentError && e.argument === "keep_alive" &&
        e.message ===
          `Invalid keep_alive for Ollama: time: unknown unit " minutes" in duration "5 minutes": use a duration such as "10m", "1h30m" or "0", or a number of seconds.`,
    );
    assert.equal(double.requests.filter((r) => r.path === "/api/generate").length, 0);
    // The double answers such a value as Ollama does: 400 with Go's text.
    const response = await fetch(`http://${double.host}/api/generate`, {
      method: "POST",
      body: JSON.stringify({ model: "llama3.2", prompt: "x", keep_alive: "5 minutes" }),
    });
    assert.equal(response.status, 400);
    assert.deepEqual(await response.json(), {
      error: 'time: unknown unit " minutes" in duration "5 minutes"',
    });
  });
});

/** Tool calls without their ids (which the double derives), for comparing the rest exactly. */
function withoutIds(calls: ToolCall[]): Omit<ToolCall, "id">[] {
  return calls.map(({ id: _id, ...rest }) => rest);
}
