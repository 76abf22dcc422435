/**
 * Tests for the Ollama HTTP double: each endpoint's wire format, Ollama's
 * error texts, the fault kinds and stream bookkeeping, all through raw fetch.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  DEFAULT_MODELS,
  OLLAMA_ERRORS,
  type OllamaDouble,
  startOllamaDouble,
  tokenize,
} from "./ollama_double.ts";

const RFC3339_NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?(Z|[+-]\d\d:\d\d)$/;

/** Runs `fn` against a fresh double and always closes it. */
async function withDouble(
  fn: (d: OllamaDouble) => Promise<void>,
  options: { tokenDelayMs?: number } = {},
): Promise<void> {
  const double = await startOllamaDouble(options);
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

function post(d: OllamaDouble, path: string, body: unknown): Promise<Response> {
  return fetch(`${d.url}${path}`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function lines(res: Response): Promise<Record<string, unknown>[]> {
  const text = await res.text();
  assert.ok(text.endsWith("\n"), "NDJSON body ends with a newline");
  return text.slice(0, -1).split("\n").map((l) => JSON.parse(l));
}

Deno.test("double answers / with Ollama is running", async () => {
  await withDouble(async (d) => {
    const res = await fetch(`${d.url}/`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "Ollama is running");
    const head = await fetch(`${d.url}/`, { method: "HEAD" });
    assert.equal(head.status, 200);
    await head.body?.cancel();
  });
});

Deno.test("double reports its version as Go's JSON", async () => {
  await withDouble(async (d) => {
    const res = await fetch(`${d.url}/api/version`);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(await res.text(), '{"version":"0.13.0"}');
  });
});

Deno.test("double lists default models in /api/tags with Go field order", async () => {
  await withDouble(async (d) => {
    const res = await fetch(`${d.url}/api/tags`);
    assert.equal(res.status, 200);
    const body = await res.json();
    const names = body.models.map((m: { name: string }) => m.name);
    assert.deepEqual(names, [
      "llama3.2:latest",
      "llava:latest",
      "qwen3:latest",
      "all-minilm:latest",
    ]);
    for (const m of body.models) {
      assert.deepEqual(Object.keys(m), [
        "name",
        "model",
        "modified_at",
        "size",
        "digest",
        "details",
      ]);
      assert.match(m.modified_at, RFC3339_NANO);
      assert.match(m.digest, /^[0-9a-f]{64}$/);
      assert.equal(m.size, DEFAULT_MODELS.find((d) => d.name === m.name)?.size);
      assert.deepEqual(Object.keys(m.details), [
        "parent_model",
        "format",
        "family",
        "families",
        "parameter_size",
        "quantization_level",
      ]);
      assert.equal(m.details.format, "gguf");
    }
    assert.deepEqual(body.models[1].details.families, ["llama", "clip"]);
  });
});

Deno.test("double shows model details, template and capabilities", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/show", { model: "qwen3" });
    const text = await res.text();
    const body = JSON.parse(text);
    assert.deepEqual(Object.keys(body), [
      "license",
      "modelfile",
      "parameters",
      "template",
      "details",
      "model_info",
      "capabilities",
      "modified_at",
    ]);
    assert.deepEqual(body.capabilities, ["completion", "tools", "thinking"]);
    assert.equal(body.model_info["general.architecture"], "qwen3");
    assert.ok(text.includes("\\u003cthink\\u003e"), "template's <think> is HTML-escaped");
    assert.match(body.modified_at, RFC3339_NANO);

    const missing = await post(d, "/api/show", {});
    assert.equal(missing.status, 400);
    assert.equal(await missing.text(), '{"error":"model is required"}');
  });
});

Deno.test("double lists loaded models in /api/ps after a request", async () => {
  await withDouble(async (d) => {
    assert.equal(await (await fetch(`${d.url}/api/ps`)).text(), '{"models":[]}');
    await (await post(d, "/api/generate", { model: "llama3.2", prompt: "hi", stream: false })).body
      ?.cancel();
    const body = await (await fetch(`${d.url}/api/ps`)).json();
    assert.equal(body.models.length, 1);
    assert.deepEqual(Object.keys(body.models[0]), [
      "name",
      "model",
      "size",
      "digest",
      "details",
      "expires_at",
      "size_vram",
      "context_length",
    ]);
    assert.equal(body.models[0].name, "llama3.2:latest");
    assert.match(body.models[0].expires_at, RFC3339_NANO);
  });
});

