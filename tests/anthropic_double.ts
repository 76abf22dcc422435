/**
 * A faithful Anthropic API double for tests and benchmarks: the Messages
 * API (`POST /v1/messages`, streamed or not) and the Models API
 * (`GET /v1/models`, `GET /v1/models/{id}`).
 *
 * It is a real HTTP server (`Deno.serve` on 127.0.0.1) that answers the way
 * Anthropic's documentation and official SDK show: the streamed event
 * sequence (`message_start`, `content_block_start`, `ping`,
 * `content_block_delta` with `text_delta`, `thinking_delta`,
 * `signature_delta` and `input_json_delta`, `content_block_stop`,
 * `message_delta`, `message_stop`), `error` events in the middle of a
 * stream, error bodies `{"type":"error","error":{"type","message"},
 * "request_id"}` with a `request-id` header, paginated model lists, and the
 * validation messages Anthropic gives for the mistakes a client makes
 * (missing `anthropic-version`, a thinking budget under 1024, tool results
 * not paired with their calls, an unsigned thinking block, ...).
 *
 * Authentication is strict: a request must carry `x-api-key: <apiKey>`, or
 * `Authorization: Bearer` with the current OAuth token or the API key (the
 * official SDK 1.x sends keys that way); anything else is a 401.
 *
 * Replies are deterministic: the model answers `"Echo: " + <the last user
 * turn's text>` (a tool result's text counts), split into word tokens that
 * keep their leading space. Thinking (when asked for) is `"Let me think
 * about: " + text`, signed. A question about the weather, with tools,
 * calls the first tool. Tests script replies with
 * {@linkcode AnthropicDouble.scriptNext} and inject faults (error
 * statuses, `error` events, dropped connections, hangs, raw bodies) with
 * {@linkcode AnthropicDouble.failNext}.
 *
 * Standalone use (benchmarks, manual `rune serve` tries):
 *
 * ```sh
 * deno run --allow-net tests/anthropic_double.ts --port 8787 --api-key sk-ant-test
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";

/** A model the double serves. */
export interface DoubleModel {
  /** Model id, e.g. `claude-haiku-4-5-20251001`; a dated id's alias (no date) is accepted too. */
  id: string;
  /** Name for people. */
  displayName: string;
  /** Release time, RFC 3339. */
  createdAt: string;
  /** Context window in tokens. */
  maxInputTokens: number;
  /** Largest `max_tokens`. */
  maxTokens: number;
  /** Supports extended thinking. */
  thinking: boolean;
}

/** The models served when none are given, newest first. */
export const DEFAULT_MODELS: readonly DoubleModel[] = [
  {
    id: "claude-sonnet-4-6",
    displayName: "Claude Sonnet 4.6",
    createdAt: "2026-02-17T00:00:00Z",
    maxInputTokens: 200000,
    maxTokens: 64000,
    thinking: true,
  },
  {
    id: "claude-opus-4-6",
    displayName: "Claude Opus 4.6",
    createdAt: "2026-02-05T00:00:00Z",
    maxInputTokens: 200000,
    maxTokens: 128000,
    thinking: true,
  },
  {
    id: "claude-haiku-4-5-20251001",
    displayName: "Claude Haiku 4.5",
    createdAt: "2025-10-15T00:00:00Z",
    maxInputTokens: 200000,
    maxTokens: 64000,
    thinking: true,
  },
  {
    id: "claude-3-haiku-20240307",
    displayName: "Claude Haiku 3",
    createdAt: "2024-03-07T00:00:00Z",
    maxInputTokens: 200000,
    maxTokens: 4096,
    thinking: false,
  },
];

/** The API key the double accepts by default. */
export const DEFAULT_API_KEY = "sk-ant-api03-double-key-0123456789";

/** The OAuth access token the double accepts by default (`Authorization: Bearer`). */
export const DEFAULT_BEARER_TOKEN = "sk-ant-oat01-double-token-0123456789";

/** The API versions the double speaks. */
export const API_VERSIONS = ["2023-06-01", "2026-10-21"] as const;

/**
 * Error messages Anthropic gives, for tests to inject and compare. The
 * validation texts are those Anthropic answers with (field paths as
 * `messages.1.content.0`); `overloaded` and `rateLimited` are the texts of
 * its 529 and 429 replies.
 */
export const ANTHROPIC_ERRORS = {
  overloaded: "Overloaded",
  rateLimited:
    "Number of request tokens has exceeded your per-minute rate limit (https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.",
  apiError: "Internal server error",
  invalidKey: "invalid x-api-key",
  missingKey: "x-api-key header is required",
  invalidBearer: "Invalid bearer token",
  missingVersion: "anthropic-version: header is required",
  permission: "Your API key does not have permission to use the specified resource.",
  tooLarge: "Request exceeds the maximum allowed number of bytes.",
  notFound: "Not Found",
} as const;

