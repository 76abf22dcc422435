/**
 * End-to-end tests of the MCP tools: the real `src/main.ts serve --stdio`
 * process driven by the SDK's `Client` over `StdioClientTransport`, against
 * the Ollama double.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { type CallToolResult, ErrorCode, McpError } from "../sdk_client.ts";
import { connectStdio, type StdioSession } from "../stdio_client.ts";
import { assertCancelAbortsUpstream, resultText } from "../mcp_calls.ts";

async function withSession(
  fn: (session: StdioSession, double: OllamaDouble) => Promise<void>,
): Promise<void> {
  const double = await startOllamaDouble();
  const session = await connectStdio(double.host);
  try {
    await fn(session, double);
  } finally {
    await session.close();
    await double.close();
  }
}

Deno.test("tools/list shows the four Ollama tools with schemas and annotations", async () => {
  await withSession(async ({ client }) => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name).sort();
    assert.deepEqual(names, [
      "ai_ollama_chat",
      "ai_ollama_embed",
      "ai_ollama_generate",
      "ai_ollama_list_models",
    ]);
    const generate = tools.find((t) => t.name === "ai_ollama_generate")!;
    assert.deepEqual(
      Object.keys(generate.inputSchema.properties ?? {}).sort(),
      ["format", "images", "keep_alive", "model", "options", "prompt", "system", "think"],
    );
    assert.deepEqual(generate.inputSchema.required?.sort(), ["model", "prompt"]);
    assert.ok(generate.outputSchema, "has an output schema");
    assert.equal(generate.annotations?.readOnlyHint, true);
    const chat = tools.find((t) => t.name === "ai_ollama_chat")!;
    assert.deepEqual(
      Object.keys(chat.inputSchema.properties ?? {}).sort(),
      ["format", "keep_alive", "messages", "model", "options", "think", "tools"],
    );
    const embed = tools.find((t) => t.name === "ai_ollama_embed")!;
    assert.deepEqual(Object.keys(embed.inputSchema.properties ?? {}).sort(), ["input", "model"]);
  });
});

Deno.test("ai_ollama_list_models returns the models as text and structured content", async () => {
  await withSession(async ({ client }) => {
    const result = await client.callTool({
      name: "ai_ollama_list_models",
      arguments: {},
    }) as CallToolResult;
    assert.equal(result.isError, undefined);
    const models = (result.structuredContent as { models: { name: string }[] }).models;
    assert.ok(models.some((m) => m.name === "llama3.2:latest"));
    assert.match(resultText(result), /llama3\.2:latest/);
  });
});

Deno.test("ai_ollama_generate streams the text as ordered progress notifications", async () => {
  await withSession(async ({ client }) => {
    const deltas: string[] = [];
    const progress: number[] = [];
    const result = await client.callTool(
      {
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "one two three four five six" },
      },
      undefined,
      {
        onprogress: (p) => {
          deltas.push(p.message ?? "");
          progress.push(p.progress);
        },
      },
    ) as CallToolResult;
    assert.equal(resultText(result), "Echo: one two three four five six");
    // The SDK client dispatches notifications a microtask after responses, so progress that
    // arrives in the same read as the result can be dropped on the client side; the exact wire
    // sequence is asserted in tests/transports/stdio_test.ts.
    assert.ok(deltas.length >= 1, "at least one progress notification");
    assert.ok(resultText(result).startsWith(deltas.join("")), "deltas are an in-order prefix");
    assert.deepEqual(progress, [...progress].sort((a, b) => a - b), "progress increases");
    const structured = result.structuredContent as Record<string, unknown>;
    assert.equal(structured.response, "Echo: one two three four five six");
    assert.equal(structured.done_reason, "stop");
  });
});

Deno.test("ai_ollama_generate passes system, format, options and think through", async () => {
  await withSession(async ({ client }, double) => {
    const result = await client.callTool({
      name: "ai_ollama_generate",
      arguments: {
        model: "qwen3",
        prompt: "p",
        system: "s",
        format: "json",
        think: true,
        options: { temperature: 0.1, num_predict: 5, num_ctx: 2048 },
      },
    }) as CallToolResult;
    assert.equal(result.isError, undefined);
    const body = double.requests.find((r) => r.path === "/api/generate")?.body as Record<
      string,
      unknown
    >;
    assert.equal(body.system, "s");
    assert.equal(body.format, "json");
    assert.equal(body.think, true);
    assert.deepEqual(body.options, { temperature: 0.1, num_predict: 5, num_ctx: 2048 });
    const structured = result.structuredContent as Record<string, unknown>;
    assert.equal(structured.done_reason, "length");
    assert.equal(typeof structured.thinking, "string");
  });
});

Deno.test("ai_ollama_chat answers the conversation and reports tool calls", async () => {
  await withSession(async ({ client }) => {
    const plain = await client.callTool({
      name: "ai_ollama_chat",
      arguments: {
        model: "llama3.2",
        messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "Echo: hi" }, {
          role: "user",
          content: "again",
        }],
      },
    }) as CallToolResult;
    assert.equal(resultText(plain), "Echo: again");
    const withTools = await client.callTool({
      name: "ai_ollama_chat",
      arguments: {
        model: "llama3.2",
        messages: [{ role: "user", content: "weather in Oslo?" }],
        tools: [{
          type: "function",
          function: {
            name: "get_weather",
            parameters: { type: "object", properties: { city: { type: "string" } } },
          },
        }],
      },
    }) as CallToolResult;
    const message = (withTools.structuredContent as {
      message: { tool_calls?: { function: { name: string } }[] };
    }).message;
    assert.equal(message.tool_calls?.[0].function.name, "get_weather");
    assert.match(resultText(withTools), /Tool call: get_weather/);
  });
});

Deno.test("ai_ollama_embed embeds a string and a batch", async () => {
  await withSession(async ({ client }) => {
    const one = await client.callTool({
      name: "ai_ollama_embed",
      arguments: { model: "all-minilm", input: "hello" },
    }) as CallToolResult;
    const single = one.structuredContent as { embeddings: number[][]; dimensions: number };
    assert.equal(single.embeddings.length, 1);
    assert.equal(single.dimensions, 384);
    const batch = await client.callTool({
      name: "ai_ollama_embed",
      arguments: { model: "all-minilm", input: ["a", "b"] },
    }) as CallToolResult;
    assert.equal((batch.structuredContent as { embeddings: number[][] }).embeddings.length, 2);
  });
});

Deno.test("invalid arguments get an invalid-params error and the daemon keeps serving", async () => {
  await withSession(async ({ client }) => {
    await assert.rejects(
      client.callTool({ name: "ai_ollama_generate", arguments: { model: 5 } }),
      (e: Error) => e instanceof McpError && e.code === ErrorCode.InvalidParams,
    );
    await assert.rejects(
      client.callTool({
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "x", options: { temprature: 1 } },
      }),
      (e: Error) => e instanceof McpError && e.code === ErrorCode.InvalidParams,
    );
    await assert.rejects(
      client.callTool({ name: "ai_ollama_nope", arguments: {} }),
      (e: Error) => e instanceof McpError && e.code === ErrorCode.InvalidParams,
    );
    const ok = await client.callTool({ name: "ai_ollama_list_models", arguments: {} });
    assert.equal(ok.isError, undefined);
  });
});

Deno.test("upstream failures are isError results that say what to do", async () => {
  await withSession(async ({ client }, double) => {
    const missing = await client.callTool({
      name: "ai_ollama_generate",
      arguments: { model: "nosuch", prompt: "x" },
    }) as CallToolResult;
    assert.equal(missing.isError, true);
    assert.match(resultText(missing), /ollama pull nosuch/);
    const wrong = await client.callTool({
      name: "ai_ollama_embed",
      arguments: { model: "llama3.2", input: "x" },
    }) as CallToolResult;
    assert.equal(wrong.isError, true);
    assert.match(resultText(wrong), /does not support embeddings/);
    double.failNext({ kind: "error-in-stream", afterTokens: 1, error: "CUDA error" });
    const failed = await client.callTool({
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "a b c" },
    }) as CallToolResult;
    assert.equal(failed.isError, true);
    assert.match(resultText(failed), /CUDA error/);
  });
});

Deno.test("cancelling a call aborts the upstream request at once", async () => {
  await withSession(async ({ client }, double) => {
    double.tokenDelayMs = 20;
    await assertCancelAbortsUpstream(client, double);
    // The session is still usable after the cancellation.
    double.tokenDelayMs = 0;
    const next = await client.callTool({
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "still here" },
    }) as CallToolResult;
    assert.equal(resultText(next), "Echo: still here");
  });
});