Deno.test("double streams generate tokens as NDJSON ending with a done chunk", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/generate", { model: "llama3.2", prompt: "hello world" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    const chunks = await lines(res);
    const tokens = chunks.slice(0, -1);
    assert.deepEqual(tokens.map((c) => c.response), ["Echo:", " hello", " world"]);
    for (const c of tokens) {
      assert.deepEqual(Object.keys(c), ["model", "created_at", "response", "done"]);
      assert.equal(c.model, "llama3.2");
      assert.equal(c.done, false);
      assert.match(c.created_at as string, RFC3339_NANO);
    }
    const done = chunks.at(-1)!;
    assert.deepEqual(Object.keys(done), [
      "model",
      "created_at",
      "response",
      "done",
      "done_reason",
      "context",
      "total_duration",
      "load_duration",
      "prompt_eval_count",
      "prompt_eval_duration",
      "eval_count",
      "eval_duration",
    ]);
    assert.equal(done.response, "");
    assert.equal(done.done_reason, "stop");
    assert.equal(done.eval_count, 3);
    for (const k of ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"]) {
      assert.ok(Number.isInteger(done[k]) && (done[k] as number) > 0, k);
    }
  });
});

Deno.test("double answers generate with stream false as one JSON object", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/generate", {
      model: "llama3.2",
      prompt: "<b> & co",
      stream: false,
      raw: true,
    });
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    const text = await res.text();
    assert.ok(text.includes('"response":"Echo: \\u003cb\\u003e \\u0026 co"'), text);
    const body = JSON.parse(text);
    assert.equal(body.done, true);
    assert.equal(body.context, undefined, "raw mode returns no context");
  });
});

Deno.test("double cuts generation at num_predict with done_reason length", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/generate", {
      model: "llama3.2",
      prompt: "a b",
      options: { num_predict: 5 },
    });
    const chunks = await lines(res);
    assert.deepEqual(chunks.slice(0, -1).map((c) => c.response), [
      "Echo:",
      " a",
      " b",
      "Echo:",
      " a",
    ]);
    assert.equal(chunks.at(-1)!.done_reason, "length");
    assert.equal(chunks.at(-1)!.eval_count, 5);
  });
});

Deno.test("double streams chat message chunks", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/chat", {
      model: "llama3.2:latest",
      messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi there" }],
    });
    const chunks = await lines(res);
    const content = chunks.slice(0, -1).map((c) => (c.message as { content: string }).content);
    assert.deepEqual(content, ["Echo:", " hi", " there"]);
    assert.deepEqual(Object.keys(chunks[0]), ["model", "created_at", "message", "done"]);
    const done = chunks.at(-1)!;
    assert.deepEqual(done.message, { role: "assistant", content: "" });
    assert.deepEqual(Object.keys(done).slice(0, 5), [
      "model",
      "created_at",
      "message",
      "done",
      "done_reason",
    ]);
  });
});

Deno.test("double replies with a tool call when asked about the weather", async () => {
  await withDouble(async (d) => {
    const tools = [{
      type: "function",
      function: {
        name: "get_weather",
        description: "Weather for a city",
        parameters: {
          type: "object",
          required: ["city"],
          properties: { city: { type: "string" } },
        },
      },
    }];
    const res = await post(d, "/api/chat", {
      model: "llama3.2",
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tools,
    });
    const chunks = await lines(res);
    assert.equal(chunks.length, 2);
    const calls =
      (chunks[0].message as { tool_calls: { id: string; function: unknown }[] }).tool_calls;
    assert.equal(calls.length, 1);
    assert.match(calls[0].id, /^call_[a-z0-9]{8}$/);
    assert.deepEqual(calls[0].function, {
      index: 0,
      name: "get_weather",
      arguments: { city: "Paris" },
    });
    assert.equal(chunks[1].done, true);

    const refused = await post(d, "/api/chat", {
      model: "llava",
      messages: [{ role: "user", content: "x" }],
      tools,
    });
    assert.equal(refused.status, 400);
    assert.equal(
      await refused.text(),
      '{"error":"registry.ollama.ai/library/llava:latest does not support tools"}',
    );
  });
});

