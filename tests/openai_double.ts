/**
 * A faithful OpenAI API double (Chat Completions, embeddings, models) for
 * tests and benchmarks.
 *
 * It is a real HTTP server (`Deno.serve` on 127.0.0.1) that answers under
 * `/v1` the way OpenAI's API reference and the official SDK's types
 * describe: streamed replies as server-sent `data:` events of
 * `chat.completion.chunk` objects (a role chunk, content deltas, tool-call
 * deltas with `index`, `id` and `function.name` first and the arguments in
 * fragments after, a last chunk with `finish_reason`, the usage chunk with
 * empty `choices` when `stream_options.include_usage` is set, every other
 * chunk then carrying `"usage": null`), then `data: [DONE]`; whole replies
 * as `chat.completion` objects; error bodies as
 * `{"error": {"message", "type", "param", "code"}}` with OpenAI's texts and
 * headers (`x-request-id`, `openai-version`, rate-limit headers).
 *
 * By default it checks requests as OpenAI does (`strict`): a bearer key,
 * unknown arguments refused (`top_k`), `max_tokens` refused for reasoning
 * models, tool messages paired with the calls before them. With
 * `strict: false` it accepts what compatible servers accept. `quirks`
 * make it deviate as some servers do: no usage chunk, `stream_options`
 * refused, no `/models`, no `[DONE]`, no `finish_reason`, reasoning in
 * `reasoning` instead of `reasoning_content`, a whole JSON reply to a
 * streamed request.
 *
 * Replies are deterministic: the model answers `"Echo: " + the last
 * message`, split into word tokens that keep their leading space. Tests
 * inject faults with {@linkcode OpenAiDouble.failNext} and script replies
 * with {@linkcode OpenAiDouble.scriptNext}.
 *
 * Standalone use (benchmarks, manual `rune serve` tries):
 *
 * ```sh
 * deno run --allow-net tests/openai_double.ts --port 8080 --api-key sk-test --token-delay-ms 20
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { embedText, tokenize } from "./ollama_double.ts";

/** What a model of the double does. */
export type ModelKind =
  /** A chat model (`gpt-4o-mini`): text, tools, images. */
  | "chat"
  /** An OpenAI reasoning model (`o4-mini`): hidden reasoning, counted in usage only. */
  | "reasoning"
  /** A model that streams its reasoning text (`deepseek-reasoner`). */
  | "reasoning-text"
  /** An embedding model (`text-embedding-3-small`). */
  | "embedding";

/** A model the double serves, as listed by `/v1/models`. */
export interface DoubleModel {
  /** Model id, e.g. `gpt-4o-mini`. */
  id: string;
  /** `owned_by`, e.g. `system`. */
  ownedBy: string;
  /** `created`, Unix seconds. */
  created: number;
  /** What the model does. */
  kind: ModelKind;
  /** Vector size of an embedding model. */
  dimensions?: number;
}

/** The models served when none are given. */
export const DEFAULT_MODELS: readonly DoubleModel[] = [
  { id: "gpt-4o-mini", ownedBy: "system", created: 1721172741, kind: "chat" },
  { id: "o4-mini", ownedBy: "system", created: 1744225351, kind: "reasoning" },
  { id: "deepseek-reasoner", ownedBy: "deepseek", created: 1737504000, kind: "reasoning-text" },
  {
    id: "text-embedding-3-small",
    ownedBy: "system",
    created: 1705948997,
    kind: "embedding",
    dimensions: 1536,
  },
];

/** The key the double accepts by default. */
export const DOUBLE_API_KEY = "sk-test-double-0123456789abcdefXYZW";

/** Reasoning tokens a hidden-reasoning model spends before answering. */
export const HIDDEN_REASONING_TOKENS = 16;

/** An error object as OpenAI writes it inside `{"error": ...}`. */
export interface ApiError {
  /** What went wrong, for people. */
  message: string;
  /** Error class, e.g. `invalid_request_error`, `server_error`. */
  type: string;
  /** The argument at fault, or null. */
  param: string | null;
  /** Machine code, e.g. `rate_limit_exceeded`, or null. */
  code: string | null;
}

/**
 * Error bodies of OpenAI's API that tests inject, as its documentation and
 * replies word them.
 */
export const OPENAI_ERRORS = {
  rateLimited: {
    message:
      "Rate limit reached for gpt-4o-mini in organization org-double on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more.",
    type: "requests",
    param: null,
    code: "rate_limit_exceeded",
  },
  quota: {
    message:
      "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
    type: "insufficient_quota",
    param: null,
    code: "insufficient_quota",
  },
  server: {
    message: "The server had an error while processing your request. Sorry about that!",
    type: "server_error",
    param: null,
    code: null,
  },
  overloaded: {
    message: "The engine is currently overloaded, please try again later.",
    type: "server_error",
    param: null,
    code: null,
  },
  contextLength: {
    message:
      "This model's maximum context length is 128000 tokens. However, your messages resulted in 130532 tokens. Please reduce the length of the messages.",
    type: "invalid_request_error",
    param: "messages",
    code: "context_length_exceeded",
  },
  tooLarge: {
    message: "Request too large. Please reduce the size of your request.",
    type: "invalid_request_error",
    param: null,
    code: null,
  },
} as const satisfies Record<string, ApiError>;

