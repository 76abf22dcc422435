/**
 * Checks shared by the interop tests: the same streamed generation and the
 * same cancel, asserted identically whichever client library makes the call,
 * and a {@linkcode tap} that records what went over the client's transport.
 * Each test adapts its client's `callTool` to {@linkcode GenerateFn}.
 *
 * @module
 */

import assert from "node:assert/strict";
import { resultText } from "../mcp_calls.ts";
import type { OllamaDouble } from "../ollama_double.ts";

/** The tools Rune lists with one Ollama provider, sorted. */
export const TOOLS = [
  "ai_chat",
  "ai_compare",
  "ai_embed",
  "ai_generate",
  "ai_list_models",
  "ai_ollama_chat",
  "ai_ollama_embed",
  "ai_ollama_generate",
  "ai_ollama_list_models",
  "ai_ollama_ps",
  "ai_ollama_show",
];

/** A progress notification as the SDK clients hand it to `onprogress`. */
export interface Progress {
  /** Increases with every notification. */
  progress: number;
  /** Rune puts the streamed text delta here. */
  message?: string;
}

/** What {@linkcode GenerateFn} passes on to the client's call. */
export interface CallOptions {
  /** Receives each progress notification (the client then sends a progress token). */
  onprogress?: (progress: Progress) => void;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** A tool result, loosely typed: every client library has its own result type. */
export interface ToolResult {
  /** Content blocks. */
  content?: unknown;
  /** The structured result. */
  structuredContent?: unknown;
  /** True for a tool execution error. */
  isError?: boolean;
}

/** Calls `ai_ollama_generate` with `args` through one client. */
export type GenerateFn = (
  args: Record<string, unknown>,
  options: CallOptions,
) => Promise<ToolResult>;

/** A JSON-RPC message as a transport carried it. */
export type Message = {
  id?: string | number;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
} & Record<string, unknown>;

/** A client transport of either SDK line, as far as {@linkcode tap} needs it. */
export interface Tappable {
  /** Sends one message. */
  send(message: never, options?: never): Promise<void>;
  /** Installed by the client: receives each message. */
  onmessage?: (message: never, extra?: never) => void;
}

/** What went over one transport, in order. */
export interface Wire {
  /** Messages the client sent. */
  sent: Message[];
  /** Messages the client received. */
  received: Message[];
}

/**
 * Records every message `transport` sends and receives. `onmessage` becomes
 * an accessor that wraps whatever handler the client installs, whenever it
 * does: the v2 client installs a new one after `server/discover`. Call
 * before `client.connect(transport)`.
 */
export function tap(transport: Tappable): Wire {
  const wire: Wire = { sent: [], received: [] };
  let deliver: ((message: never, extra?: never) => void) | undefined;
  const tapped = (message: never, extra?: never) => {
    wire.received.push(message as Message);
    deliver?.(message, extra);
  };
  Object.defineProperty(transport, "onmessage", {
    configurable: true,
    get: () => (deliver ? tapped : undefined),
    set: (handler: typeof deliver) => (deliver = handler),
  });
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    wire.sent.push(message as Message);
    return send(message, options);
  };
  return wire;
}

/** The prompt of the streamed generation and the text the double answers with. */
const PROMPT = "one two three four five";
const ECHO = "Echo: one two three four five";

/**
 * Streams a generation with progress. On the wire, every delta arrives as a
 * progress notification before the result, in order, with progress values
 * 1, 2, 3..., and the deltas add up to the result's text.
 *
 * The client's `onprogress` sees a prefix of those notifications, possibly
 * empty: both SDK clients (v1 1.32.2, v2 2.4.0) run notification handlers a
 * microtask late (`_onnotification` defers through `Promise.resolve()`)
 * while `_onresponse` drops the call's progress handler at once, so
 * notifications that arrive in the same read as the response are lost.
 * Rune cannot prevent that (the client decides how much it reads at once);
 * the result always carries the whole text.
 */
export async function assertStreams(generate: GenerateFn, wire: Wire): Promise<void> {
  const deltas: string[] = [];
  const values: number[] = [];
  const from = wire.received.length;
  const result = await generate({ model: "llama3.2", prompt: PROMPT }, {
    onprogress: (p) => {
      values.push(p.progress);
      deltas.push(p.message ?? "");
    },
  });
  assert.notEqual(result.isError, true, resultText(result));
  assert.equal(resultText(result), ECHO);
  const structured = result.structuredContent as { response: string; done_reason: string };
  assert.equal(structured.response, ECHO);
  assert.equal(structured.done_reason, "stop");

  const call = wire.sent.findLast((m) => m.method === "tools/call")!;
  const received = wire.received.slice(from);
  const answerAt = received.findIndex((m) => m.id === call.id && "result" in m);
  assert.ok(answerAt >= 0, "the answer went over the tapped transport");
  assert.deepEqual(received.slice(answerAt + 1), [], "nothing after the answer");
  const token = (call.params?._meta as { progressToken?: unknown } | undefined)?.progressToken;
  assert.notEqual(token, undefined, "the client asked for progress");
  const notified = received.slice(0, answerAt)
    .filter((m) => m.method === "notifications/progress")
    .map((m) => m.params as { progressToken: unknown; progress: number; message: string });
  assert.deepEqual(notified.map((p) => p.progressToken), notified.map(() => token));
  assert.equal(notified.map((p) => p.message).join(""), ECHO);
  assert.deepEqual(notified.map((p) => p.progress), notified.map((_, i) => i + 1));
  // What the client handed on: a prefix of what arrived (see above).
  assert.deepEqual(deltas, notified.slice(0, deltas.length).map((p) => p.message));
  assert.deepEqual(values, notified.slice(0, values.length).map((p) => p.progress));
}

/**
 * Cancels a long generation once it streams; the upstream request to the
 * Ollama double must close. Resolves to the error the call rejected with.
 */
export async function assertCancelAborts(
  generate: GenerateFn,
  double: OllamaDouble,
): Promise<unknown> {
  const controller = new AbortController();
  let first!: () => void;
  const streaming = new Promise<void>((resolve) => (first = resolve));
  const call = generate(
    { model: "llama3.2", prompt: "x", options: { num_predict: 100_000 } },
    { signal: controller.signal, onprogress: () => first() },
  );
  await streaming;
  assert.equal(double.openStreams, 1, "one upstream stream while generating");
  controller.abort("cancelled by the test");
  const error = await call.then(
    (result) => assert.fail(`the cancelled call resolved: ${resultText(result)}`),
    (error: unknown) => error,
  );
  await double.waitForOpenStreams(0);
  return error;
}
