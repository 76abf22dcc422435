/**
 * Long calls as tasks end to end, against the real daemon and the Ollama
 * double: a generation that takes longer than the client's request timeout
 * completes as a task and is fetched after a reconnect on another transport
 * (2025-11-25, the v2 SDK client with a token), and the 2026-07-28 tasks
 * extension over raw Streamable HTTP, cancel included.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { z } from "zod";
import { startDaemon } from "../daemon.ts";
import { rpcReply } from "../mcp_calls.ts";
import { startOllamaDouble } from "../ollama_double.ts";
import { WebSocketTransport } from "../ws_client_transport.ts";

const TOKEN = "tasks-e2e-token";
const TASKS = "io.modelcontextprotocol/tasks";

const taskResult = z.object({ task: z.object({ taskId: z.string(), status: z.string() }) })
  .passthrough();
const anyResult = z.record(z.string(), z.unknown());

Deno.test("a generation longer than the client's timeout completes as a task, fetched after a reconnect", async () => {
  // 40 tokens at 50 ms: about 2 s, four times the client's 500 ms request timeout.
  const double = await startOllamaDouble({ tokenDelayMs: 50 });
  const daemon = await startDaemon(double.host, [], { env: { RUNE_TOKEN: TOKEN } });
  const headers = { Authorization: `Bearer ${TOKEN}` };
  const first = new Client({ name: "tasks-e2e", version: "1" });
  await first.connect(
    new StreamableHTTPClientTransport(new URL(daemon.mcpUrl), { requestInit: { headers } }),
  );
  let second: Client | undefined;
  try {
    const args = { model: "llama3.2", prompt: "x", options: { num_predict: 40 } };
    // As a plain call, the client gives up.
    await assert.rejects(
      first.callTool({ name: "ai_ollama_generate", arguments: args }, { timeout: 500 }),
      /timed out|timeout/i,
    );
    // As a task, the answer is a handle, at once.
    const created = await first.request(
      { method: "tools/call", params: { name: "ai_ollama_generate", arguments: args, task: {} } },
      taskResult,
      { timeout: 500 },
    );
    assert.equal(created.task.status, "working");
    await first.close();
    // Another connection, another transport, the same token: the task is there.
    second = new Client({ name: "tasks-e2e-again", version: "1" });
    await second.connect(new WebSocketTransport(daemon.wsUrl, { protocols: [`bearer.${TOKEN}`] }));
    const result = await second.request(
      { method: "tasks/result", params: { taskId: created.task.taskId } },
      anyResult,
      { timeout: 30_000 },
    ) as { structuredContent: { response: string; usage: { completion_tokens: number } } };
    assert.equal(result.structuredContent.usage.completion_tokens, 40);
    assert.match(result.structuredContent.response, /^Echo: /);
  } finally {
    await first.close().catch(() => {});
    await second?.close();
    await daemon.stop();
    await double.close();
  }
});

/** A 2026-07-28 request over raw Streamable HTTP with the headers and envelope the spec requires. */
async function modern(
  url: string,
  method: string,
  params: Record<string, unknown>,
  name?: string,
  // Replies are JSON read by path and checked by the assertions that follow.
  // deno-lint-ignore no-explicit-any
): Promise<Record<string, any>> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": method,
      ...(name !== undefined && { "mcp-name": name }),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientCapabilities": { extensions: { [TASKS]: {} } },
        },
      },
    }),
  });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return rpcReply(response.headers.get("content-type"), text);
}

Deno.test("2026-07-28 tasks over Streamable HTTP: create, poll, cancel aborts the upstream", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 20 });
  const daemon = await startDaemon(double.host);
  try {
    const created = await modern(daemon.mcpUrl, "tools/call", {
      name: "ai_generate",
      arguments: { model: "ollama/llama3.2", prompt: "hello tasks" },
    }, "ai_generate");
    assert.equal(created.result.resultType, "task");
    const { taskId } = created.result;
    let got = created;
    while (got.result.status === "working") {
      got = await modern(daemon.mcpUrl, "tasks/get", { taskId }, taskId);
    }
    assert.equal(got.result.status, "completed");
    assert.equal(got.result.result.structuredContent.response, "Echo: hello tasks");

    const long = await modern(daemon.mcpUrl, "tools/call", {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "x", options: { num_predict: 100_000 } },
    }, "ai_ollama_generate");
    await double.waitForOpenStreams(1);
    const ack = await modern(
      daemon.mcpUrl,
      "tasks/cancel",
      { taskId: long.result.taskId },
      long.result.taskId,
    );
    assert.equal(ack.result.resultType, "complete");
    await double.waitForOpenStreams(0);
    const cancelled = await modern(
      daemon.mcpUrl,
      "tasks/get",
      { taskId: long.result.taskId },
      long.result.taskId,
    );
    assert.equal(cancelled.result.status, "cancelled");
  } finally {
    await daemon.stop();
    await double.close();
  }
});