/** A tool call a scripted reply makes. */
export interface ScriptedToolCall {
  /** Tool name. */
  name: string;
  /** Arguments object; streamed as `input_json_delta` fragments. */
  arguments: Record<string, unknown>;
}

/**
 * What the model says in the next reply instead of the echo: thinking
 * (when thinking is on), then text, then tool calls, each its own block.
 */
export interface Script {
  /** Reasoning text (streamed only when the request enables thinking). */
  thinking?: string;
  /** The answer text. */
  content?: string;
  /** Tool calls, in order, each a `tool_use` block with a fresh id. */
  toolCalls?: ScriptedToolCall[];
  /** The stop reason to report instead of the one the reply implies (e.g. `refusal`, `pause_turn`). */
  stopReason?: string;
}

/** A failure injected into the next matching requests (`/v1/messages`, `/v1/models`). */
export type Fault =
  /** Reply with that status and Anthropic's error body; `headers` add e.g. `retry-after`. */
  | {
    kind: "status";
    status: number;
    type: string;
    message: string;
    headers?: Record<string, string>;
  }
  /** A 200 stream with `afterTokens` text deltas, then an `error` event and the end. */
  | { kind: "error-event"; afterTokens: number; type: string; message: string }
  /** A 200 stream with `afterTokens` text deltas, then the connection is cut mid-body. */
  | { kind: "drop"; afterTokens: number }
  /** 200 headers are sent, then the body stays silent until the client cancels. */
  | { kind: "hang-after-headers" }
  /** Answers with exactly this body (an SSE text, an HTML page, ...). */
  | { kind: "raw"; body: string; status?: number; contentType?: string };

/** Options of {@linkcode startAnthropicDouble}. */
export interface AnthropicDoubleOptions {
  /** Models to serve, newest first; default {@linkcode DEFAULT_MODELS}. */
  models?: DoubleModel[];
  /** The accepted API key; default {@linkcode DEFAULT_API_KEY}. */
  apiKey?: string;
  /** The accepted bearer token; default {@linkcode DEFAULT_BEARER_TOKEN}. */
  bearerToken?: string;
  /** Delay between streamed events in milliseconds; default 0. */
  tokenDelayMs?: number;
  /** Port to listen on; default 0 (any free port). */
  port?: number;
}

/** One request as the double received it. */
export interface RecordedRequest {
  /** HTTP method. */
  method: string;
  /** URL path, without query. */
  path: string;
  /** Query parameters. */
  query: Record<string, string>;
  /** Request headers, names in lower case. */
  headers: Record<string, string>;
  /** Parsed JSON body, the raw text when it is not JSON, or null when empty. */
  body: unknown;
}

/** A running double and its control API. */
export interface AnthropicDouble {
  /** Base URL, `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Streaming responses whose body is still open. */
  readonly openStreams: number;
  /** Streaming responses started since the double started. */
  readonly streamsStarted: number;
  /** The accepted API key. */
  readonly apiKey: string;
  /** The accepted bearer token; {@linkcode rotateToken} replaces it. */
  readonly bearerToken: string;
  /** Delay between streamed events in milliseconds; may be changed at runtime. */
  tokenDelayMs: number;
  /** Applies `fault` to the next `times` (default 1) `/v1/messages` or `/v1/models` requests. */
  failNext(fault: Fault, times?: number): void;
  /** Answers the next `times` (default 1) messages with `script` instead of the echo. */
  scriptNext(script: Script, times?: number): void;
  /** Replaces the bearer token (the old one is refused from now on) and returns the new one. */
  rotateToken(): string;
  /** Resolves once `openStreams === n`; rejects when `signal` aborts. */
  waitForOpenStreams(n: number, signal?: AbortSignal): Promise<void>;
  /** Resolves on the next request to `path`; rejects when `signal` aborts. */
  waitForRequest(path: string, signal?: AbortSignal): Promise<void>;
  /** Stops the server, ends open streams and clears every timer. */
  close(): Promise<void>;
}

type Json = Record<string, unknown>;

interface Waiter {
  resolve(): void;
}

interface State {
  models: DoubleModel[];
  apiKey: string;
  bearerToken: string;
  tokenRotations: number;
  tokenDelayMs: number;
  requests: RecordedRequest[];
  openStreams: number;
  streamsStarted: number;
  faults: { fault: Fault; remaining: number }[];
  scripts: { script: Script; remaining: number }[];
  streams: Set<() => void>;
  streamWaiters: Set<Waiter>;
  requestWaiters: Set<Waiter & { path: string }>;
  counter: number;
}

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Deterministic text, ids and signatures