/** A tool call a scripted reply makes. */
export interface ScriptedToolCall {
  /** Function name. */
  name: string;
  /** Arguments object (sent as JSON text in fragments), or raw argument text. */
  arguments: Record<string, unknown> | string;
}

/** What the model says in the next chat reply, instead of the echo. */
export interface Script {
  /** Reasoning text, streamed first (for `reasoning-text` models, or any when set). */
  reasoning?: string;
  /** The answer text. */
  content?: string;
  /** Tool calls, in order, after the text. */
  toolCalls?: ScriptedToolCall[];
  /** The finish reason; default `tool_calls` with calls, else `stop` (or `length` when cut). */
  finishReason?: string;
  /** A refusal instead of content (`delta.refusal`). */
  refusal?: string;
}

/** How the double deviates from OpenAI, as some compatible servers do. */
export interface Quirks {
  /** Sends the usage chunk when `stream_options.include_usage` asks. Default true. */
  usage?: boolean;
  /** Answers 400 for any `stream_options` (older vLLM and llama.cpp builds). Default false. */
  rejectStreamOptions?: boolean;
  /** Serves `GET /v1/models`; false answers 404. Default true. */
  listModels?: boolean;
  /** Ends a stream with `data: [DONE]`. Default true. */
  done?: boolean;
  /** Puts `finish_reason` on the last chunk; false leaves it null throughout. Default true. */
  finishReason?: boolean;
  /** Field of streamed reasoning text. Default `reasoning_content` (DeepSeek, vLLM). */
  reasoningField?: "reasoning_content" | "reasoning";
  /** Answers a streamed request with a whole `chat.completion` JSON body. Default false. */
  ignoreStream?: boolean;
  /** Lists embeddings in reverse order (their `index` still right). Default false. */
  reverseEmbeddings?: boolean;
  /** Writes every tool call with `index` 0 and its whole arguments in one chunk. Default false. */
  wholeToolCalls?: boolean;
}

/** A failure injected into the next matching requests. */
export type Fault =
  /** Reply with `status` and `{"error": error}` (defaulted by status), plus `headers`. */
  | { kind: "status"; status: number; error?: ApiError; headers?: Record<string, string> }
  /** A raw body (a proxy's HTML page, FastAPI's `{"detail": ...}`, plain text). */
  | { kind: "body"; status: number; body: string; contentType?: string }
  /** A stream of `afterTokens` content chunks, then `data: {"error": error}` and a clean end. */
  | { kind: "error-in-stream"; afterTokens: number; error?: ApiError }
  /** A stream of `afterTokens` content chunks, then the connection is aborted mid-body. */
  | { kind: "drop"; afterTokens: number }
  /** 200 headers, then silence until the client cancels. */
  | { kind: "hang-after-headers" }
  /** The normal reply, its headers only after `ms`. */
  | { kind: "slow-headers"; ms: number }
  /** The normal stream, silent for `ms` after its role chunk (a reasoning model thinking). */
  | { kind: "pause-after-role"; ms: number }
  /** A stream that sends `data:` events of this text as is (malformed chunks, huge events). */
  | { kind: "raw-stream"; events: string[] };

/** Options of {@linkcode startOpenAiDouble}. */
export interface OpenAiDoubleOptions {
  /** Models to serve; default {@linkcode DEFAULT_MODELS}. */
  models?: DoubleModel[];
  /** The accepted key; null serves without keys (a local server). Default {@linkcode DOUBLE_API_KEY}. */
  apiKey?: string | null;
  /** Where the key is read: `authorization` (Bearer) or Azure's `api-key`. Default `authorization`. */
  authHeader?: "authorization" | "api-key";
  /** Check requests as OpenAI does (unknown arguments, pairing of tool messages). Default true. */
  strict?: boolean;
  /** Deviations of compatible servers. */
  quirks?: Quirks;
  /** Delay between streamed chunks in milliseconds. Default 0. */
  tokenDelayMs?: number;
  /** Port to listen on; default 0 (any free port). */
  port?: number;
}

/** One request as the double received it. */
export interface RecordedRequest {
  /** HTTP method. */
  method: string;
  /** URL path without query, e.g. `/v1/chat/completions`. */
  path: string;
  /** The query string, e.g. `?api-version=2024-10-21`, or `""`. */
  query: string;
  /** Request headers, names in lower case. */
  headers: Record<string, string>;
  /** Parsed JSON body, the raw text when not JSON, or null when empty. */
  body: unknown;
}

