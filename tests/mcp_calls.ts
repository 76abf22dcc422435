/**
 * Test helpers for MCP tool calls made with the SDK's `Client`, shared by
 * the stdio, WebSocket and Streamable HTTP tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { OllamaDouble } from "./ollama_double.ts";
import type { CallToolResult, Client } from "./sdk_client.ts";

/** The text content of a tool result. */
export function resultText(result: CallToolResult): string {
  return result.content.map((c) => (c.type === "text" ? c.text : "")).join("");
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