function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (const byte of encoder.encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** 22 base62 characters derived from `seed`, as Anthropic's ids have after their prefix. */
function idChars(seed: string): string {
  let out = "";
  for (let i = 0; out.length < 22; i++) {
    let h = fnv1a(`${i}:${seed}`);
    for (let k = 0; k < 5 && out.length < 22; k++) {
      out += BASE62[h % 62];
      h = Math.floor(h / 62);
    }
  }
  return out;
}

function nextId(state: State, prefix: string): string {
  return `${prefix}${idChars(`${prefix}${state.counter++}`)}`;
}

/** The signature the double issues for a thinking text (and checks when it comes back). */
export function signThinking(thinking: string): string {
  let hex = "";
  for (let i = 0; i < 12; i++) hex += fnv1a(`sig${i}:${thinking}`).toString(16).padStart(8, "0");
  return `Eq${btoa(hex)}`;
}

/** Splits text into word tokens that keep their leading whitespace. */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

// ---------------------------------------------------------------------------
// Responses

function requestId(state: State): string {
  return nextId(state, "req_011C");
}

function jsonResponse(state: State, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status: 200,
    headers: { "content-type": "application/json", "request-id": requestId(state) },
  });
}

/** Anthropic's error body, with the request id in the body and the header. */
function errorResponse(
  state: State,
  { status, type, message, headers = {} }: {
    status: number;
    type: string;
    message: string;
    headers?: Record<string, string>;
  },
): Response {
  const id = requestId(state);
  return new Response(
    JSON.stringify({ type: "error", error: { type, message }, request_id: id }),
    { status, headers: { "content-type": "application/json", "request-id": id, ...headers } },
  );
}

function invalid(state: State, message: string): Response {
  return errorResponse(state, { status: 400, type: "invalid_request_error", message });
}

function sse(event: string, data: unknown): Uint8Array {
  return encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function notifyStreams(state: State): void {
  for (const waiter of [...state.streamWaiters]) waiter.resolve();
}

/** What a streamed body does next. */
interface Step {
  bytes?: Uint8Array;
  delay?: boolean;
  end?: "close" | "error" | "hang";
}

/** A pull-based body that counts as an open stream until it ends or is cancelled. */
function managedStream(state: State, steps: () => Step | undefined): ReadableStream<Uint8Array> {
  let finished = false;
  let wake: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;
  const finish = () => {
    if (finished) return;
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
    wake?.();
    state.streams.delete(abort);
    state.openStreams--;
    notifyStreams(state);
  };
  const abort = () => {
    if (finished) return;
    try {
      controllerRef?.error(new Error("anthropic double closed"));
    } catch {
      // already closed
    }
    finish();
  };
  const wait = (ms: number | undefined) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      if (ms !== undefined) timer = setTimeout(resolve, ms);
    });
  state.streams.add(abort);
  state.openStreams++;
  state.streamsStarted++;
  notifyStreams(state);
  let first = true;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controllerRef = controller;
    },
    async pull(controller) {
      if (finished) return;
      const step = steps() ?? { end: "close" };
      if (step.delay && !first && state.tokenDelayMs > 0) {
        await wait(state.tokenDelayMs);
        if (finished) return;
      }
      first = false;
      if (step.bytes) controller.enqueue(step.bytes);
      if (step.end === "close") {
        controller.close();
        finish();
      } else if (step.end === "error") {
        // Erroring the body makes Deno cut the connection mid-body.
        controller.error(new Error("anthropic double: connection dropped (injected fault)"));
        finish();
      } else if (step.end === "hang") {
        await wait(undefined);
      }
    },
    cancel() {
      finish();
    },
  }, { highWaterMark: 0 });
}

function streamResponse(state: State, body: ReadableStream<Uint8Array>): Response {
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "request-id": requestId(state),
    },
  });
}

// ---------------------------------------------------------------------------
// Models

function findModel(state: State, name: string): DoubleModel | undefined {
  // An alias is the id without its date: claude-haiku-4-5 for claude-haiku-4-5-20251001.
  return state.models.find((m) => m.id === name || m.id.replace(/-\d{8}$/, "") === name);
}

function modelJson(model: DoubleModel): Json {
  const supported = (yes: boolean) => ({ supported: yes });
  return {
    type: "model",
    id: model.id,
    display_name: model.displayName,
    created_at: model.createdAt,
    max_input_tokens: model.maxInputTokens,
    max_tokens: model.maxTokens,
    capabilities: {
      batch: supported(true),
      citations: supported(true),
      code_execution: supported(true),
      image_input: supported(true),
      pdf_input: supported(true),
      structured_outputs: supported(model.thinking),
      thinking: {
        supported: model.thinking,
        types: { enabled: supported(model.thinking), adaptive: supported(false) },
      },
    },
  };
}