/** A running double and its control API. */
export interface OpenAiDouble {
  /** Base URL including `/v1`, as `OPENAI_BASE_URL` takes it. */
  readonly url: string;
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** The port the server listens on. */
  readonly port: number;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Streamed bodies still open. */
  readonly openStreams: number;
  /** Streamed bodies started since the double started. */
  readonly streamsStarted: number;
  /** The accepted key; may be changed at runtime (a rotated key); null: keyless. */
  apiKey: string | null;
  /** Delay between streamed chunks in milliseconds; may be changed at runtime. */
  tokenDelayMs: number;
  /** Deviations; may be changed at runtime. */
  quirks: Quirks;
  /** Applies `fault` to the next `times` requests to `path` (default: chat, embeddings, models). */
  failNext(fault: Fault, times?: number, path?: string): void;
  /** Answers the next `times` chat requests with `script` instead of the echo. */
  scriptNext(script: Script, times?: number): void;
  /** Resolves once `openStreams === n`; rejects when `signal` aborts. */
  waitForOpenStreams(n: number, signal?: AbortSignal): Promise<void>;
  /** Resolves on the next request to `path` (e.g. `/v1/chat/completions`). */
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
  apiKey: string | null;
  authHeader: "authorization" | "api-key";
  strict: boolean;
  quirks: Quirks;
  tokenDelayMs: number;
  requests: RecordedRequest[];
  openStreams: number;
  streamsStarted: number;
  faults: { fault: Fault; remaining: number; path?: string }[];
  scripts: { script: Script; remaining: number }[];
  streams: Set<() => void>;
  sleeps: Set<() => void>;
  streamWaiters: Set<Waiter>;
  requestWaiters: Set<Waiter & { path: string }>;
  sequence: number;
}

const JSON_TYPE = "application/json";
const SSE_TYPE = "text/event-stream; charset=utf-8";
const FAULTABLE = new Set(["/v1/chat/completions", "/v1/embeddings", "/v1/models"]);
const encoder = new TextEncoder();

/** Arguments of `POST /v1/chat/completions` (the SDK's `ChatCompletionCreateParams`). */
const CHAT_PARAMS = new Set([
  "messages",
  "model",
  "audio",
  "frequency_penalty",
  "function_call",
  "functions",
  "logit_bias",
  "logprobs",
  "max_completion_tokens",
  "max_tokens",
  "metadata",
  "modalities",
  "n",
  "parallel_tool_calls",
  "prediction",
  "presence_penalty",
  "prompt_cache_key",
  "prompt_cache_retention",
  "reasoning_effort",
  "response_format",
  "safety_identifier",
  "seed",
  "service_tier",
  "stop",
  "store",
  "stream",
  "stream_options",
  "temperature",
  "tool_choice",
  "tools",
  "top_logprobs",
  "top_p",
  "user",
  "verbosity",
  "web_search_options",
]);

// ---------------------------------------------------------------------------
// Deterministic ids

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of encoder.encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomish(seed: string, length: number): string {
  let out = "";
  for (let i = 0; out.length < length; i++) {
    let h = fnv1a(`${i}:${seed}`);
    for (let k = 0; k < 5 && out.length < length; k++) {
      out += ALPHABET[h % ALPHABET.length];
      h = Math.floor(h / ALPHABET.length);
    }
  }
  return out;
}

/** Lengths of the random part of each kind of id, as OpenAI's ids have. */
const ID_LENGTHS = { "req_": 32, "call_": 24, "chatcmpl-": 29 } as const;

function nextId(state: State, prefix: keyof typeof ID_LENGTHS): string {
  return `${prefix}${randomish(`${prefix}${state.sequence++}`, ID_LENGTHS[prefix])}`;
}

// ---------------------------------------------------------------------------
// Responses

function baseHeaders(state: State): Record<string, string> {
  return {
    "openai-version": "2020-10-01",
    "openai-processing-ms": "12",
    "x-request-id": nextId(state, "req_"),
  };
}

/** How a reply goes out. */
interface ReplyOptions {
  /** HTTP status. Default 200. */
  status?: number;
  /** Extra headers. */
  headers?: Record<string, string>;
}

function jsonResponse(
  state: State,
  body: unknown,
  { status = 200, headers = {} }: ReplyOptions = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": JSON_TYPE, ...baseHeaders(state), ...headers },
  });
}

function errorResponse(state: State, error: ApiError, options: ReplyOptions): Response {
  return jsonResponse(state, { error }, options);
}

function invalid(
  message: string,
  { param = null, code = null }: { param?: string | null; code?: string | null } = {},
): ApiError {
  return { message, type: "invalid_request_error", param, code };
}

/** OpenAI's error for each status a test injects without a body of its own. */
function defaultError(status: number): ApiError {
  switch (status) {
    case 429:
      return OPENAI_ERRORS.rateLimited;
    case 413:
      return OPENAI_ERRORS.tooLarge;
    case 503:
      return OPENAI_ERRORS.overloaded;
    default:
      return status >= 500 ? OPENAI_ERRORS.server : invalid(`HTTP ${status}`);
  }
}

function event(value: unknown): Uint8Array {
  return encoder.encode(`data: ${typeof value === "string" ? value : JSON.stringify(value)}\n\n`);
}

function notifyStreams(state: State): void {
  for (const waiter of [...state.streamWaiters]) waiter.resolve();
}

