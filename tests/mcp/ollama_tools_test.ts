/**
 * End-to-end tests of the `ai_ollama_*` tools: the real `src/main.ts serve
 * --stdio` process driven by the v1 SDK's `Client` (the 2025 era, as editors
 * use it today) against the Ollama double, checking what reaches Ollama and
 * what comes back. The MCP layer alone is tested in `server_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import type { CallToolResult } from "../sdk_client.ts";
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