function handleModels(state: State, query: URLSearchParams): Response {
  const limitText = query.get("limit") ?? "20";
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1) {
    return invalid(state, "limit: Input should be greater than or equal to 1");
  }
  if (limit > 1000) return invalid(state, "limit: Input should be less than or equal to 1000");
  const after = query.get("after_id");
  const before = query.get("before_id");
  let start = 0;
  let end = state.models.length;
  if (after !== null) {
    const at = state.models.findIndex((m) => m.id === after);
    if (at === -1) return invalid(state, `after_id: model ${after} not found`);
    start = at + 1;
  }
  if (before !== null) {
    const at = state.models.findIndex((m) => m.id === before);
    if (at === -1) return invalid(state, `before_id: model ${before} not found`);
    end = at;
    start = Math.max(start, end - limit);
  }
  const page = state.models.slice(start, Math.min(end, start + limit));
  return jsonResponse(state, {
    data: page.map(modelJson),
    has_more: before !== null ? start > 0 : start + page.length < end,
    first_id: page[0]?.id ?? null,
    last_id: page.at(-1)?.id ?? null,
  });
}

// ---------------------------------------------------------------------------
// Messages: validation

/** Top-level fields of a Messages request; others are refused as Anthropic does. */
const KNOWN_FIELDS = new Set([
  "model",
  "messages",
  "max_tokens",
  "system",
  "stop_sequences",
  "stream",
  "temperature",
  "top_p",
  "top_k",
  "tools",
  "tool_choice",
  "thinking",
  "metadata",
  "service_tier",
  "output_config",
  "container",
  "mcp_servers",
  "context_management",
]);

/** Fields API version 2026-10-21 removed. */
const REMOVED_IN_2026 = ["temperature", "top_p", "top_k"];

const MEDIA_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];