/** One step of a streamed body. */
interface StreamStep {
  /** Wait this long first. */
  delayMs?: number;
  /** Bytes to send. */
  bytes?: Uint8Array;
  /** End the body cleanly, abort the connection, or hang until cancelled. */
  end?: "close" | "error" | "hang";
}

/** A pull-based body that counts as an open stream until it ends or is cancelled. */
function managedStream(state: State, steps: () => StreamStep): ReadableStream<Uint8Array> {
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
    try {
      controllerRef?.error(new Error("openai double closed"));
    } catch {
      // already closed
    }
    finish();
  };
  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      if (ms >= 0) {
        timer = setTimeout(() => {
          timer = undefined;
          wake = undefined;
          resolve();
        }, ms);
      }
    });
  state.streams.add(abort);
  state.openStreams++;
  state.streamsStarted++;
  notifyStreams(state);
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controllerRef = controller;
    },
    async pull(controller) {
      if (finished) return;
      const step = steps();
      if (step.delayMs && step.delayMs > 0) {
        await wait(step.delayMs);
        if (finished) return;
      }
      if (step.bytes) controller.enqueue(step.bytes);
      if (step.end === "close") {
        controller.close();
        finish();
      } else if (step.end === "error") {
        // Erroring the body makes Deno abort the connection mid-body.
        controller.error(new Error("openai double: connection dropped (injected fault)"));
        finish();
      } else if (step.end === "hang") {
        await wait(-1);
      }
    },
    cancel() {
      finish();
    },
  }, { highWaterMark: 0 });
}

function sseResponse(state: State, body: ReadableStream<Uint8Array>): Response {
  return new Response(body, {
    status: 200,
    headers: { "content-type": SSE_TYPE, ...baseHeaders(state) },
  });
}

/** Waits `ms`, waking early when the double closes. */
function sleep(state: State, ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      state.sleeps.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    state.sleeps.add(done);
  });
}

// ---------------------------------------------------------------------------
// Chat completions

interface Plan {
  reasoning: string[];
  hiddenReasoning: number;
  content: string[];
  refusal?: string;
  toolCalls: { id: string; name: string; arguments: string }[];
  finishReason: string;
  promptTokens: number;
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function findModel(state: State, id: unknown): DoubleModel | undefined {
  return state.models.find((m) => m.id === id);
}

function modelNotFound(state: State, model: unknown): Response {
  return errorResponse(
    state,
    invalid(
      `The model \`${String(model)}\` does not exist or you do not have access to it.`,
      { code: "model_not_found" },
    ),
    { status: 404 },
  );
}

/** The text of a message's content: a string, or the text parts of an array, images described. */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((part) => {
    if (!isObject(part)) return "";
    if (part.type === "text") return String(part.text ?? "");
    if (part.type === "image_url" && isObject(part.image_url)) {
      const url = String(part.image_url.url ?? "");
      const match = /^data:([^;,]+);base64,(.*)$/s.exec(url);
      if (!match) return ` [image: ${url.slice(0, 40)}]`;
      const bytes = Math.floor(match[2].replace(/=+$/, "").length * 3 / 4);
      return ` [image: ${match[1]}, ${bytes} bytes]`;
    }
    return "";
  }).join("");
}

function promptTokens(messages: Json[]): number {
  return messages.reduce((sum, m) => sum + tokenize(contentText(m.content)).length + 4, 3);
}

/** A JSON value of `schema`'s shape, strings filled with `text`. */
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
      const props = isObject(schema.properties) ? schema.properties : {};
      return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, placeholder(v, text)]));
    }
    default:
      return text;
  }
}

/** Arguments for a tool, filled from the user's text (`in Paris` → `"Paris"`). */
function toolArguments(tool: Json, userText: string): Record<string, unknown> {
  const fn = isObject(tool.function) ? tool.function : {};
  const params = isObject(fn.parameters) ? fn.parameters : {};
  const props = isObject(params.properties) ? params.properties : {};
  const place = /\bin\s+([A-Za-zÀ-ÿ][\w'-]*(?:\s+[A-Z][\w'-]*)*)/.exec(userText)?.[1] ?? "Paris";
  return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, placeholder(v, place)]));
}

function takeScript(state: State): Script | undefined {
  const entry = state.scripts[0];
  if (!entry) return undefined;
  if (--entry.remaining <= 0) state.scripts.shift();
  return entry.script;
}

function takeFault(state: State, path: string): Fault | undefined {
  const index = state.faults.findIndex((f) => f.path === undefined || f.path === path);
  if (index < 0) return undefined;
  const entry = state.faults[index];
  if (--entry.remaining <= 0) state.faults.splice(index, 1);
  return entry.fault;
}

/** Checks a chat request as OpenAI does; returns the error reply, if any. */
/** One chat request being answered. */
interface ChatCall {
  /** The double. */
  state: State;
  /** The request body. */
  body: Json;
  /** The model asked for. */
  model: DoubleModel;
}