Deno.test("double streams thinking before the answer on thinking models", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/chat", {
      model: "qwen3",
      think: true,
      messages: [{ role: "user", content: "hi" }],
    });
    const chunks = await lines(res);
    const messages = chunks.slice(0, -1).map((c) =>
      c.message as { content: string; thinking?: string }
    );
    const firstContent = messages.findIndex((m) => m.content !== "");
    // Every thinking token comes before the first answer token.
    assert.equal(
      messages.slice(0, firstContent).map((m) => m.thinking).join(""),
      "Okay, the user wants me to echo: hi",
    );
    assert.equal(messages.slice(firstContent).map((m) => m.content).join(""), "Echo: hi");
    assert.ok(messages.slice(firstContent).every((m) => m.thinking === undefined));

    const gen = await post(d, "/api/generate", { model: "qwen3", prompt: "hi", stream: false });
    const body = await gen.json();
    assert.deepEqual(Object.keys(body).slice(0, 5), [
      "model",
      "created_at",
      "response",
      "thinking",
      "done",
    ]);

    const refused = await post(d, "/api/chat", { model: "llama3.2", think: true, messages: [] });
    assert.equal(refused.status, 400);
    assert.equal(await refused.text(), '{"error":"\\"llama3.2\\" does not support thinking"}');
  });
});

Deno.test("double answers format json and schemas with JSON text", async () => {
  await withDouble(async (d) => {
    const schema = {
      type: "object",
      properties: { age: { type: "integer" }, ok: { type: "boolean" } },
    };
    const res = await post(d, "/api/generate", {
      model: "llama3.2",
      prompt: "x",
      format: schema,
      stream: false,
    });
    assert.deepEqual(JSON.parse((await res.json()).response), { age: 0, ok: true });
    const json = await post(d, "/api/generate", {
      model: "llama3.2",
      prompt: "x",
      format: "json",
      stream: false,
    });
    assert.deepEqual(JSON.parse((await json.json()).response), { answer: "Echo: x" });
  });
});