interface Turn {
  role: string;
  blocks: Json[];
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function blocksOf(content: unknown): Json[] {
  if (typeof content === "string") return [{ type: "text", text: content }];
  return Array.isArray(content) ? content.filter(isObject) : [];
}

/** The first problem Anthropic would report, in its words, or undefined. */
function validateMessages(
  body: Json,
  { version, model }: { version: string; model: DoubleModel | undefined },
): string | undefined {
  for (const field of Object.keys(body)) {
    if (!KNOWN_FIELDS.has(field)) return `${field}: Extra inputs are not permitted`;
  }
  if (version === "2026-10-21") {
    const removed = REMOVED_IN_2026.find((field) => body[field] !== undefined);
    if (removed) return `${removed}: Extra inputs are not permitted`;
  }
  for (const field of ["model", "messages", "max_tokens"]) {
    if (body[field] === undefined) return `${field}: Field required`;
  }
  if (typeof body.max_tokens !== "number" || !Number.isInteger(body.max_tokens)) {
    return "max_tokens: Input should be a valid integer";
  }
  if (model && body.max_tokens > model.maxTokens) {
    return `max_tokens: ${body.max_tokens} > ${model.maxTokens}, which is the maximum allowed number of output tokens for ${model.id}`;
  }
  if (!Array.isArray(body.messages)) return "messages: Input should be a valid list";
  const thinking = body.thinking;
  if (isObject(thinking) && thinking.type === "enabled") {
    const budget = thinking.budget_tokens;
    if (typeof budget !== "number" || budget < 1024) {
      return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024";
    }
    if (body.max_tokens <= budget) {
      return "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size";
    }
  }
  const turns: Turn[] = [];
  for (const [i, message] of (body.messages as unknown[]).entries()) {
    if (!isObject(message)) return `messages.${i}: Input should be a valid dictionary`;
    if (message.role !== "user" && message.role !== "assistant") {
      return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    }
    const blocks = blocksOf(message.content);
    for (const [j, block] of blocks.entries()) {
      if (block.type === "image") {
        const source = isObject(block.source) ? block.source : {};
        if (!MEDIA_TYPES.includes(String(source.media_type))) {
          return `messages.${i}.content.${j}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'`;
        }
      }
      if (block.type === "thinking" && block.signature !== signThinking(String(block.thinking))) {
        return `messages.${i}.content.${j}: Invalid \`signature\` in \`thinking\` block`;
      }
    }
    turns.push({ role: message.role, blocks });
  }
  return validatePairing(turns, isObject(thinking) && thinking.type === "enabled");
}

/** Tool calls answered in the next turn by id, and thinking before a final tool-using turn. */
function validatePairing(turns: Turn[], thinking: boolean): string | undefined {
  for (const [i, turn] of turns.entries()) {
    const next = turns[i + 1];
    if (turn.role === "assistant") {
      const asked = turn.blocks.filter((b) => b.type === "tool_use").map((b) => String(b.id));
      const answered = new Set(
        (next?.blocks ?? []).filter((b) => b.type === "tool_result").map((b) =>
          String(b.tool_use_id)
        ),
      );
      const missing = asked.filter((id) => !answered.has(id));
      if (asked.length && next && missing.length) {
        return `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${
          missing.join(", ")
        }. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
      }
    } else {
      const previous = turns[i - 1];
      const asked = new Set(
        (previous?.role === "assistant" ? previous.blocks : []).filter((b) => b.type === "tool_use")
          .map((b) => String(b.id)),
      );
      for (const [j, block] of turn.blocks.entries()) {
        if (block.type === "tool_result" && !asked.has(String(block.tool_use_id))) {
          return `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${block.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
        }
      }
    }
  }
  if (thinking) {
    // The last assistant turn that called tools, when the conversation continues from its results.
    const lastAssistant = turns.findLastIndex((t) => t.role === "assistant");
    const turn = turns[lastAssistant];
    if (
      turn && lastAssistant === turns.length - 2 && turn.blocks.some((b) => b.type === "tool_use")
    ) {
      const first = turn.blocks[0];
      if (first.type !== "thinking" && first.type !== "redacted_thinking") {
        return `messages.${lastAssistant}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${first.type}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable \`thinking\`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking`;
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Messages: the reply

interface PlannedBlock {
  type: "thinking" | "text" | "tool_use";
  tokens: string[];
  id?: string;
  name?: string;
  input?: Json;
}

interface Plan {
  model: string;
  blocks: PlannedBlock[];
  stopReason: string;
  stopSequence: string | null;
  inputTokens: number;
  outputTokens: number;
}

/** The text of a turn as the echo sees it: text blocks and tool results' text. */
function turnText(blocks: Json[]): string {
  const parts: string[] = [];
  for (const block of blocks) {
    if (block.type === "text") parts.push(String(block.text));
    if (block.type === "tool_result") {
      const content = block.content;
      if (typeof content === "string") parts.push(content);
      else {parts.push(
          ...blocksOf(content).filter((b) => b.type === "text").map((b) => String(b.text)),
        );}
    }
  }
  return parts.join(" ");
}

function placeholder(schema: unknown, text: string): unknown {
  if (!isObject(schema)) return text;
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "integer":
    case "number":
      return 0;
    case "boolean":
      return true;
    case "array":
      return [];
    case "null":
      return null;
    case "object": {
      const properties = isObject(schema.properties) ? schema.properties : {};
      return Object.fromEntries(
        Object.entries(properties).map(([key, value]) => [key, placeholder(value, text)]),
      );
    }
    default:
      return text;
  }
}

function takeScript(state: State): Script | undefined {
  const head = state.scripts[0];
  if (!head) return undefined;
  if (--head.remaining <= 0) state.scripts.shift();
  return head.script;
}

function planReply(state: State, body: Json, model: DoubleModel): Plan {
  const turns = (body.messages as Json[]).map((m) => ({
    role: String(m.role),
    blocks: blocksOf(m.content),
  }));
  const lastUser = turns.findLast((t) => t.role === "user");
  const userText = lastUser ? turnText(lastUser.blocks) : "";
  const answeringTools = lastUser?.blocks.some((b) => b.type === "tool_result") ?? false;
  const tools = Array.isArray(body.tools) ? body.tools.filter(isObject) : [];
  const thinkingOn = isObject(body.thinking) && body.thinking.type === "enabled";
  const script = takeScript(state);
  const blocks: PlannedBlock[] = [];
  if (thinkingOn) {
    blocks.push({
      type: "thinking",
      tokens: tokenize(script?.thinking ?? `Let me think about: ${userText}`),
    });
  }
  const format = isObject(body.output_config) && isObject(body.output_config.format)
    ? body.output_config.format
    : undefined;
  const echo = `Echo: ${userText}`;
  let text = script
    ? script.content ?? ""
    : format?.type === "json_schema"
    ? JSON.stringify(placeholder(format.schema, echo))
    : echo;
  let calls = script?.toolCalls ?? [];
  // Without a script, a question about the weather calls the first tool once.
  if (!script && tools.length && !answeringTools && /\bweather\b/i.test(userText)) {
    const place = /\bin\s+([A-Za-zÀ-ÿ][\w'-]*(?:\s+[A-Z][\w'-]*)*)/.exec(userText)?.[1] ?? "Paris";
    const schema = isObject(tools[0].input_schema) ? tools[0].input_schema : {};
    calls = [{
      name: String(tools[0].name),
      arguments: placeholder({ ...schema, type: "object" }, place) as Json,
    }];
    text = "";
  }
  let stopReason = script?.stopReason ?? (calls.length ? "tool_use" : "end_turn");
  let stopSequence: string | null = null;
  const stops = Array.isArray(body.stop_sequences) ? body.stop_sequences.map(String) : [];
  const hit = stops.map((s) => [s, text.indexOf(s)] as const).filter(([, at]) => at >= 0)
    .sort((a, b) => a[1] - b[1])[0];
  if (hit) {
    text = text.slice(0, hit[1]);
    calls = [];
    stopReason = "stop_sequence";
    stopSequence = hit[0];
  }
  if (text !== "") blocks.push({ type: "text", tokens: tokenize(text) });
  for (const call of calls) {
    blocks.push({
      type: "tool_use",
      tokens: tokenize(JSON.stringify(call.arguments)),
      id: nextId(state, "toolu_01"),
      name: call.name,
      input: call.arguments,
    });
  }
  // max_tokens cuts the whole reply, thinking included.
  let room = Number(body.max_tokens);
  const kept: PlannedBlock[] = [];
  for (const block of blocks) {
    if (room <= 0) {
      stopReason = "max_tokens";
      break;
    }
    if (block.tokens.length > room) {
      stopReason = "max_tokens";
      stopSequence = null;
      if (block.type !== "tool_use") kept.push({ ...block, tokens: block.tokens.slice(0, room) });
      room = 0;
      break;
    }
    room -= block.tokens.length;
    kept.push(block);
  }
  const system = typeof body.system === "string" ? body.system : turnText(blocksOf(body.system));
  const inputTokens = 3 + tokenize(system).length +
    turns.reduce((n, t) => n + 4 + tokenize(turnText(t.blocks)).length, 0) + tools.length * 50 +
    turns.reduce((n, t) => n + t.blocks.filter((b) => b.type === "image").length * 1600, 0);
  const outputTokens = kept.reduce((n, b) => n + b.tokens.length, 0);
  return {
    model: model.id,
    blocks: kept,
    stopReason,
    stopSequence,
    inputTokens,
    outputTokens,
  };
}

function usage(plan: Plan, outputTokens: number): Json {
  return {
    input_tokens: plan.inputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: outputTokens,
    service_tier: "standard",
  };
}

function messageJson(state: State, plan: Plan): Json {
  return {
    id: nextId(state, "msg_01"),
    type: "message",
    role: "assistant",
    model: plan.model,
    content: plan.blocks.map((block) => {
      const text = block.tokens.join("");
      if (block.type === "thinking") {
        return { type: "thinking", thinking: text, signature: signThinking(text) };
      }
      if (block.type === "text") return { type: "text", text };
      return { type: "tool_use", id: block.id, name: block.name, input: block.input };
    }),
    stop_reason: plan.stopReason,
    stop_sequence: plan.stopSequence,
    usage: usage(plan, plan.outputTokens),
  };
}

/** The events of a streamed reply, in Anthropic's order, one per step. */
function replyEvents(state: State, plan: Plan): Step[] {
  const steps: Step[] = [];
  const message = messageJson(state, plan);
  steps.push({
    bytes: sse("message_start", {
      type: "message_start",
      message: {
        ...message,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: usage(plan, 1),
      },
    }),
  });
  plan.blocks.forEach((block, index) => {
    const text = block.tokens.join("");
    const start = block.type === "thinking"
      ? { type: "thinking", thinking: "", signature: "" }
      : block.type === "text"
      ? { type: "text", text: "" }
      : { type: "tool_use", id: block.id, name: block.name, input: {} };
    steps.push({
      bytes: sse("content_block_start", {
        type: "content_block_start",
        index,
        content_block: start,
      }),
    });
    if (index === 0) steps.push({ bytes: sse("ping", { type: "ping" }) });
    const delta = (d: Json) => ({
      delay: true,
      bytes: sse("content_block_delta", { type: "content_block_delta", index, delta: d }),
    });
    if (block.type === "tool_use") {
      // Anthropic opens with an empty fragment, then splits the JSON anywhere.
      steps.push(delta({ type: "input_json_delta", partial_json: "" }));
      const json = JSON.stringify(block.input);
      for (let at = 0; at < json.length; at += 7) {
        steps.push(delta({ type: "input_json_delta", partial_json: json.slice(at, at + 7) }));
      }
    } else {
      for (const token of block.tokens) {
        steps.push(
          delta(
            block.type === "thinking"
              ? { type: "thinking_delta", thinking: token }
              : { type: "text_delta", text: token },
          ),
        );
      }
      if (block.type === "thinking") {
        steps.push(delta({ type: "signature_delta", signature: signThinking(text) }));
      }
    }
    steps.push({ bytes: sse("content_block_stop", { type: "content_block_stop", index }) });
  });
  steps.push({
    bytes: sse("message_delta", {
      type: "message_delta",
      delta: { stop_reason: plan.stopReason, stop_sequence: plan.stopSequence },
      usage: {
        input_tokens: plan.inputTokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: plan.outputTokens,
      },
    }),
  });
  steps.push({ bytes: sse("message_stop", { type: "message_stop" }), end: "close" });
  return steps;
}

function stepsStream(state: State, steps: Step[]): Response {
  let i = 0;
  return streamResponse(state, managedStream(state, () => steps[i++]));
}

// ---------------------------------------------------------------------------
// Faults

function takeFault(state: State): Fault | undefined {
  const head = state.faults[0];
  if (!head) return undefined;
  if (--head.remaining <= 0) state.faults.shift();
  return head.fault;
}

/** The start of a normal reply: `message_start`, a text block, `afterTokens` deltas. */
function partialReply(
  state: State,
  { body, model, after }: { body: Json; model: DoubleModel | undefined; after: number },
): Step[] {
  const plan: Plan = model && Array.isArray(body.messages)
    ? planReply(state, { ...body, thinking: undefined }, model)
    : {
      model: String(body.model ?? ""),
      blocks: [],
      stopReason: "end_turn",
      stopSequence: null,
      inputTokens: 1,
      outputTokens: 0,
    };
  const tokens = plan.blocks.find((b) => b.type === "text")?.tokens ?? [];
  const steps: Step[] = [
    replyEvents(state, { ...plan, blocks: [] })[0],
    {
      bytes: sse("content_block_start", {
        type: "content_block_start",
        index: 0,
        content_block: { type: "text", text: "" },
      }),
    },
  ];
  for (let i = 0; i < after; i++) {
    steps.push({
      delay: true,
      bytes: sse("content_block_delta", {
        type: "content_block_delta",
        index: 0,
        delta: { type: "text_delta", text: tokens[i % Math.max(tokens.length, 1)] ?? " x" },
      }),
    });
  }
  return steps;
}

function faultResponse(
  state: State,
  fault: Fault,
  { body, model }: { body: Json; model: DoubleModel | undefined },
): Response {
  switch (fault.kind) {
    case "status":
      return errorResponse(state, {
        status: fault.status,
        type: fault.type,
        message: fault.message,
        headers: fault.headers,
      });
    case "raw":
      return new Response(fault.body, {
        status: fault.status ?? 200,
        headers: { "content-type": fault.contentType ?? "text/event-stream; charset=utf-8" },
      });
    case "error-event":
      return stepsStream(state, [
        ...partialReply(state, { body, model, after: fault.afterTokens }),
        {
          delay: true,
          bytes: sse("error", {
            type: "error",
            error: { type: fault.type, message: fault.message },
          }),
          end: "close",
        },
      ]);
    case "drop":
      return stepsStream(state, [
        ...partialReply(state, { body, model, after: fault.afterTokens }),
        { delay: true, end: "error" },
      ]);
    case "hang-after-headers":
      return streamResponse(state, managedStream(state, () => ({ end: "hang" })));
  }
}

// ---------------------------------------------------------------------------
// Routing

function authorize(state: State, headers: Headers): Response | undefined {
  const key = headers.get("x-api-key");
  const authorization = headers.get("authorization");
  if (key !== null && key === state.apiKey) return undefined;
  // The official SDK 1.x sends API keys as bearer tokens too (API version 2026-10-21).
  const bearers = [`Bearer ${state.bearerToken}`, `Bearer ${state.apiKey}`];
  if (authorization !== null && bearers.includes(authorization)) return undefined;
  if (key === null && authorization === null) {
    return errorResponse(state, {
      status: 401,
      type: "authentication_error",
      message: ANTHROPIC_ERRORS.missingKey,
    });
  }
  return errorResponse(state, {
    status: 401,
    type: "authentication_error",
    message: key !== null ? ANTHROPIC_ERRORS.invalidKey : ANTHROPIC_ERRORS.invalidBearer,
  });
}

function handleMessages(state: State, raw: string, version: string): Response {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return invalid(
      state,
      "There was an issue with the format or content of your request: the body is not valid JSON.",
    );
  }
  if (!isObject(body)) return invalid(state, "Input should be a valid dictionary");
  const model = typeof body.model === "string" ? findModel(state, body.model) : undefined;
  const fault = takeFault(state);
  if (fault) return faultResponse(state, fault, { body, model });
  const problem = validateMessages(body, { version, model });
  if (problem) return invalid(state, problem);
  if (!model) {
    return errorResponse(state, {
      status: 404,
      type: "not_found_error",
      message: `model: ${body.model}`,
    });
  }
  const plan = planReply(state, body, model);
  if (body.stream !== true) return jsonResponse(state, messageJson(state, plan));
  return stepsStream(state, replyEvents(state, plan));
}

async function handle(state: State, request: Request): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  const raw = request.body ? await request.text() : "";
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => (headers[name] = value));
  let recorded: unknown = null;
  if (raw !== "") {
    try {
      recorded = JSON.parse(raw);
    } catch {
      recorded = raw;
    }
  }
  state.requests.push({
    method: request.method,
    path,
    query: Object.fromEntries(url.searchParams),
    headers,
    body: recorded,
  });
  for (const waiter of [...state.requestWaiters]) if (waiter.path === path) waiter.resolve();