function checkChat({ state, body, model }: ChatCall): Response | undefined {
  const bad = (message: string, where: { param?: string; code?: string } = {}) =>
    errorResponse(state, invalid(message, where), { status: 400 });
  if (state.quirks.rejectStreamOptions && body.stream_options !== undefined) {
    // vLLM's (FastAPI) shape for a field it does not know.
    return jsonResponse(state, {
      object: "error",
      message: "[{'type': 'extra_forbidden', 'loc': ('body', 'stream_options'), " +
        "'msg': 'Extra inputs are not permitted', 'input': {'include_usage': True}}]",
      type: "BadRequestError",
      param: null,
      code: 400,
    }, { status: 400 });
  }
  if (!state.strict) return undefined;
  for (const key of Object.keys(body)) {
    if (!CHAT_PARAMS.has(key)) return bad(`Unrecognized request argument supplied: ${key}`);
  }
  if (body.stream_options !== undefined && body.stream !== true) {
    return bad(
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      { param: "stream_options" },
    );
  }
  if (model.kind === "reasoning" && body.max_tokens !== undefined) {
    return bad(
      "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
      { param: "max_tokens", code: "unsupported_parameter" },
    );
  }
  if (model.kind !== "reasoning" && body.reasoning_effort !== undefined) {
    return bad(
      "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
      { param: "reasoning_effort", code: "unsupported_parameter" },
    );
  }
  const messages = body.messages as Json[];
  let pending: string[] = [];
  let pendingAt = -1;
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i];
    if (message.role === "tool") {
      if (typeof message.tool_call_id !== "string") {
        return bad(
          `Missing required parameter: 'messages[${i}].tool_call_id'.`,
          { param: `messages[${i}].tool_call_id`, code: "missing_required_parameter" },
        );
      }
      if (!pending.includes(message.tool_call_id)) {
        return bad(
          "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
          { param: `messages.[${i}].role` },
        );
      }
      pending = pending.filter((id) => id !== message.tool_call_id);
      continue;
    }
    if (pending.length) break;
    if (message.role === "assistant" && Array.isArray(message.tool_calls)) {
      pending = message.tool_calls.map((call) => String((call as Json).id));
      pendingAt = i;
    }
  }
  if (pending.length) {
    return bad(
      `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${
        pending.join(", ")
      }`,
      { param: `messages.[${pendingAt}].role` },
    );
  }
  const format = isObject(body.response_format) ? body.response_format : undefined;
  if (
    format?.type === "json_object" &&
    !messages.some((m) => /json/i.test(contentText(m.content)))
  ) {
    return bad(
      "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
      { param: "messages" },
    );
  }
  return undefined;
}

function buildPlan({ state, body, model }: ChatCall): Plan {
  const messages = body.messages as Json[];
  const last = messages.at(-1) ?? {};
  const echo = `Echo: ${contentText(last.content)}`;
  const tools = Array.isArray(body.tools) ? body.tools.filter(isObject) : [];
  const choice = body.tool_choice;
  const script = takeScript(state);
  const plan: Plan = {
    reasoning: [],
    hiddenReasoning: model.kind === "reasoning" ? HIDDEN_REASONING_TOKENS : 0,
    content: [],
    toolCalls: [],
    finishReason: "stop",
    promptTokens: promptTokens(messages),
  };
  const reasoningText = script?.reasoning ??
    (model.kind === "reasoning-text" ? `Okay, the user wants me to echo: ${echo}` : undefined);
  if (reasoningText) plan.reasoning = tokenize(reasoningText);
  if (script) {
    plan.content = tokenize(script.content ?? "");
    plan.refusal = script.refusal;
    plan.toolCalls = (script.toolCalls ?? []).map((call) => ({
      id: nextId(state, "call_"),
      name: call.name,
      arguments: typeof call.arguments === "string"
        ? call.arguments
        : JSON.stringify(call.arguments),
    }));
  } else if (tools.length && last.role === "user" && choice !== "none") {
    // A forced tool_choice names the tool; OpenAI then says "stop", not "tool_calls".
    const forced = isObject(choice) && isObject(choice.function) ? choice.function.name : undefined;
    const tool = tools.find((t) => isObject(t.function) && t.function.name === forced) ?? tools[0];
    plan.toolCalls = [{
      id: nextId(state, "call_"),
      name: String((tool.function as Json).name),
      arguments: JSON.stringify(toolArguments(tool, contentText(last.content))),
    }];
  } else {
    const format = isObject(body.response_format) ? body.response_format : undefined;
    let text = echo;
    if (format?.type === "json_object") text = JSON.stringify({ echo });
    if (format?.type === "json_schema" && isObject(format.json_schema)) {
      text = JSON.stringify(placeholder(format.json_schema.schema, echo));
    }
    plan.content = tokenize(text);
  }
  if (script) {
    plan.finishReason = script.finishReason ?? (plan.toolCalls.length ? "tool_calls" : "stop");
  } else if (plan.toolCalls.length && !isObject(choice)) {
    plan.finishReason = "tool_calls";
  }
  // The token limit cuts hidden reasoning first, then visible reasoning, then the answer.
  const limit = Number(body.max_completion_tokens ?? body.max_tokens ?? Infinity);
  if (Number.isFinite(limit)) {
    let left = limit - plan.hiddenReasoning;
    if (left < 0) {
      plan.hiddenReasoning = limit;
      left = 0;
    }
    if (plan.reasoning.length > left) plan.reasoning = plan.reasoning.slice(0, left);
    left -= plan.reasoning.length;
    if (plan.content.length > left) {
      plan.content = plan.content.slice(0, Math.max(left, 0));
      plan.toolCalls = [];
      plan.finishReason = "length";
    }
  }
  return plan;
}