Deno.test("double embeds single and batch input deterministically", async () => {
  await withDouble(async (d) => {
    const one = await (await post(d, "/api/embed", { model: "all-minilm", input: "hello" })).json();
    assert.deepEqual(Object.keys(one), [
      "model",
      "embeddings",
      "total_duration",
      "load_duration",
      "prompt_eval_count",
    ]);
    assert.equal(one.embeddings.length, 1);
    assert.equal(one.embeddings[0].length, 384);
    const norm = Math.sqrt(one.embeddings[0].reduce((s: number, v: number) => s + v * v, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`);

    const batch =
      await (await post(d, "/api/embed", { model: "all-minilm", input: ["hello", "world"] }))
        .json();
    assert.equal(batch.embeddings.length, 2);
    assert.deepEqual(batch.embeddings[0], one.embeddings[0]);
    assert.notDeepEqual(batch.embeddings[1], one.embeddings[0]);
    assert.equal(batch.prompt_eval_count, tokenize("hello").length * 2 + 4);

    // No capability check in the handler: the runner refuses, the handler answers 500.
    const refused = await post(d, "/api/embed", { model: "llama3.2", input: "x" });
    assert.equal(refused.status, 500);
    assert.equal(await refused.text(), '{"error":"this model does not support embeddings"}');
    // Empty input loads the model and answers before the runner is asked.
    const empty = await post(d, "/api/embed", { model: "llama3.2", input: [] });
    assert.equal(await empty.text(), '{"model":"llama3.2","embeddings":[]}');
  });
});

Deno.test("double answers unknown models with Ollama's not-found texts", async () => {
  await withDouble(async (d) => {
    const cases: [string, unknown, string][] = [
      ["/api/generate", { model: "nope", prompt: "x" }, `{"error":"model 'nope' not found"}`],
      ["/api/chat", { model: "nope", messages: [] }, `{"error":"model 'nope' not found"}`],
      ["/api/show", { model: "nope" }, `{"error":"model 'nope' not found"}`],
      [
        "/api/embed",
        { model: "nope", input: "x" },
        `{"error":"model \\"nope\\" not found, try pulling it first"}`,
      ],
    ];
    for (const [path, body, expected] of cases) {
      const res = await post(d, path, body);
      assert.equal(res.status, 404, path);
      assert.equal(await res.text(), expected, path);
    }
  });
});

Deno.test("double rejects bad request bodies with Go's decoder errors", async () => {
  await withDouble(async (d) => {
    const bad = await post(d, "/api/chat", "{not json");
    assert.equal(bad.status, 400);
    assert.equal(
      await bad.text(),
      `{"error":"invalid character 'n' looking for beginning of object key string"}`,
    );
    const empty = await post(d, "/api/generate", "");
    assert.equal(await empty.text(), '{"error":"missing request body"}');
    const truncated = await post(d, "/api/generate", '{"model":"llama3.2"');
    assert.equal(await truncated.text(), '{"error":"unexpected EOF"}');
    const noModel = await post(d, "/api/chat", { messages: [] });
    assert.equal(noModel.status, 400);
    assert.equal(await noModel.text(), '{"error":"model is required"}');
  });
});

Deno.test("double records requests and wakes waiters on the next one", async () => {
  await withDouble(async (d) => {
    const seen = d.waitForRequest("/api/tags");
    await (await fetch(`${d.url}/api/tags`)).body?.cancel();
    await seen;
    assert.deepEqual(d.requests.at(-1), { method: "GET", path: "/api/tags", body: null });
    const aborted = new AbortController();
    const never = d.waitForRequest("/api/never", aborted.signal);
    aborted.abort(new Error("stop"));
    await assert.rejects(never, /stop/);
  });
});

Deno.test("double fault status replies with that status and error", async () => {
  await withDouble(async (d) => {
    d.failNext({ kind: "status", status: 503, error: "server busy" }, 2);
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${d.url}/api/tags`);
      assert.equal(res.status, 503);
      assert.equal(await res.text(), '{"error":"server busy"}');
    }
    assert.equal((await fetch(`${d.url}/api/tags`)).status, 200, "fault used up");
  });
});

Deno.test("double fault error-in-stream sends an error line after tokens", async () => {
  await withDouble(async (d) => {
    d.failNext({ kind: "error-in-stream", afterTokens: 2, error: "model runner crashed" });
    const res = await post(d, "/api/generate", { model: "llama3.2", prompt: "a b c" });
    assert.equal(res.status, 200);
    const chunks = await lines(res);
    assert.deepEqual(chunks.map((c) => c.response ?? c.error), [
      "Echo:",
      " a",
      "model runner crashed",
    ]);
    assert.deepEqual(chunks[2], { error: "model runner crashed" });
  });
});

Deno.test("double fault drop aborts the body mid-stream", async () => {
  await withDouble(async (d) => {
    d.failNext({ kind: "drop", afterTokens: 1 });
    const res = await post(d, "/api/chat", {
      model: "llama3.2",
      messages: [{ role: "user", content: "a b" }],
    });
    assert.equal(res.status, 200);
    await assert.rejects(res.text(), TypeError);
    await d.waitForOpenStreams(0);
  });
});

Deno.test("double fault hang-after-headers holds the body until the client cancels", async () => {
  await withDouble(async (d) => {
    d.failNext({ kind: "hang-after-headers" });
    const res = await post(d, "/api/generate", { model: "llama3.2", prompt: "x" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    assert.equal(d.openStreams, 1);
    await res.body?.cancel();
    await d.waitForOpenStreams(0);
    assert.equal(d.streamsStarted, 1);
  });
});

Deno.test("double fault trickle delivers the normal body byte by byte", async () => {
  await withDouble(async (d) => {
    d.failNext({ kind: "trickle", intervalMs: 1 });
    const res = await post(d, "/api/chat", { model: "llama3.2", messages: [] });
    assert.equal(d.openStreams, 1);
    const reader = res.body!.getReader();
    const sizes: number[] = [];
    let text = "";
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      sizes.push(value.length);
      text += decoder.decode(value);
    }
    const body = JSON.parse(text);
    assert.deepEqual(body.message, { role: "assistant", content: "" });
    assert.equal(body.done_reason, "load");
    assert.ok(sizes.every((n) => n === 1), "one byte per read");
    await d.waitForOpenStreams(0);
  });
});

Deno.test("double fault non-json returns a proxy page", async () => {
  await withDouble(async (d) => {
    d.failNext({ kind: "non-json", body: "<html>Bad Gateway</html>" });
    const res = await post(d, "/api/embed", { model: "all-minilm", input: "x" });
    assert.equal(res.status, 502);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(await res.text(), "<html>Bad Gateway</html>");
  });
});

Deno.test("double openStreams returns to 0 after a client cancels mid-stream", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/generate", {
      model: "llama3.2",
      prompt: "one two three four five",
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.equal(JSON.parse(new TextDecoder().decode(first.value)).response, "Echo:");
    assert.equal(d.openStreams, 1);
    await reader.cancel();
    await d.waitForOpenStreams(0);
    assert.equal(d.streamsStarted, 1);
  }, { tokenDelayMs: 50 });
});

