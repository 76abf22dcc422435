/**
 * Test helpers for MCP tool calls made with the SDK's `Client`, shared by
 * the stdio, WebSocket and Streamable HTTP tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { OllamaDouble } from "./ollama_double.ts";
import type { Client } from "./sdk_client.ts";

/** The text content of a tool result (loosely typed: raw replies and SDK results alike). */
export function resultText(result: { content?: unknown }): string {
  const content = (result.content ?? []) as { type: string; text?: string }[];
  return content.map((c) => (c.type === "text" ? c.text ?? "" : "")).join("");
}

/**
 * A raw JSON-RPC `tools/call` of `ai_ollama_generate` with a progress token;
 * `numPredict` makes the Ollama double stream exactly that many tokens.
 */
export function generateCall(
  id: string | number,
  { prompt = "tell me", numPredict }: { prompt?: string; numPredict?: number } = {},
): Record<string, unknown> {
  return {
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: {
      name: "ai_ollama_generate",
      arguments: {
        model: "llama3.2",
        prompt,
        ...(numPredict !== undefined && { options: { num_predict: numPredict } }),
      },
      _meta: { progressToken: `progress-${id}` },
    },
  };
}

/** A generate call with progress that streams until it is stopped. */
export interface LongCall {
  /** Settles when the call ends (rejects once cancelled). */
  call: Promise<unknown>;
  /** Resolves at the first progress notification. */
  streaming: Promise<void>;
  /** Cancels the call (the SDK sends `notifications/cancelled`). */
  cancel(): void;
}

/** Starts a long `ai_ollama_generate` call with a progress token. */
export function startLongCall(client: Client): LongCall {
  const controller = new AbortController();
  let first!: () => void;
  const streaming = new Promise<void>((resolve) => (first = resolve));
  const call = client.callTool(
    {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "x", options: { num_predict: 100_000 } },
    },
    undefined,
    { signal: controller.signal, onprogress: () => first() },
  );
  return { call, streaming, cancel: () => controller.abort("cancelled by the test") };
}

/**
 * Cancels a streaming call once tokens flow and checks that the upstream
 * request to Ollama is aborted.
 */
export async function assertCancelAbortsUpstream(client: Client, double: OllamaDouble) {
  const long = startLongCall(client);
  await long.streaming;
  assert.equal(double.openStreams, 1, "one upstream stream while generating");
  long.cancel();
  await assert.rejects(long.call);
  await double.waitForOpenStreams(0);
}

/**
 * The JSON-RPC response in an HTTP reply to a POST on `/mcp`, whether the
 * server answered with JSON or over SSE (where it is the event that has a
 * `result` or an `error`; progress notifications before it are skipped).
 */
// Replies are read by path and checked by the assertions that follow.
// deno-lint-ignore no-explicit-any
export function rpcReply(contentType: string | null, text: string): Record<string, any> {
  if (!contentType?.startsWith("text/event-stream")) return JSON.parse(text);
  const messages = text.split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => JSON.parse(line.slice(5)));
  const reply = messages.find((m) => "result" in m || "error" in m);
  if (reply === undefined) throw new Error(`no response in the event stream: ${text}`);
  return reply;
}