/** Argument text split as a tokenizer would: words and runs of punctuation. */
function fragments(text: string): string[] {
  return text.match(/\w+|[^\w]+/g) ?? [];
}

function usageJson(plan: Plan): Json {
  const toolTokens = plan.toolCalls.reduce((n, c) => n + fragments(c.arguments).length + 3, 0);
  const completion = plan.hiddenReasoning + plan.reasoning.length + plan.content.length +
    toolTokens + (plan.refusal ? tokenize(plan.refusal).length : 0);
  return {
    prompt_tokens: plan.promptTokens,
    completion_tokens: completion,
    total_tokens: plan.promptTokens + completion,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: plan.hiddenReasoning + plan.reasoning.length,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

interface Frame {
  id: string;
  created: number;
  model: string;
  fingerprint: string;
}

function frame(state: State, model: DoubleModel): Frame {
  return {
    id: nextId(state, "chatcmpl-"),
    created: Math.floor(Date.now() / 1000),
    model: model.id,
    fingerprint: `fp_${randomish(model.id, 10).toLowerCase()}`,
  };
}

/** The `data:` events of a streamed reply, in OpenAI's order. */
function streamEvents({ state, body, model }: ChatCall, plan: Plan): Uint8Array[] {
  const f = frame(state, model);
  const streamOptions = isObject(body.stream_options) ? body.stream_options : {};
  const withUsage = streamOptions.include_usage === true && state.quirks.usage !== false;
  const field = state.quirks.reasoningField ?? "reasoning_content";
  const chunk = (delta: Json, finish: string | null = null): Uint8Array =>
    event({
      id: f.id,
      object: "chat.completion.chunk",
      created: f.created,
      model: f.model,
      service_tier: "default",
      system_fingerprint: f.fingerprint,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(withUsage && { usage: null }),
    });
  const events: Uint8Array[] = [];
  const reasoning = plan.reasoning.length > 0;
  const startsWithCalls = !reasoning && plan.content.length === 0 && !plan.refusal;
  // The role chunk: empty content, or the first tool call when the reply is only calls.
  if (reasoning) {
    events.push(chunk({ role: "assistant", content: null, [field]: "" }));
    for (const token of plan.reasoning) events.push(chunk({ content: null, [field]: token }));
  } else if (!startsWithCalls) {
    events.push(chunk({ role: "assistant", content: "", refusal: null }));
  }
  for (const token of plan.content) {
    events.push(chunk(reasoning ? { content: token, [field]: null } : { content: token }));
  }
  if (plan.refusal) {
    for (const token of tokenize(plan.refusal)) events.push(chunk({ refusal: token }));
  }
  plan.toolCalls.forEach((call, index) => {
    const head = {
      index: state.quirks.wholeToolCalls ? 0 : index,
      id: call.id,
      type: "function",
      function: { name: call.name, arguments: state.quirks.wholeToolCalls ? call.arguments : "" },
    };
    const first = index === 0 && startsWithCalls;
    events.push(chunk({
      ...(first && { role: "assistant", content: null }),
      tool_calls: [head],
      ...(first && { refusal: null }),
    }));
    if (state.quirks.wholeToolCalls) return;
    for (const piece of fragments(call.arguments)) {
      events.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
    }
  });
  const finish = state.quirks.finishReason === false ? null : plan.finishReason;
  events.push(chunk({}, finish));
  if (withUsage) {
    events.push(event({
      id: f.id,
      object: "chat.completion.chunk",
      created: f.created,
      model: f.model,
      service_tier: "default",
      system_fingerprint: f.fingerprint,
      choices: [],
      usage: usageJson(plan),
    }));
  }
  if (state.quirks.done !== false) events.push(event("[DONE]"));
  return events;
}

function streamReply(
  state: State,
  events: Uint8Array[],
  { ending, pause }: { ending: StreamStep; pause?: { at: number; ms: number } },
): Response {
  let i = 0;
  return sseResponse(
    state,
    managedStream(state, () => {
      const delayMs = i === pause?.at ? pause.ms : i > 0 ? state.tokenDelayMs : 0;
      if (i < events.length) return { delayMs, bytes: events[i++] };
      i++;
      return { ...ending, delayMs };
    }),
  );
}

function wholeReply({ state, model }: ChatCall, plan: Plan): Response {
  const f = frame(state, model);
  const field = state.quirks.reasoningField ?? "reasoning_content";
  return jsonResponse(state, {
    id: f.id,
    object: "chat.completion",
    created: f.created,
    model: f.model,
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: plan.toolCalls.length && !plan.content.length ? null : plan.content.join(""),
        ...(plan.reasoning.length && { [field]: plan.reasoning.join("") }),
        refusal: plan.refusal ?? null,
        annotations: [],
        ...(plan.toolCalls.length && {
          tool_calls: plan.toolCalls.map((call) => ({
            id: call.id,
            type: "function",
            function: { name: call.name, arguments: call.arguments },
          })),
        }),
      },
      logprobs: null,
      finish_reason: state.quirks.finishReason === false ? null : plan.finishReason,
    }],
    usage: usageJson(plan),
    service_tier: "default",
    system_fingerprint: f.fingerprint,
  });
}