Deno.test("double refuses a keep_alive Go cannot parse with Ollama's 400 and Go's text", async () => {
  await withDouble(async (d) => {
    const cases: [unknown, number, string][] = [
      ["5x", 400, '{"error":"time: unknown unit \\"x\\" in duration \\"5x\\""}'],
      ["10", 400, '{"error":"time: missing unit in duration \\"10\\""}'],
      ["soon", 400, '{"error":"time: invalid duration \\"soon\\""}'],
      [true, 400, `{"error":"Unsupported type: 'bool'"}`],
    ];
    for (const [keepAlive, status, body] of cases) {
      for (const path of ["/api/generate", "/api/embed"]) {
        const res = await post(d, path, {
          model: path === "/api/embed" ? "all-minilm" : "llama3.2",
          prompt: "x",
          input: "x",
          keep_alive: keepAlive,
          stream: false,
        });
        assert.equal(res.status, status, `${path} ${JSON.stringify(keepAlive)}`);
        assert.equal(await res.text(), body, `${path} ${JSON.stringify(keepAlive)}`);
      }
    }
    for (const keepAlive of ["1h30m", "0", "-1s", "500ms", 300, -1]) {
      const res = await post(d, "/api/generate", {
        model: "llama3.2",
        prompt: "x",
        keep_alive: keepAlive,
        stream: false,
      });
      assert.equal(res.status, 200, JSON.stringify(keepAlive));
      assert.equal((await res.json()).response, "Echo: x");
    }
  });
});

Deno.test("double streams several tool calls with text beside them when scripted", async () => {
  await withDouble(async (d) => {
    d.scriptNext({
      content: "Checking both cities.",
      toolCalls: [
        { name: "get_weather", arguments: { city: "Paris", unit: "celsius" } },
        { name: "get_time", arguments: { zone: "Europe/Oslo" } },
      ],
    });
    const res = await post(d, "/api/chat", {
      model: "llama3.2",
      messages: [{ role: "user", content: "anything" }],
      tools: [{ type: "function", function: { name: "get_weather" } }],
    });
    const chunks = await lines(res);
    const messages = chunks.map((c) => c.message as Record<string, unknown>);
    assert.deepEqual(messages.slice(0, 3).map((m) => m.content), ["Checking", " both", " cities."]);
    const calls = messages[3].tool_calls as { id: string; function: unknown }[];
    assert.equal(messages[3].content, "");
    assert.deepEqual(calls.map((c) => c.function), [
      { index: 0, name: "get_weather", arguments: { city: "Paris", unit: "celsius" } },
      { index: 1, name: "get_time", arguments: { zone: "Europe/Oslo" } },
    ]);
    for (const call of calls) assert.match(call.id, /^call_[a-z0-9]{8}$/);
    assert.notEqual(calls[0].id, calls[1].id);
    assert.equal(chunks.length, 5);
    assert.deepEqual(chunks[4].message, { role: "assistant", content: "" });
    assert.equal(chunks[4].done_reason, "stop");

    // The script is used up: the next reply is the echo again.
    const echo = await lines(
      await post(d, "/api/chat", {
        model: "llama3.2",
        messages: [{ role: "user", content: "hi" }],
      }),
    );
    assert.equal(
      echo.slice(0, -1).map((c) => (c.message as { content: string }).content).join(""),
      "Echo: hi",
    );
  });
});

