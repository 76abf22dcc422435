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

/** The params of a `notifications/progress` as they came over the wire. */
export interface WireProgress {
  /** The request's progress token. */
  progressToken: string | number;
  /** Progress so far. */
  progress: number;
  /** Total, when known. */
  total?: number;
  /** The text delta or status. */
  message?: string;
}

/** A JSON-RPC message as a transport hands it to its client. */
type WireMessage = { method?: string; params?: unknown };

/** What {@linkcode tapProgress} uses of a transport (both SDK lines have it). */
interface TappedTransport {
  onmessage?: (message: WireMessage, extra?: unknown) => void;
}

/** Progress notifications a client received, recorded as they reach its transport. */
export interface ProgressTap {
  /** Every progress notification received since the tap, in wire order. */
  readonly received: WireProgress[];
  /** The messages of those for `token` (all when omitted), joined. */
  text(token?: string | number): string;
}

/**
 * Records the progress notifications `client` receives, in wire order, as
 * they reach its transport: the SDK client's own `onprogress` runs a
 * microtask late and drops a notification that arrives in the same read as
 * the result (its progress handler is gone by then), so a test that counts
 * or joins what `onprogress` saw depends on timing. Call after `connect`.
 */
export function tapProgress(client: { readonly transport?: unknown }): ProgressTap {
  // The v1 and v2 clients type their transports' handlers generically; this reads any message.
  const transport = client.transport as TappedTransport | undefined;
  if (!transport) throw new Error("tapProgress: connect the client first");
  const received: WireProgress[] = [];
  const deliver = transport.onmessage?.bind(transport);
  transport.onmessage = (message, extra) => {
    if (message.method === "notifications/progress") {
      received.push(message.params as unknown as WireProgress);
    }
    deliver?.(message, extra);
  };
  return {
    received,
    text: (token) =>
      received.filter((p) => token === undefined || p.progressToken === token)
        .map((p) => p.message ?? "").join(""),
  };
}