async function handleChat(
  state: State,
  { body, fault }: { body: Json; fault?: Fault },
): Promise<Response> {
  if (typeof body.model !== "string") {
    return errorResponse(state, invalid("you must provide a model parameter"), { status: 400 });
  }
  if (!Array.isArray(body.messages) || !body.messages.every(isObject)) {
    return errorResponse(
      state,
      invalid("Missing required parameter: 'messages'.", {
        param: "messages",
        code: "missing_required_parameter",
      }),
      { status: 400 },
    );
  }
  const model = findModel(state, body.model);
  if (!model) return modelNotFound(state, body.model);
  if (model.kind === "embedding") {
    return errorResponse(
      state,
      invalid(
        "This is not a chat model and thus not supported in the v1/chat/completions endpoint. Did you mean to use v1/completions?",
        { param: "model", code: "model_not_supported" },
      ),
      { status: 404 },
    );
  }
  const call: ChatCall = { state, body, model };
  const refused = checkChat(call);
  if (refused) return refused;
  if (fault?.kind === "slow-headers") await sleep(state, fault.ms);
  const plan = buildPlan(call);
  if (body.stream !== true || state.quirks.ignoreStream) return wholeReply(call, plan);
  const events = streamEvents(call, plan);
  switch (fault?.kind) {
    case "error-in-stream": {
      const tokens = events.slice(0, fault.afterTokens + 1);
      return streamReply(state, tokens, {
        ending: { bytes: event({ error: fault.error ?? OPENAI_ERRORS.server }), end: "close" },
      });
    }
    case "drop":
      return streamReply(state, events.slice(0, fault.afterTokens + 1), {
        ending: { end: "error" },
      });
    case "hang-after-headers":
      return sseResponse(state, managedStream(state, () => ({ end: "hang" })));
    case "raw-stream":
      return streamReply(state, fault.events.map((text) => event(text)), {
        ending: { end: "close" },
      });
    case "pause-after-role":
      return streamReply(state, events, {
        ending: { end: "close" },
        pause: { at: 1, ms: fault.ms },
      });
  }
  return streamReply(state, events, { ending: { end: "close" } });
}

// ---------------------------------------------------------------------------
// Embeddings and models

