/**
 * Checks shared by the interop tests: the same streamed generation and the
 * same cancel, asserted identically whichever client library makes the call.
 * Each test adapts its client's `callTool` to {@linkcode GenerateFn}.
 *
 * @module
 */

import assert from "node:assert/strict";
import { resultText } from "../mcp_calls.ts";
import type { OllamaDouble } from "../ollama_double.ts";

/** The tools Rune lists with one Ollama provider, sorted. */
export const TOOLS = [
  "ai_ollama_chat",
  "ai_ollama_embed",
  "ai_ollama_generate",
  "ai_ollama_list_models",
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

/** The prompt of the streamed generation and the text the double answers with. */
const PROMPT = "one two three four five";
const ECHO = "Echo: one two three four five";

/**
 * Streams a generation with progress and checks that the deltas arrive in
 * order, with increasing progress values, and add up to the result.
 */
export async function assertStreams(generate: GenerateFn): Promise<void> {
  const deltas: string[] = [];
  const values: number[] = [];
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
  // Every delta arrived, in order, with strictly increasing progress values.
  assert.equal(deltas.join(""), ECHO);
  assert.deepEqual(values, values.map((_, i) => i + 1));
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