  const route = request.method === "POST" && path === "/v1/messages"
    ? "messages"
    : request.method === "GET" && path === "/v1/models"
    ? "models"
    : request.method === "GET" && path.startsWith("/v1/models/")
    ? "model"
    : undefined;
  if (!route) {
    return errorResponse(state, {
      status: 404,
      type: "not_found_error",
      message: ANTHROPIC_ERRORS.notFound,
    });
  }
  const denied = authorize(state, request.headers);
  if (denied) return denied;
  const version = request.headers.get("anthropic-version");
  if (version === null) return invalid(state, ANTHROPIC_ERRORS.missingVersion);
  if (!(API_VERSIONS as readonly string[]).includes(version)) {
    return invalid(state, `anthropic-version: "${version}" is not a valid version`);
  }
  switch (route) {
    case "messages":
      return handleMessages(state, raw, version);
    case "models": {
      const fault = takeFault(state);
      if (fault) return faultResponse(state, fault, { body: {}, model: undefined });
      return handleModels(state, url.searchParams);
    }
    case "model": {
      const id = decodeURIComponent(path.slice("/v1/models/".length));
      const model = findModel(state, id);
      if (!model) {
        return errorResponse(state, {
          status: 404,
          type: "not_found_error",
          message: `model: ${id}`,
        });
      }
      return jsonResponse(state, modelJson(model));
    }
  }
}