function float32Base64(vector: Float32Array): string {
  const bytes = new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function handleEmbeddings(state: State, body: Json): Response {
  const model = findModel(state, body.model);
  if (!model) return modelNotFound(state, body.model);
  if (model.kind !== "embedding") {
    return errorResponse(
      state,
      invalid("You are not allowed to generate embeddings from this model"),
      { status: 400 },
    );
  }
  const inputs = typeof body.input === "string" ? [body.input] : body.input;
  if (
    !Array.isArray(inputs) || inputs.length === 0 ||
    !inputs.every((i) => typeof i === "string" && i !== "")
  ) {
    return errorResponse(
      state,
      invalid(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
      ),
      { status: 400 },
    );
  }
  const dimensions = typeof body.dimensions === "number"
    ? body.dimensions
    : (model.dimensions ?? 1536);
  const base64 = body.encoding_format === "base64";
  const data = (inputs as string[]).map((text, index) => {
    const vector = embedText(text, dimensions);
    return {
      object: "embedding",
      index,
      embedding: base64 ? float32Base64(vector) : Array.from(vector),
    };
  });
  if (state.quirks.reverseEmbeddings) data.reverse();
  const tokens = (inputs as string[]).reduce((n, text) => n + tokenize(text).length, 0);
  return jsonResponse(state, {
    object: "list",
    data,
    model: model.id,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

function modelJson(model: DoubleModel): Json {
  return { id: model.id, object: "model", created: model.created, owned_by: model.ownedBy };
}

// ---------------------------------------------------------------------------
// Routing

function authError(state: State, request: Request): Response | undefined {
  if (state.apiKey === null) return undefined;
  const given = state.authHeader === "api-key"
    ? request.headers.get("api-key")
    : /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
  if (given === state.apiKey) return undefined;
  if (!given) {
    return errorResponse(
      state,
      invalid(
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
      ),
      { status: 401 },
    );
  }
  // OpenAI shows the start and the end of the key it refused.
  const masked = given.length > 9
    ? `${given.slice(0, 5)}${"*".repeat(given.length - 9)}${given.slice(-4)}`
    : given;
  return errorResponse(
    state,
    invalid(
      `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`,
      { code: "invalid_api_key" },
    ),
    { status: 401 },
  );
}

function faultResponse(state: State, fault: Fault): Response | undefined {
  switch (fault.kind) {
    case "status":
      return errorResponse(state, fault.error ?? defaultError(fault.status), {
        status: fault.status,
        headers: fault.headers,
      });
    case "body":
      return new Response(fault.body, {
        status: fault.status,
        headers: { "content-type": fault.contentType ?? "text/html; charset=utf-8" },
      });
  }
  return undefined;
}

async function route(
  state: State,
  request: Request,
  { path, body }: { path: string; body: unknown },
): Promise<Response> {
  const notFound = () =>
    errorResponse(state, invalid(`Invalid URL (${request.method} ${path})`), { status: 404 });
  const unauthorized = authError(state, request);
  if (unauthorized) return unauthorized;
  const fault = FAULTABLE.has(path) ? takeFault(state, path) : undefined;
  if (fault) {
    const early = faultResponse(state, fault);
    if (early) return early;
  }
  if (path === "/v1/models" && request.method === "GET") {
    if (state.quirks.listModels === false) return notFound();
    if (fault?.kind === "slow-headers") await sleep(state, fault.ms);
    return jsonResponse(state, { object: "list", data: state.models.map(modelJson) });
  }
  const one = /^\/v1\/models\/(.+)$/.exec(path);
  if (one && request.method === "GET" && state.quirks.listModels !== false) {
    const model = findModel(state, decodeURIComponent(one[1]));
    if (!model) {
      return errorResponse(
        state,
        invalid(
          `The model '${decodeURIComponent(one[1])}' does not exist`,
          { param: "model", code: "model_not_found" },
        ),
        { status: 404 },
      );
    }
    return jsonResponse(state, modelJson(model));
  }
  if (request.method !== "POST") return notFound();
  if (path !== "/v1/chat/completions" && path !== "/v1/embeddings") return notFound();
  if (!isObject(body)) {
    return errorResponse(
      state,
      invalid(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
      ),
      { status: 400 },
    );
  }
  if (path === "/v1/embeddings") {
    if (fault?.kind === "slow-headers") await sleep(state, fault.ms);
    return handleEmbeddings(state, body);
  }
  return await handleChat(state, { body, fault });
}

async function handle(state: State, request: Request): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  const raw = request.body ? await request.text() : "";
  let body: unknown = null;
  if (raw !== "") {
    try {
      body = JSON.parse(raw);
    } catch {
      body = raw;
    }
  }
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => (headers[name] = value));
  state.requests.push({ method: request.method, path, query: url.search, headers, body });
  for (const waiter of [...state.requestWaiters]) if (waiter.path === path) waiter.resolve();
  return await route(state, request, { path, body });
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
 * const openai = await startOpenAiDouble();
 * const res = await fetch(`${openai.url}/models`, {
 *   headers: { authorization: `Bearer ${DOUBLE_API_KEY}` },
 * });
 * await res.body?.cancel();
 * await openai.close();
 * ```
 */
export async function startOpenAiDouble(options: OpenAiDoubleOptions = {}): Promise<OpenAiDouble> {
  const state: State = {
    models: [...(options.models ?? DEFAULT_MODELS)],
    apiKey: options.apiKey === undefined ? DOUBLE_API_KEY : options.apiKey,
    authHeader: options.authHeader ?? "authorization",
    strict: options.strict ?? true,
    quirks: { ...options.quirks },
    tokenDelayMs: options.tokenDelayMs ?? 0,
    requests: [],
    openStreams: 0,
    streamsStarted: 0,
    faults: [],
    scripts: [],
    streams: new Set(),
    sleeps: new Set(),
    streamWaiters: new Set(),
    requestWaiters: new Set(),
    sequence: 0,
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
    url: `http://${host}/v1`,
    host,
    port: addr.port,
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
    set apiKey(key: string | null) {
      state.apiKey = key;
    },
    get tokenDelayMs() {
      return state.tokenDelayMs;
    },
    set tokenDelayMs(ms: number) {
      state.tokenDelayMs = ms;
    },
    get quirks() {
      return state.quirks;
    },
    set quirks(quirks: Quirks) {
      state.quirks = { ...quirks };
    },
    failNext(fault: Fault, times = 1, path?: string) {
      if (times > 0) state.faults.push({ fault, remaining: times, path });
    },
    scriptNext(script: Script, times = 1) {
      if (times > 0) state.scripts.push({ script, remaining: times });
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
        for (const wake of [...state.sleeps]) wake();
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
      "api-key": { type: "string", default: DOUBLE_API_KEY },
      keyless: { type: "boolean", default: false },
      "token-delay-ms": { type: "string", default: "0" },
    },
  });
  const double = await startOpenAiDouble({
    port: Number(values.port),
    apiKey: values.keyless ? null : values["api-key"],
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