Deno.test("double ignores images on text models and fails them where vision data is missing", async () => {
  const models = [
    ...DEFAULT_MODELS,
    {
      name: "gemma3-text:latest",
      family: "gemma3",
      parameterSize: "1B",
      quantization: "Q4_K_M",
      capabilities: ["completion"],
      visionDataMissing: true,
    },
  ];
  const d = await startOllamaDouble({ models });
  try {
    const ignored = await post(d, "/api/generate", {
      model: "llama3.2",
      prompt: "look",
      images: ["aGk="],
      stream: false,
    });
    assert.equal(ignored.status, 200);
    assert.equal((await ignored.json()).response, "Echo: look");
    const streamed = await post(d, "/api/chat", {
      model: "gemma3-text",
      messages: [{ role: "user", content: "look", images: ["aGk="] }],
    });
    assert.equal(streamed.status, 500);
    assert.equal(streamed.headers.get("content-type"), "application/json");
    assert.equal(await streamed.text(), JSON.stringify({ error: OLLAMA_ERRORS.noVisionData }));
  } finally {
    await d.close();
  }
});

Deno.test("double injects Ollama's 503 busy and 429 rate-limit replies verbatim", async () => {
  await withDouble(async (d) => {
    d.failNext({ kind: "status", status: 503, error: OLLAMA_ERRORS.busy });
    d.failNext({ kind: "status", status: 429, error: OLLAMA_ERRORS.rateLimited });
    const busy = await post(d, "/api/chat", { model: "llama3.2", messages: [] });
    assert.equal(busy.status, 503);
    assert.equal(
      await busy.text(),
      '{"error":"server busy, please try again.  maximum pending requests exceeded"}',
    );
    const limited = await post(d, "/api/chat", { model: "llama3.2", messages: [] });
    assert.equal(limited.status, 429);
    assert.equal(await limited.text(), '{"error":"rate limit exceeded"}');
  });
});

Deno.test("double streams /api/pull as Ollama writes it: Go's field order, no completed while 0, success last", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/pull", { model: "smollm2:135m" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    const text = await res.text();
    const raw = text.trimEnd().split("\n");
    assert.equal(raw[0], '{"status":"pulling manifest"}');
    assert.match(
      raw[1],
      /^\{"status":"pulling ([0-9a-f]{12})","digest":"sha256:\1[0-9a-f]{52}","total":\d+\}$/,
    );
    assert.match(
      raw[2],
      /^\{"status":"pulling [0-9a-f]{12}","digest":"sha256:[0-9a-f]{64}","total":\d+,"completed":\d+\}$/,
    );
    assert.deepEqual(raw.slice(-3), [
      '{"status":"verifying sha256 digest"}',
      '{"status":"writing manifest"}',
      '{"status":"success"}',
    ]);
    assert.ok(d.installed.includes("smollm2:135m"));
  });
});

Deno.test("double answers a pull of an unknown model with the manifest error after 'pulling manifest'", async () => {
  await withDouble(async (d) => {
    const res = await post(d, "/api/pull", { model: "nosuch" });
    assert.equal(res.status, 200);
    assert.equal(
      await res.text(),
      '{"status":"pulling manifest"}\n{"error":"pull model manifest: file does not exist"}\n',
    );
    const bad = await post(d, "/api/pull", { model: "no spaces!" });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { error: "invalid model name" });
  });
});

Deno.test("double deletes with DELETE /api/delete: 200 and no body, then 404 in Ollama's words", async () => {
  await withDouble(async (d) => {
    const del = (model: string) =>
      fetch(`${d.url}/api/delete`, { method: "DELETE", body: JSON.stringify({ model }) });
    const ok = await del("llava");
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), "");
    assert.ok(!d.installed.includes("llava:latest"));
    const again = await del("llava");
    assert.equal(again.status, 404);
    assert.deepEqual(await again.json(), { error: "model 'llava' not found" });
    const wrongMethod = await post(d, "/api/delete", { model: "qwen3" });
    assert.equal(wrongMethod.status, 405);
    assert.equal(await wrongMethod.text(), "405 method not allowed");
  });
});