function waitFor(
  set: Set<Waiter>,
  waiter: (resolve: () => void) => Waiter,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const entry = waiter(() => {
      cleanup();
      resolve();
    });
    const onAbort = () => {
      cleanup();
      reject(signal?.reason);
    };
    const cleanup = () => {
      set.delete(entry);
      signal?.removeEventListener("abort", onAbort);
    };
    set.add(entry);
    signal?.addEventListener("abort", onAbort);
  });
}

/**
 * Starts a double on 127.0.0.1 and resolves once it is listening.
 *
 * @example
 * ```ts
 * const anthropic = await startAnthropicDouble();
 * const res = await fetch(`${anthropic.url}/v1/models`, {
 *   headers: { "x-api-key": anthropic.apiKey, "anthropic-version": "2023-06-01" },
 * });
 * await res.body?.cancel();
 * await anthropic.close();
 * ```
 */
export async function startAnthropicDouble(
  options: AnthropicDoubleOptions = {},
): Promise<AnthropicDouble> {
  const state: State = {
    models: [...(options.models ?? DEFAULT_MODELS)],
    apiKey: options.apiKey ?? DEFAULT_API_KEY,
    bearerToken: options.bearerToken ?? DEFAULT_BEARER_TOKEN,
    tokenRotations: 0,
    tokenDelayMs: options.tokenDelayMs ?? 0,
    requests: [],
    openStreams: 0,
    streamsStarted: 0,
    faults: [],
    scripts: [],
    streams: new Set(),
    streamWaiters: new Set(),
    requestWaiters: new Set(),
    counter: 0,
  };
  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: options.port ?? 0,
      onListen: (addr) => listening.resolve(addr as Deno.NetAddr),
    },
    (request) => handle(state, request),
  );
  const addr = await listening.promise;
  const host = `127.0.0.1:${addr.port}`;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}`,
    host,
    get requests() {
      return state.requests;
    },
    get openStreams() {
      return state.openStreams;
    },
    get streamsStarted() {
      return state.streamsStarted;
    },
    get apiKey() {
      return state.apiKey;
    },
    get bearerToken() {
      return state.bearerToken;
    },
    get tokenDelayMs() {
      return state.tokenDelayMs;
    },
    set tokenDelayMs(ms: number) {
      state.tokenDelayMs = ms;
    },
    failNext(fault: Fault, times = 1) {
      if (times > 0) state.faults.push({ fault, remaining: times });
    },
    scriptNext(script: Script, times = 1) {
      if (times > 0) state.scripts.push({ script, remaining: times });
    },
    rotateToken() {
      state.bearerToken = `sk-ant-oat01-rotated-${++state.tokenRotations}-${
        idChars(`${state.tokenRotations}`)
      }`;
      return state.bearerToken;
    },
    waitForOpenStreams(n: number, signal?: AbortSignal) {
      if (state.openStreams === n) return Promise.resolve();
      return waitFor(
        state.streamWaiters,
        (done) => ({ resolve: () => state.openStreams === n && done() }),
        signal,
      );
    },
    waitForRequest(path: string, signal?: AbortSignal) {
      return waitFor(
        state.requestWaiters as Set<Waiter>,
        (done) => ({ path, resolve: done }),
        signal,
      );
    },
    close() {
      closing ??= (async () => {
        for (const abort of [...state.streams]) abort();
        await server.shutdown();
      })();
      return closing;
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "0" },
      "api-key": { type: "string", default: DEFAULT_API_KEY },
      "token-delay-ms": { type: "string", default: "0" },
    },
  });
  const double = await startAnthropicDouble({
    port: Number(values.port),
    apiKey: values["api-key"],
    tokenDelayMs: Number(values["token-delay-ms"]),
  });
  console.log(`listening ${double.url}`);
  const stop = async () => {
    await double.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
}
