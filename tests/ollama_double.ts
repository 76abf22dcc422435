/**
 * A faithful Ollama HTTP server double for tests and benchmarks.
 *
 * It is a real HTTP server (`Deno.serve` on 127.0.0.1) that answers Ollama's
 * native API the way Ollama's Go server writes it: field order of the Go
 * structs in `api/types.go`, `omitempty` fields left out, Go's HTML-escaping
 * (`<` → `\u003c`), RFC3339Nano timestamps and integer nanosecond durations.
 * Error texts and status codes follow `server/routes.go` and `server/images.go`.
 *
 * Replies are deterministic: the model answers `"Echo: " + prompt`, split into
 * word tokens that keep their leading space. `/api/pull` downloads from a
 * pretend library ({@linkcode LIBRARY_MODELS} plus the installed models)
 * with Ollama's progress lines, repeats and backward steps included (see
 * {@linkcode pullLines}); `DELETE /api/delete` removes an installed model. Tests can inject faults (error
 * statuses, errors mid-stream, dropped connections, hangs, trickling bytes,
 * non-JSON bodies) with {@linkcode OllamaDouble.failNext}.
 *
 * Standalone use (benchmarks, manual `rune serve` tries):
 *
 * ```sh
 * deno task double                      # port 11434, where rune looks by default
 * deno task double --port 0 --token-delay-ms 20
 * ```
 *
 * It prints `listening http://127.0.0.1:PORT` and the `export OLLAMA_HOST=...`
 * line that points `rune` at it.
 *
 * @module
 */

import { parseArgs } from "node:util";
// Go's time.ParseDuration, checked against Go's own test table in
// tests/providers/ollama/keep_alive_test.ts.
import { goDurationError } from "../src/providers/ollama/keep_alive.ts";

/** A model the double serves, as listed by `/api/tags`. */
export interface DoubleModel {
  /** Full name with tag, e.g. `llama3.2:latest`. */
  name: string;
  /** Model family, e.g. `llama`; also the `general.architecture`. */
  family: string;
  /** Human parameter size, e.g. `3.2B`. */
  parameterSize: string;
  /** Quantization level, e.g. `Q4_K_M`. */
  quantization: string;
  /** Ollama capabilities: `completion`, `tools`, `vision`, `thinking`, `embedding`. */
  capabilities: string[];
  /** Size on disk in bytes; derived from parameter size and quantization when absent. */
  size?: number;
  /**
   * A vision architecture shipped without its projector (e.g. a text-only
   * gemma3 build): images fail with {@linkcode OLLAMA_ERRORS.noVisionData}.
   * Other models without `vision` ignore images, as Ollama's runners do.
   */
  visionDataMissing?: boolean;
}

/** A tool call a scripted reply makes. */
export interface ScriptedToolCall {
  /** Function name. */
  name: string;
  /** Arguments object, sent as is. */
  arguments: Record<string, unknown>;
}

/**
 * What the model says in the next chat (or generate) reply, instead of the
 * echo: thinking first, then the text token by token, then one chunk with
 * every tool call (as Ollama's tool parser emits them), then the final
 * chunk.
 */
export interface Script {
  /** Reasoning text (thinking models stream it first). */
  thinking?: string;
  /** The answer text; may accompany tool calls. */
  content?: string;
  /** Tool calls, in order; each gets an id and its index. */
  toolCalls?: ScriptedToolCall[];
}

/** A failure injected into the next matching requests. */
export type Fault =
  /** Reply with that status and `{"error": error}`. */
  | { kind: "status"; status: number; error: string }
  /** 200 NDJSON with `afterTokens` token chunks, then `{"error": error}` and a clean end. */
  | { kind: "error-in-stream"; afterTokens: number; error: string }
  /** 200 NDJSON with `afterTokens` token chunks, then the connection is aborted mid-body. */
  | { kind: "drop"; afterTokens: number }
  /** 200 headers are sent, then the body stays silent until the client cancels. */
  | { kind: "hang-after-headers" }
  /** The normal reply, one byte every `intervalMs`. */
  | { kind: "trickle"; intervalMs: number }
  /** 200 NDJSON with `afterTokens` chunks (pull: progress lines), then silence until the client cancels. */
  | { kind: "stall"; afterTokens: number }
  /** The normal reply, but its headers only after `ms`: Ollama loading a model first. */
  | { kind: "slow-load"; ms: number }
  /** A non-JSON body, e.g. a proxy's HTML error page; `status` defaults to 502. */
  | { kind: "non-json"; body: string; contentType?: string; status?: number };

/** Options for {@linkcode startOllamaDouble}. */
export interface OllamaDoubleOptions {
  /** Models to serve; defaults to {@linkcode DEFAULT_MODELS}. */
  models?: DoubleModel[];
  /**
   * Models `/api/pull` can download besides the installed ones.
   * @default LIBRARY_MODELS
   */
  library?: DoubleModel[];
  /** Delay between streamed tokens in milliseconds; default 0 (as fast as backpressure allows). */
  tokenDelayMs?: number;
  /** Version reported by `/api/version`; default {@linkcode DEFAULT_VERSION}. */
  version?: string;
  /** Port to listen on; default 0 (any free port). */
  port?: number;
}

/** One request as the double received it. */
export interface RecordedRequest {
  /** HTTP method. */
  method: string;
  /** URL path, without query. */
  path: string;
  /** Parsed JSON body, the raw text when it is not JSON, or null when empty. */
  body: unknown;
}

/** A running double and its control API. */
export interface OllamaDouble {
  /** Base URL, `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** `127.0.0.1:PORT`, the form `OLLAMA_HOST` takes. */
  readonly host: string;
  /** The port the server listens on. */
  readonly port: number;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Streaming responses whose body is still open. */
  readonly openStreams: number;
  /** Streaming responses started since the double started. */
  readonly streamsStarted: number;
  /** The most streaming responses ever open at once. */
  readonly peakOpenStreams: number;
  /**
   * Chunks (NDJSON lines) handed to streaming responses since the double
   * started; it stops growing while a reader holds the streams back.
   */
  readonly chunksSent: number;
  /** Delay between streamed tokens in milliseconds; may be changed at runtime. */
  tokenDelayMs: number;
  /** Names of the installed models (as `/api/tags` lists them), in order. */
  readonly installed: string[];
  /**
   * Applies `fault` to the next `times` (default 1) generate/chat/embed/tags/pull requests, or
   * only to those to `path` (e.g. `/api/generate`) when given.
   */
  failNext(fault: Fault, times?: number, path?: string): void;
  /** Answers the next `times` (default 1) generate/chat requests with `script` instead of the echo. */
  scriptNext(script: Script, times?: number): void;
  /** Resolves once `openStreams === n`; rejects when `signal` aborts. */
  waitForOpenStreams(n: number, signal?: AbortSignal): Promise<void>;
  /** Resolves on the next request to `path`; rejects when `signal` aborts. */
  waitForRequest(path: string, signal?: AbortSignal): Promise<void>;
  /** Stops the server, ends open streams and clears every timer. */
  close(): Promise<void>;
}

/**
 * The version `/api/version` reports by default: the Ollama release whose
 * wire format the double follows (tool call ids appeared in 0.12.10).
 */
export const DEFAULT_VERSION = "0.13.0";

/**
 * Error texts of Ollama that tests inject, verbatim from its source:
 * `busy` is `ErrMaxQueue` (server/sched.go, answered with 503), `rateLimited`
 * the 429 a cloud model's upstream returns (server/routes_generate_test.go),
 * `noEmbeddings` the runner's reply for a model without pooling
 * (runner/ollamarunner/runner.go, answered by /api/embed with 500), and
 * `noVisionData` the runner's `model.ErrNoVisionModel` for a vision
 * architecture without its projector (model/model.go).
 */
export const OLLAMA_ERRORS = {
  busy: "server busy, please try again.  maximum pending requests exceeded",
  rateLimited: "rate limit exceeded",
  noEmbeddings: "this model does not support embeddings",
  noVisionData:
    "Failed to create new sequence: this model is missing data required for image input",
} as const;

/** Models the double's pretend library offers to `/api/pull`, beyond the installed ones. */
export const LIBRARY_MODELS: readonly DoubleModel[] = [
  {
    name: "smollm2:135m",
    family: "llama",
    parameterSize: "134.52M",
    quantization: "F16",
    capabilities: ["completion", "tools"],
    size: 270898672,
  },
];

/** Dimensions of the deterministic embedding vectors. */
export const EMBEDDING_DIMENSIONS = 384;

/** The models served when none are given. */
export const DEFAULT_MODELS: readonly DoubleModel[] = [
  {
    name: "llama3.2:latest",
    family: "llama",
    parameterSize: "3.2B",
    quantization: "Q4_K_M",
    capabilities: ["completion", "tools"],
    size: 2019393189,
  },
  {
    name: "llava:latest",
    family: "llama",
    parameterSize: "7B",
    quantization: "Q4_0",
    capabilities: ["completion", "vision"],
    size: 4733363377,
  },
  {
    name: "qwen3:latest",
    family: "qwen3",
    parameterSize: "8.2B",
    quantization: "Q4_K_M",
    capabilities: ["completion", "tools", "thinking"],
    size: 5225388164,
  },
  {
    name: "all-minilm:latest",
    family: "bert",
    parameterSize: "23M",
    quantization: "F16",
    capabilities: ["embedding"],
    size: 45960996,
  },
];

type Json = Record<string, unknown>;

interface Waiter {
  resolve(): void;
}

interface StreamHandle {
  abort(): void;
}

interface State {
  models: DoubleModel[];
  library: DoubleModel[];
  version: string;
  tokenDelayMs: number;
  requests: RecordedRequest[];
  openStreams: number;
  streamsStarted: number;
  peakOpenStreams: number;
  chunksSent: number;
  faults: { fault: Fault; remaining: number; path?: string }[];
  streams: Set<StreamHandle>;
  sleeps: Set<() => void>;
  loaded: Map<string, number>;
  streamWaiters: Set<Waiter>;
  requestWaiters: Set<Waiter & { path: string }>;
  toolCalls: number;
  scripts: { script: Script; remaining: number }[];
}

interface Ctx {
  start: number;
  countStream: boolean;
}

interface StreamStep {
  delayMs?: number;
  bytes?: () => Uint8Array;
  end?: "close" | "error" | "hang";
}

const JSON_TYPE = "application/json; charset=utf-8";
const NDJSON_TYPE = "application/x-ndjson";
const FAULTABLE = new Set(["/api/generate", "/api/chat", "/api/embed", "/api/tags", "/api/pull"]);
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Go encoding/json

/**
 * Serialises a value the way Go's `json.Marshal` does: keys in insertion
 * order, `undefined` members dropped, `<`, `>`, `&`, U+2028 and U+2029
 * escaped, and `Float32Array`s written as shortest float32 decimals.
 */
export function goJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") return goString(value);
  if (typeof value === "number") return goNumber(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (value instanceof Float32Array) {
    return `[${Array.from(value, formatFloat32).join(",")}]`;
  }
  if (Array.isArray(value)) return `[${value.map(goJson).join(",")}]`;
  const parts: string[] = [];
  for (const [key, member] of Object.entries(value as Json)) {
    if (member !== undefined) parts.push(`${goString(key)}:${goJson(member)}`);
  }
  return `{${parts.join(",")}}`;
}

function goString(s: string): string {
  // JSON.stringify only emits these characters inside strings, so a global
  // replace cannot touch structure.
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function goNumber(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`json: unsupported value: ${n}`);
  // Go and JS switch to exponent form at the same thresholds (1e-6, 1e21).
  return String(n);
}

function formatFloat32(x: number): string {
  const f = Math.fround(x);
  if (f === 0) return Object.is(f, -0) ? "-0" : "0";
  // Shortest decimal that reads back as the same float32, as strconv does.
  for (let p = 1; p <= 9; p++) {
    const candidate = Number(f.toPrecision(p));
    if (Math.fround(candidate) === f) return String(candidate);
  }
  return String(f);
}

/** Go's `%q` for the plain names the double deals with. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

// ---------------------------------------------------------------------------
// Go time formatting

function nowParts(): { ms: number; nanos: number } {
  const t = performance.timeOrigin + performance.now();
  const ms = Math.floor(t);
  const nanos = (ms % 1000) * 1_000_000 + Math.floor((t - ms) * 1_000_000);
  return { ms, nanos };
}

/** RFC3339Nano as Go writes it: trailing zeros of the fraction trimmed. */
function rfc3339Nano(ms: number, nanos: number, utc: boolean): string {
  const offsetMin = utc ? 0 : -new Date(ms).getTimezoneOffset();
  const d = new Date(ms + offsetMin * 60_000);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const date = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const frac = nanos === 0 ? "" : `.${String(nanos).padStart(9, "0").replace(/0+$/, "")}`;
  let zone = "Z";
  if (offsetMin !== 0) {
    const abs = Math.abs(offsetMin);
    zone = `${offsetMin < 0 ? "-" : "+"}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }
  return `${date}T${time}${frac}${zone}`;
}

function createdAt(): string {
  const { ms, nanos } = nowParts();
  return rfc3339Nano(ms, nanos, true);
}

function localTime(ms: number, nanos: number): string {
  return rfc3339Nano(ms, nanos, false);
}

// ---------------------------------------------------------------------------
// Deterministic text, hashes and vectors

function fnv1a(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (const byte of encoder.encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function hexDigest(text: string): string {
  let out = "";
  for (let i = 0; i < 8; i++) out += fnv1a(`${i}:${text}`).toString(16).padStart(8, "0");
  return out;
}

/** Splits text into word tokens that keep their leading whitespace. */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

function tokenIds(tokens: string[]): number[] {
  return tokens.map((t) => fnv1a(t) % 128000);
}

/** The deterministic, L2-normalised embedding of `text`. */
export function embedText(text: string, dimensions = EMBEDDING_DIMENSIONS): Float32Array {
  let s = fnv1a(text) || 1;
  const raw = new Float64Array(dimensions);
  let sum = 0;
  for (let i = 0; i < dimensions; i++) {
    // xorshift32: cheap, deterministic, good enough spread.
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    raw[i] = s / 0xffffffff * 2 - 1;
    sum += raw[i] * raw[i];
  }
  const norm = 1 / Math.max(Math.sqrt(sum), 1e-12);
  return Float32Array.from(raw, (v) => v * norm);
}

// ---------------------------------------------------------------------------
// Models

function canonicalName(name: string): string {
  let n = name.trim().toLowerCase();
  if (n.startsWith("registry.ollama.ai/")) n = n.slice("registry.ollama.ai/".length);
  if (n.startsWith("library/")) n = n.slice("library/".length);
  const lastSlash = n.lastIndexOf("/");
  if (!n.slice(lastSlash + 1).includes(":")) n += ":latest";
  return n;
}

function findModel(state: State, name: string): DoubleModel | undefined {
  const wanted = canonicalName(name);
  return state.models.find((m) => canonicalName(m.name) === wanted);
}

/** The fully qualified name Ollama puts in capability errors. */
function qualifiedName(model: DoubleModel): string {
  const n = canonicalName(model.name);
  return n.includes("/") ? `registry.ollama.ai/${n}` : `registry.ollama.ai/library/${n}`;
}

function shortName(model: DoubleModel): string {
  return canonicalName(model.name);
}

function has(model: DoubleModel, capability: string): boolean {
  return model.capabilities.includes(capability);
}

function modelSize(model: DoubleModel): number {
  if (model.size !== undefined) return model.size;
  const m = /^([\d.]+)\s*([KMBT])/i.exec(model.parameterSize);
  const scale: Record<string, number> = { K: 1e3, M: 1e6, B: 1e9, T: 1e12 };
  const params = m ? Number(m[1]) * scale[m[2].toUpperCase()] : 1e9;
  const q = model.quantization.toUpperCase();
  const bytesPerParam = q.startsWith("F32")
    ? 4
    : q.startsWith("F16") || q.startsWith("BF16")
    ? 2
    : q.startsWith("Q8")
    ? 1.07
    : 0.6;
  return Math.round(params * bytesPerParam) + (fnv1a(model.name) % 1_000_000);
}

function modelDetails(model: DoubleModel): Json {
  const families = has(model, "vision") && model.family !== "clip"
    ? [model.family, "clip"]
    : [model.family];
  return {
    parent_model: "",
    format: "gguf",
    family: model.family,
    families,
    parameter_size: model.parameterSize,
    quantization_level: model.quantization,
  };
}

function modifiedAt(state: State, model: DoubleModel): { ms: number; text: string } {
  // Fixed, distinct per model so /api/tags ordering is stable.
  const index = state.models.indexOf(model);
  const ms = Date.UTC(2025, 9, 14, 9, 31, 7) - index * 3 * 86_400_000 - index * 3_600_000;
  const nanos = (fnv1a(model.name) % 999_999_999) + 1;
  return { ms, text: localTime(ms, nanos) };
}

function templateFor(model: DoubleModel): string {
  if (has(model, "embedding") && !has(model, "completion")) return "{{ .Prompt }}";
  if (has(model, "thinking")) {
    return "{{- if .Messages }}{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}" +
      "<|im_start|>assistant\n{{- if .Think }}\n<think>\n{{ end }}{{ else }}{{ .Prompt }}{{ end }}";
  }
  if (has(model, "tools")) {
    return "<|start_header_id|>system<|end_header_id|>\n\n{{ if .Tools }}You have access to the following functions." +
      "{{ range .Tools }}{{ . }}{{ end }}{{ end }}<|eot_id|>{{ range .Messages }}<|start_header_id|>{{ .Role }}" +
      "<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  return "[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]";
}

function parametersFor(model: DoubleModel): string | undefined {
  const stops = has(model, "thinking")
    ? ["<|im_start|>", "<|im_end|>"]
    : has(model, "tools")
    ? ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    : has(model, "completion")
    ? ["[INST]", "[/INST]"]
    : [];
  // Go: fmt.Sprintf("%-*s %#v", 30, key, value), one line per list element.
  const lines = stops.map((s) => `${"stop".padEnd(30)} ${goQuote(s)}`);
  // Thinking models ship sampling defaults (qwen3's Modelfile).
  if (has(model, "thinking")) {
    for (const [key, value] of [["temperature", 0.6], ["top_k", 20], ["top_p", 0.95]] as const) {
      lines.push(`${key.padEnd(30)} ${value}`);
    }
  }
  return lines.length ? lines.join("\n") : undefined;
}

function modelInfo(model: DoubleModel): Json {
  const arch = model.family;
  const m = /^([\d.]+)\s*([KMBT])/i.exec(model.parameterSize);
  const scale: Record<string, number> = { K: 1e3, M: 1e6, B: 1e9, T: 1e12 };
  const params = m ? Math.round(Number(m[1]) * scale[m[2].toUpperCase()]) : 0;
  const info: Json = {
    "general.architecture": arch,
    "general.file_type": model.quantization === "F16" ? 1 : 15,
    "general.parameter_count": params,
    "general.quantization_version": 2,
    [`${arch}.block_count`]: has(model, "embedding") ? 6 : 28,
    [`${arch}.context_length`]: has(model, "embedding") ? 512 : 131072,
    [`${arch}.embedding_length`]: has(model, "embedding") ? EMBEDDING_DIMENSIONS : 3072,
    "tokenizer.ggml.model": has(model, "embedding") ? "bert" : "gpt2",
  };
  // Go writes map keys sorted.
  return Object.fromEntries(Object.entries(info).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function markLoaded(state: State, model: DoubleModel, keepAlive: unknown): void {
  const ms = keepAliveMs(keepAlive);
  if (ms === 0) state.loaded.delete(shortName(model));
  else state.loaded.set(shortName(model), Date.now() + ms);
}

function keepAliveMs(value: unknown): number {
  const fiveMinutes = 5 * 60_000;
  if (typeof value === "number") return value < 0 ? 100 * 365 * 86_400_000 : value * 1000;
  if (typeof value !== "string") return fiveMinutes;
  if (value.trim().startsWith("-")) return 100 * 365 * 86_400_000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let matched = false;
  for (const [, n, unit] of value.matchAll(/([\d.]+)(ms|s|m|h)/g)) {
    total += Number(n) * units[unit];
    matched = true;
  }
  return matched ? total : fiveMinutes;
}

// ---------------------------------------------------------------------------
// Request parsing (Go's json.Decoder via gin's ShouldBindJSON)

/** Go's `quoteChar` from encoding/json's scanner. */
function quoteChar(c: string): string {
  if (c === "'") return `'\\''`;
  if (c === '"') return `'"'`;
  const cp = c.codePointAt(0) ?? 0;
  // The scanner sees bytes; Go quotes the first byte as a rune.
  const byte = cp < 0x80
    ? cp
    : cp < 0x800
    ? 0xc0 | (cp >> 6)
    : cp < 0x10000
    ? 0xe0 | (cp >> 12)
    : 0xf0 | (cp >> 18);
  const named: Record<number, string> = {
    7: "\\a",
    8: "\\b",
    9: "\\t",
    10: "\\n",
    11: "\\v",
    12: "\\f",
    13: "\\r",
  };
  if (named[byte]) return `'${named[byte]}'`;
  if (byte < 0x20 || byte === 0x7f) return `'\\x${byte.toString(16).padStart(2, "0")}'`;
  if (byte >= 0x80 && byte < 0xa0) return `'\\u00${byte.toString(16)}'`;
  return `'${String.fromCharCode(byte)}'`;
}

/** Scans the first JSON value like Go's decoder; returns where it ends or Go's error text. */
function goScan(src: string): { end: number } | { error: string } {
  let i = 0;
  const fail = (context: string): never => {
    const error = new Error(
      i >= src.length ? "unexpected EOF" : `invalid character ${quoteChar(src[i])} ${context}`,
    );
    error.name = "GoScanError";
    throw error;
  };
  const ws = () => {
    while (i < src.length && " \t\r\n".includes(src[i])) i++;
  };
  const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
  const literal = (word: string) => {
    for (const expected of word) {
      if (src[i] !== expected) fail(`in literal ${word} (expecting ${quoteChar(expected)})`);
      i++;
    }
  };
  const number = () => {
    if (src[i] === "-") {
      i++;
      if (!isDigit(src[i])) fail("in numeric literal");
    }
    if (src[i] === "0") i++;
    else while (isDigit(src[i])) i++;
    if (src[i] === ".") {
      i++;
      if (!isDigit(src[i])) fail("after decimal point in numeric literal");
      while (isDigit(src[i])) i++;
    }
    if (src[i] === "e" || src[i] === "E") {
      i++;
      if (src[i] === "+" || src[i] === "-") i++;
      if (!isDigit(src[i])) fail("in exponent of numeric literal");
      while (isDigit(src[i])) i++;
    }
  };
  const string = () => {
    i++;
    for (;;) {
      const c = src[i];
      if (c === undefined) fail("");
      if (c === '"') {
        i++;
        return;
      }
      if (c === "\\") {
        i++;
        if (src[i] === "u") {
          i++;
          for (let k = 0; k < 4; k++, i++) {
            if (!/[0-9a-fA-F]/.test(src[i] ?? "")) fail("in \\u hexadecimal character escape");
          }
        } else if (src[i] !== undefined && `"\\/bfnrt`.includes(src[i])) i++;
        else fail("in string escape code");
      } else if (c < " ") fail("in string literal");
      else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = src[i];
    if (c === "{") return object();
    if (c === "[") return array();
    if (c === '"') return string();
    if (c === "-" || isDigit(c)) return number();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    fail("looking for beginning of value");
  };
  const object = () => {
    i++;
    ws();
    if (src[i] === "}") {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (src[i] !== '"') fail("looking for beginning of object key string");
      string();
      ws();
      if (src[i] !== ":") fail("after object key");
      i++;
      value();
      ws();
      if (src[i] === ",") {
        i++;
        continue;
      }
      if (src[i] === "}") {
        i++;
        return;
      }
      fail("after object key:value pair");
    }
  };
  const array = () => {
    i++;
    ws();
    if (src[i] === "]") {
      i++;
      return;
    }
    for (;;) {
      value();
      ws();
      if (src[i] === ",") {
        i++;
        continue;
      }
      if (src[i] === "]") {
        i++;
        return;
      }
      fail("after array element");
    }
  };
  try {
    value();
    return { end: i };
  } catch (e) {
    if (e instanceof Error && e.name === "GoScanError") return { error: e.message };
    throw e;
  }
}

function jsonKind(v: unknown): string {
  if (typeof v === "number") return "number";
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "bool";
  if (Array.isArray(v)) return "array";
  return "object";
}

type Parsed = { ok: true; body: Json } | { ok: false; error: string };

const FIELD_TYPES: Record<string, Record<string, "string" | "bool" | "array">> = {
  GenerateRequest: {
    model: "string",
    prompt: "string",
    suffix: "string",
    system: "string",
    template: "string",
    stream: "bool",
    raw: "bool",
    images: "array",
  },
  ChatRequest: { model: "string", messages: "array", stream: "bool", tools: "array" },
  EmbedRequest: { model: "string" },
  ShowRequest: { model: "string", name: "string", system: "string" },
  PullRequest: { model: "string", name: "string", stream: "bool", insecure: "bool" },
  DeleteRequest: { model: "string", name: "string" },
};

/** Structs without `keep_alive` and `think`. */
const PLAIN_STRUCTS = new Set(["ShowRequest", "PullRequest", "DeleteRequest"]);

const GO_TYPES = { string: "string", bool: "bool", array: "[]" } as const;

/** Decodes a request body the way gin's ShouldBindJSON does, with Go's error texts. */
function parseBody(raw: string, struct: string): Parsed {
  if (raw.trim() === "") return { ok: false, error: "missing request body" };
  const scanned = goScan(raw);
  if ("error" in scanned) return { ok: false, error: scanned.error };
  const value: unknown = JSON.parse(raw.slice(0, scanned.end));
  if (value === null) return { ok: true, body: {} };
  if (typeof value !== "object" || Array.isArray(value)) {
    return {
      ok: false,
      error: `json: cannot unmarshal ${jsonKind(value)} into Go value of type api.${struct}`,
    };
  }
  const body = value as Json;
  for (const [field, want] of Object.entries(FIELD_TYPES[struct] ?? {})) {
    const v = body[field];
    if (v === undefined || v === null) continue;
    const ok = want === "array"
      ? Array.isArray(v)
      : typeof v === want || (want === "bool" && typeof v === "boolean");
    if (!ok) {
      const goType = want === "array"
        ? (field === "messages"
          ? "[]api.Message"
          : field === "tools"
          ? "api.Tools"
          : "[]api.ImageData")
        : GO_TYPES[want];
      return {
        ok: false,
        error: `json: cannot unmarshal ${
          jsonKind(v)
        } into Go struct field ${struct}.${field} of type ${goType}`,
      };
    }
  }
  // api.Duration.UnmarshalJSON (api/types.go): seconds, or a Go duration string.
  const keepAlive = body.keep_alive;
  if (!PLAIN_STRUCTS.has(struct) && keepAlive !== undefined && keepAlive !== null) {
    if (typeof keepAlive === "string") {
      const problem = goDurationError(keepAlive);
      if (problem) return { ok: false, error: problem };
    } else if (typeof keepAlive !== "number") {
      const goType = typeof keepAlive === "boolean"
        ? "bool"
        : Array.isArray(keepAlive)
        ? "[]interface {}"
        : "map[string]interface {}";
      return { ok: false, error: `Unsupported type: '${goType}'` };
    }
  }
  const think = PLAIN_STRUCTS.has(struct) ? undefined : body.think;
  if (typeof think === "string" && !["high", "medium", "low"].includes(think)) {
    return {
      ok: false,
      error: `invalid think value: ${
        goQuote(think)
      } (must be "high", "medium", "low", true, or false)`,
    };
  }
  if (
    think !== undefined && think !== null && typeof think !== "string" && typeof think !== "boolean"
  ) {
    return {
      ok: false,
      error: `think must be a boolean or string ("high", "medium", "low", true, or false)`,
    };
  }
  return { ok: true, body };
}

function recordedBody(raw: string): unknown {
  if (raw === "") return null;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

// ---------------------------------------------------------------------------
// Responses

function jsonResponse(status: number, body: unknown, contentType = JSON_TYPE): Response {
  return new Response(goJson(body), { status, headers: { "content-type": contentType } });
}

function errorResponse(status: number, error: string, contentType = JSON_TYPE): Response {
  return jsonResponse(status, { error }, contentType);
}

function textResponse(status: number, text: string): Response {
  return new Response(text, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

function line(value: unknown): Uint8Array {
  return encoder.encode(`${goJson(value)}\n`);
}

function notifyStreams(state: State): void {
  for (const waiter of [...state.streamWaiters]) waiter.resolve();
}

/** A pull-based body that counts as an open stream until it ends or is cancelled. */
function managedStream(
  state: State,
  ctx: Ctx,
  next: () => StreamStep | Promise<StreamStep>,
  onCancel?: () => void,
): ReadableStream<Uint8Array> {
  let finished = false;
  let wake: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;
  const handle: StreamHandle = {
    abort() {
      if (finished) return;
      try {
        controllerRef?.error(new Error("ollama double closed"));
      } catch {
        // already closed
      }
      finish();
      onCancel?.();
    },
  };
  const finish = () => {
    if (finished) return;
    finished = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    wake?.();
    wake = undefined;
    state.streams.delete(handle);
    if (ctx.countStream) {
      state.openStreams--;
      notifyStreams(state);
    }
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
  state.streams.add(handle);
  if (ctx.countStream) {
    state.openStreams++;
    state.streamsStarted++;
    state.peakOpenStreams = Math.max(state.peakOpenStreams, state.openStreams);
    notifyStreams(state);
  }
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controllerRef = controller;
    },
    async pull(controller) {
      if (finished) return;
      const step = await next();
      if (finished) return;
      if (step.delayMs && step.delayMs > 0) {
        await wait(step.delayMs);
        if (finished) return;
      }
      if (step.bytes) {
        controller.enqueue(step.bytes());
        state.chunksSent++;
      }
      if (step.end === "close") {
        controller.close();
        finish();
      } else if (step.end === "error") {
        // Erroring the body makes Deno abort the connection mid-body.
        controller.error(new Error("ollama double: connection dropped (injected fault)"));
        finish();
      } else if (step.end === "hang") {
        await wait(-1);
      }
    },
    cancel() {
      finish();
      onCancel?.();
    },
  }, { highWaterMark: 0 });
}

function streamResponse(
  body: ReadableStream<Uint8Array>,
  status = 200,
  contentType = NDJSON_TYPE,
): Response {
  return new Response(body, { status, headers: { "content-type": contentType } });
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
// Generation plans

interface Plan {
  thinking: string[];
  content: string[];
  toolCalls?: Json[];
  toolTokens: number;
  doneReason: "stop" | "length";
  promptTokens: number;
}

interface Step {
  kind: "thinking" | "content";
  text: string;
}

function planSteps(plan: Plan): Step[] {
  return [
    ...plan.thinking.map((text): Step => ({ kind: "thinking", text })),
    ...plan.content.map((text): Step => ({ kind: "content", text })),
  ];
}

function evalCount(plan: Plan): number {
  return plan.thinking.length + plan.content.length + plan.toolTokens;
}

function placeholder(schema: unknown, text: string): unknown {
  if (typeof schema !== "object" || schema === null) return text;
  const s = schema as Json;
  if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
  if (Array.isArray(s.anyOf) && s.anyOf.length) return placeholder(s.anyOf[0], text);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
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
      const props = (typeof s.properties === "object" && s.properties) ? s.properties as Json : {};
      return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, placeholder(v, text)]));
    }
    default:
      return text;
  }
}

function replyText(echo: string, format: unknown): string {
  if (format === "json") return goJson({ answer: echo });
  if (typeof format === "object" && format !== null && !Array.isArray(format)) {
    const schema = format as Json;
    return goJson(
      schema.properties ? placeholder({ ...schema, type: "object" }, echo) : { answer: echo },
    );
  }
  return echo;
}

function numPredict(options: unknown): number {
  if (typeof options !== "object" || options === null) return 0;
  const n = (options as Json).num_predict;
  return typeof n === "number" && n > 0 ? Math.floor(n) : 0;
}

function thinkingEnabled(model: DoubleModel, think: unknown): boolean {
  // Ollama turns thinking on by default for models that can think.
  return has(model, "thinking") && think !== false;
}

function buildPlan(
  model: DoubleModel,
  opts: {
    userText: string;
    think: unknown;
    format: unknown;
    options: unknown;
    promptTokens: number;
  },
): Plan {
  const thinking = thinkingEnabled(model, opts.think)
    ? tokenize(`Okay, the user wants me to echo: ${opts.userText}`)
    : [];
  const content = tokenize(replyText(`Echo: ${opts.userText}`, opts.format));
  const n = numPredict(opts.options);
  if (n === 0) {
    return {
      thinking,
      content,
      toolTokens: 0,
      doneReason: "stop",
      promptTokens: opts.promptTokens,
    };
  }
  // num_predict cuts the whole generation, thinking included; past the end
  // the echo tokens repeat.
  const keptThinking = thinking.slice(0, n);
  const rest = n - keptThinking.length;
  const cycled = Array.from(
    { length: rest },
    (_, i) => content[i % Math.max(content.length, 1)] ?? "",
  );
  return {
    thinking: keptThinking,
    content: cycled,
    toolTokens: 0,
    doneReason: "length",
    promptTokens: opts.promptTokens,
  };
}

function metrics(ctx: Ctx, loadedAt: number, plan: Plan): Json {
  const load = Math.max(1, Math.round((loadedAt - ctx.start) * 1e6));
  const promptEval = plan.promptTokens * 180_000 + 1;
  const evalN = evalCount(plan);
  const evalDuration =
    Math.max(Math.round((performance.now() - loadedAt) * 1e6), evalN * 1_000_000) + 1;
  const total = Math.max(
    Math.round((performance.now() - ctx.start) * 1e6),
    load + promptEval + evalDuration,
  );
  return {
    total_duration: total,
    load_duration: load,
    prompt_eval_count: plan.promptTokens || undefined,
    prompt_eval_duration: promptEval,
    eval_count: evalN || undefined,
    eval_duration: evalDuration,
  };
}

// ---------------------------------------------------------------------------
// Handlers

/**
 * A vision architecture without its projector fails in the runner
 * (`Failed to create new sequence: ...`, HTTP 500 from the runner, passed
 * on as a StatusError); before any byte is streamed, `streamResponse` sets
 * `application/json` and answers with that status.
 */
function imagesError(stream: boolean): Response {
  return errorResponse(500, OLLAMA_ERRORS.noVisionData, stream ? "application/json" : JSON_TYPE);
}

/** Text models ignore images (the runner only splits `[img-N]` tags for vision models). */
function imagesFail(model: DoubleModel, images: number): boolean {
  return images > 0 && !has(model, "vision") && model.visionDataMissing === true;
}

async function handleGenerate(state: State, ctx: Ctx, raw: string): Promise<Response> {
  const parsed = parseBody(raw, "GenerateRequest");
  if (!parsed.ok) return errorResponse(400, parsed.error);
  const req = parsed.body;
  const name = typeof req.model === "string" ? req.model : "";
  const model = name.trim() === "" ? undefined : findModel(state, name);
  if (!model) return errorResponse(404, `model '${name}' not found`);
  const prompt = typeof req.prompt === "string" ? req.prompt : "";
  const stream = req.stream !== false;
  if (prompt === "" && req.keep_alive === 0) {
    state.loaded.delete(shortName(model));
    return jsonResponse(200, {
      model: name,
      created_at: createdAt(),
      response: "",
      done: true,
      done_reason: "unload",
    });
  }
  const hasContext = Array.isArray(req.context) && req.context.length > 0;
  if (req.raw === true && (req.template || req.system || hasContext)) {
    return errorResponse(400, "raw mode does not support template, system, or context");
  }
  if (!has(model, "thinking") && (req.think === true || typeof req.think === "string")) {
    return errorResponse(400, `${goQuote(name)} does not support thinking`);
  }
  if (!has(model, "completion")) {
    return errorResponse(400, `${goQuote(name)} does not support generate`);
  }
  markLoaded(state, model, req.keep_alive);
  const loadedAt = performance.now();
  if (prompt === "") {
    return jsonResponse(200, {
      model: name,
      created_at: createdAt(),
      response: "",
      done: true,
      done_reason: "load",
    });
  }
  if (imagesFail(model, Array.isArray(req.images) ? req.images.length : 0)) {
    return imagesError(stream);
  }

  const system = typeof req.system === "string" ? req.system : "";
  const promptTokens = tokenize(prompt).length + tokenize(system).length +
    (req.raw === true ? 0 : 10);
  const plan = buildPlan(model, {
    userText: prompt,
    think: req.think,
    format: req.format,
    options: req.options,
    promptTokens,
  });
  const script = takeScript(state);
  if (script) applyScript(state, plan, { thinking: script.thinking, content: script.content });
  const context = req.raw === true ? undefined : [
    128006,
    882,
    128007,
    271,
    ...tokenIds(tokenize(prompt)),
    128009,
    128006,
    78191,
    128007,
    271,
    ...tokenIds(plan.content),
  ];
  const chunk = (response: string, thinking: string): Json => ({
    model: name,
    created_at: createdAt(),
    response,
    thinking: thinking || undefined,
    done: false,
  });
  const final = (response: string, thinking: string): Json => ({
    model: name,
    created_at: createdAt(),
    response,
    thinking: thinking || undefined,
    done: true,
    done_reason: plan.doneReason,
    context,
    ...metrics(ctx, loadedAt, plan),
  });
  const steps = planSteps(plan);
  if (!stream) {
    await sleep(state, steps.length * state.tokenDelayMs);
    return jsonResponse(200, final(plan.content.join(""), plan.thinking.join("")));
  }
  let i = 0;
  return streamResponse(managedStream(state, ctx, () => {
    const delayMs = i > 0 ? state.tokenDelayMs : 0;
    const step = steps[i++];
    if (!step) return { delayMs, bytes: () => line(final("", "")), end: "close" };
    return {
      delayMs,
      bytes: () => line(step.kind === "thinking" ? chunk("", step.text) : chunk(step.text, "")),
    };
  }));
}

interface ChatMessage {
  role: string;
  content: string;
  images: unknown[];
}

function chatMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) return [];
  return value.map((m) => {
    const msg = (typeof m === "object" && m !== null ? m : {}) as Json;
    return {
      role: typeof msg.role === "string" ? msg.role.toLowerCase() : "",
      content: typeof msg.content === "string" ? msg.content : "",
      images: Array.isArray(msg.images) ? msg.images : [],
    };
  });
}

function toolCallFor(state: State, tools: unknown[], userText: string): Json[] {
  const first = (typeof tools[0] === "object" && tools[0] !== null ? tools[0] : {}) as Json;
  const fn =
    (typeof first.function === "object" && first.function !== null ? first.function : {}) as Json;
  const params =
    (typeof fn.parameters === "object" && fn.parameters !== null ? fn.parameters : {}) as Json;
  const props =
    (typeof params.properties === "object" && params.properties !== null
      ? params.properties
      : {}) as Json;
  const place = /\bin\s+([A-Za-zÀ-ÿ][\w'-]*(?:\s+[A-Z][\w'-]*)*)/.exec(userText)?.[1] ?? "Paris";
  const args = Object.fromEntries(
    Object.entries(props).map(([k, v]) => [k, placeholder(v, place)]),
  );
  const name = typeof fn.name === "string" ? fn.name : "";
  return [toolCallJson(state, 0, { name, arguments: args })];
}

/**
 * One tool call as Ollama 0.13 writes it: `id` from `toolCallId()` (8 of
 * [a-z0-9] after `call_`; deterministic here), then `function` with the
 * call's `index` in the reply.
 */
function toolCallJson(state: State, index: number, call: ScriptedToolCall): Json {
  const seq = state.toolCalls++;
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let id = "call_";
  for (let i = 0; i < 8; i++) id += alphabet[fnv1a(`${seq}:${call.name}:${i}`) % alphabet.length];
  return { id, function: { index, name: call.name, arguments: call.arguments } };
}

function takeScript(state: State): Script | undefined {
  const head = state.scripts[0];
  if (!head) return undefined;
  if (--head.remaining <= 0) state.scripts.shift();
  return head.script;
}

/** Replaces the echo plan with what `script` says. */
function applyScript(state: State, plan: Plan, script: Script): void {
  plan.thinking = tokenize(script.thinking ?? "");
  plan.content = tokenize(script.content ?? "");
  plan.doneReason = "stop";
  if (script.toolCalls?.length) {
    plan.toolCalls = script.toolCalls.map((call, index) => toolCallJson(state, index, call));
    plan.toolTokens = tokenize(goJson(plan.toolCalls)).length;
  }
}

async function handleChat(state: State, ctx: Ctx, raw: string): Promise<Response> {
  const parsed = parseBody(raw, "ChatRequest");
  if (!parsed.ok) return errorResponse(400, parsed.error);
  const req = parsed.body;
  const name = typeof req.model === "string" ? req.model : "";
  if (name.trim() === "") return errorResponse(400, "model is required");
  const model = findModel(state, name);
  if (!model) return errorResponse(404, `model '${name}' not found`);
  const messages = chatMessages(req.messages);
  const tools = Array.isArray(req.tools) ? req.tools : [];
  const stream = req.stream !== false;
  if (messages.length === 0 && req.keep_alive === 0) {
    state.loaded.delete(shortName(model));
    return jsonResponse(200, {
      model: name,
      created_at: createdAt(),
      message: { role: "assistant", content: "" },
      done: true,
      done_reason: "unload",
    });
  }
  if (!has(model, "thinking") && (req.think === true || typeof req.think === "string")) {
    return errorResponse(400, `${goQuote(name)} does not support thinking`);
  }
  if (!has(model, "completion")) {
    return errorResponse(400, `${goQuote(name)} does not support chat`);
  }
  if (tools.length > 0 && !has(model, "tools")) {
    return errorResponse(400, `${qualifiedName(model)} does not support tools`);
  }
  markLoaded(state, model, req.keep_alive);
  const loadedAt = performance.now();
  if (messages.length === 0) {
    return jsonResponse(200, {
      model: name,
      created_at: createdAt(),
      message: { role: "assistant", content: "" },
      done: true,
      done_reason: "load",
    });
  }
  if (imagesFail(model, messages.reduce((n, m) => n + m.images.length, 0))) {
    return imagesError(stream);
  }

  const userText = messages.findLast((m) => m.role === "user")?.content ?? "";
  const promptTokens = messages.reduce((n, m) => n + tokenize(m.content).length + 4, 1) +
    tools.length * 40;
  const plan = buildPlan(model, {
    userText,
    think: req.think,
    format: req.format,
    options: req.options,
    promptTokens,
  });
  const script = takeScript(state);
  if (script) applyScript(state, plan, script);
  // Without a script, a question about the weather calls the first tool once
  // (a convenience for tests that need one tool call without scripting it).
  else if (tools.length > 0 && /\bweather\b/i.test(userText)) {
    plan.content = [];
    plan.doneReason = "stop";
    plan.toolCalls = toolCallFor(state, tools, userText);
    plan.toolTokens = tokenize(goJson(plan.toolCalls)).length;
  }
  const message = (content: string, thinking: string, toolCalls?: Json[]): Json => ({
    role: "assistant",
    content,
    thinking: thinking || undefined,
    tool_calls: toolCalls,
  });
  const chunk = (msg: Json): Json => ({
    model: name,
    created_at: createdAt(),
    message: msg,
    done: false,
  });
  const final = (msg: Json): Json => ({
    model: name,
    created_at: createdAt(),
    message: msg,
    done: true,
    done_reason: plan.doneReason,
    ...metrics(ctx, loadedAt, plan),
  });
  const steps = planSteps(plan);
  if (!stream) {
    await sleep(state, (steps.length + (plan.toolCalls ? 1 : 0)) * state.tokenDelayMs);
    return jsonResponse(
      200,
      final(message(plan.content.join(""), plan.thinking.join(""), plan.toolCalls)),
    );
  }
  const emits: (() => Json)[] = steps.map((s) => () =>
    chunk(s.kind === "thinking" ? message("", s.text) : message(s.text, ""))
  );
  const calls = plan.toolCalls;
  if (calls) emits.push(() => chunk(message("", "", calls)));
  let i = 0;
  return streamResponse(managedStream(state, ctx, () => {
    const delayMs = i > 0 ? state.tokenDelayMs : 0;
    const emit = emits[i++];
    if (!emit) return { delayMs, bytes: () => line(final(message("", ""))), end: "close" };
    return { delayMs, bytes: () => line(emit()) };
  }));
}

function handleEmbed(state: State, ctx: Ctx, raw: string): Response {
  const parsed = parseBody(raw, "EmbedRequest");
  if (!parsed.ok) return errorResponse(400, parsed.error);
  const req = parsed.body;
  const name = typeof req.model === "string" ? req.model : "";
  if (name.trim() === "") return errorResponse(400, "model is required");
  let inputs: string[];
  if (typeof req.input === "string") inputs = req.input === "" ? [] : [req.input];
  else if (Array.isArray(req.input)) {
    if (!req.input.every((v) => typeof v === "string")) {
      return errorResponse(400, "invalid input type");
    }
    inputs = req.input as string[];
  } else if (req.input === undefined || req.input === null) inputs = [];
  else return errorResponse(400, "invalid input type");
  const model = findModel(state, name);
  // Embed resolves the model while scheduling, so a missing one goes
  // through handleScheduleError's wording.
  if (!model) return errorResponse(404, `model ${goQuote(name)} not found, try pulling it first`);
  markLoaded(state, model, req.keep_alive);
  const loadedAt = performance.now();
  if (inputs.length === 0) return jsonResponse(200, { model: name, embeddings: [] });
  // EmbedHandler checks no capability: it schedules the model, then the
  // runner refuses a model without pooling (501, runner/ollamarunner/runner.go)
  // and the handler passes the text on with 500 (server/routes.go).
  if (!has(model, "embedding")) return errorResponse(500, OLLAMA_ERRORS.noEmbeddings);
  const dims = typeof req.dimensions === "number" && req.dimensions > 0 &&
      req.dimensions < EMBEDDING_DIMENSIONS
    ? Math.floor(req.dimensions)
    : EMBEDDING_DIMENSIONS;
  const embeddings = inputs.map((text) => embedText(text, dims));
  const load = Math.max(1, Math.round((loadedAt - ctx.start) * 1e6));
  const promptEvalCount = inputs.reduce((n, text) => n + tokenize(text).length + 2, 0);
  const total = Math.max(
    Math.round((performance.now() - ctx.start) * 1e6),
    load + promptEvalCount * 50_000,
  );
  return jsonResponse(200, {
    model: name,
    embeddings,
    total_duration: total,
    load_duration: load,
    prompt_eval_count: promptEvalCount,
  });
}

function handleTags(state: State): Response {
  const models = state.models.map((model) => ({ model, at: modifiedAt(state, model) }))
    .sort((a, b) => Math.floor(b.at.ms / 1000) - Math.floor(a.at.ms / 1000))
    .map(({ model, at }) => ({
      name: shortName(model),
      model: shortName(model),
      modified_at: at.text,
      size: modelSize(model),
      digest: hexDigest(model.name),
      details: modelDetails(model),
    }));
  return jsonResponse(200, { models });
}

function handlePs(state: State): Response {
  const now = Date.now();
  const models: { expires: number; entry: Json }[] = [];
  for (const [name, expires] of state.loaded) {
    const model = findModel(state, name);
    if (!model || expires <= now) {
      state.loaded.delete(name);
      continue;
    }
    models.push({
      expires,
      entry: {
        name: shortName(model),
        model: shortName(model),
        size: modelSize(model),
        digest: hexDigest(model.name),
        details: modelDetails(model),
        expires_at: localTime(expires, (fnv1a(name) % 999_999) * 1000 + 1),
        size_vram: modelSize(model),
        context_length: has(model, "embedding") ? 512 : 4096,
      },
    });
  }
  models.sort((a, b) => Math.floor(b.expires / 1000) - Math.floor(a.expires / 1000));
  return jsonResponse(200, { models: models.map((m) => m.entry) });
}

function handleShow(state: State, raw: string): Response {
  const parsed = parseBody(raw, "ShowRequest");
  if (!parsed.ok) return errorResponse(400, parsed.error);
  const req = parsed.body;
  const name = typeof req.model === "string" && req.model !== ""
    ? req.model
    : typeof req.name === "string"
    ? req.name
    : "";
  if (name === "") return errorResponse(400, "model is required");
  const model = findModel(state, name);
  if (!model) return errorResponse(404, `model '${name}' not found`);
  const template = templateFor(model);
  const parameters = parametersFor(model);
  const blob = `/root/.ollama/models/blobs/sha256-${hexDigest(`blob:${model.name}`)}`;
  const license = `${model.family} license: this model is served by the Rune test double.`;
  let modelfile =
    `# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM ${
      shortName(model)
    }\n\n`;
  modelfile += `FROM ${blob}\nTEMPLATE """${template}"""\n`;
  for (const p of parameters?.split("\n") ?? []) {
    modelfile += `PARAMETER ${p.replace(/\s+/, " ")}\n`;
  }
  modelfile += `LICENSE """${license}"""\n`;
  return jsonResponse(200, {
    license,
    modelfile,
    parameters,
    template,
    details: modelDetails(model),
    model_info: modelInfo(model),
    projector_info: has(model, "vision")
      ? { "clip.has_vision_encoder": true, "general.architecture": "clip" }
      : undefined,
    capabilities: model.capabilities,
    modified_at: modifiedAt(state, model).text,
  });
}

// ---------------------------------------------------------------------------
// Pull and delete

/** One blob of a model in the pretend library. */
export interface DoubleLayer {
  /** `sha256:` and 64 hex digits. */
  digest: string;
  /** Bytes. */
  size: number;
}

/** Sizes of the small blobs every pretend model has: template, license, params, config. */
const SMALL_BLOBS = [["template", 1429], ["license", 7711], ["params", 96], [
  "config",
  561,
]] as const;

/**
 * The blobs of `model`: the weights, then the template, license, params and
 * config, summing to its `/api/tags` size (as a manifest's layers do).
 */
export function pullLayers(model: DoubleModel): DoubleLayer[] {
  const size = modelSize(model);
  const small = SMALL_BLOBS.reduce((sum, [, bytes]) => sum + bytes, 0);
  return [
    { digest: `sha256:${hexDigest(`weights:${model.name}`)}`, size: Math.max(size - small, 1) },
    ...SMALL_BLOBS.map(([kind, bytes]) => ({
      digest: `sha256:${hexDigest(`${kind}:${model.name}`)}`,
      size: bytes,
    })),
  ];
}

/** Fractions of the weights reported by successive 60 ms ticks: a repeat, a restarted part, and no final tick at 100%. */
const WEIGHT_TICKS = [0, 0.25, 0.25, 0.5, 0.4, 0.75, 0.9];

/**
 * The progress lines Ollama writes pulling `model` (`server/images.go`
 * `PullModel`, `server/download.go`), without the final `success`:
 * `pulling manifest`; for a model not yet installed, the weights blob
 * ticking at {@linkcode WEIGHT_TICKS} (`completed` left out while 0, as Go's
 * `omitempty` does; a tick repeats, one goes backwards as a failed part
 * gives its bytes back, and the last is below the size, because the ticker
 * stops when the download ends), then the template, params and config, each
 * finished before a tick (one line at its size) except the license, which
 * finished before the first tick and gets no line at all; for an installed
 * model, every blob is a cache hit (one line at its size); then
 * `verifying sha256 digest` and `writing manifest`.
 */
export function pullLines(model: DoubleModel, installed: boolean): Json[] {
  const lines: Json[] = [{ status: "pulling manifest" }];
  const progress = (layer: DoubleLayer, completed: number): Json => ({
    status: `pulling ${layer.digest.slice(7, 19)}`,
    digest: layer.digest,
    total: layer.size,
    ...(completed > 0 && { completed }),
  });
  const [weights, template, license, params, config] = pullLayers(model);
  if (installed) {
    for (const layer of [weights, template, license, params, config]) {
      lines.push(progress(layer, layer.size));
    }
  } else {
    for (const fraction of WEIGHT_TICKS) {
      lines.push(progress(weights, Math.floor(weights.size * fraction)));
    }
    void license;
    for (const layer of [template, params, config]) lines.push(progress(layer, layer.size));
  }
  lines.push({ status: "verifying sha256 digest" }, { status: "writing manifest" });
  return lines;
}

/** `model.ParseName(...).IsValid()`, roughly: `[host/][namespace/]model[:tag]`. */
function validName(name: string): boolean {
  const part = "[A-Za-z0-9_][A-Za-z0-9_.-]*";
  return new RegExp(`^(${part}/){0,2}${part}(:${part})?$`).test(name);
}

function findInLibrary(state: State, name: string): DoubleModel | undefined {
  const wanted = canonicalName(name);
  return findModel(state, name) ?? state.library.find((m) => canonicalName(m.name) === wanted);
}

function handlePull(state: State, ctx: Ctx, raw: string, after?: number, ending?: StreamStep) {
  const parsed = parseBody(raw, "PullRequest");
  if (!parsed.ok) return errorResponse(400, parsed.error);
  const req = parsed.body;
  const name = typeof req.model === "string" && req.model !== ""
    ? req.model
    : typeof req.name === "string"
    ? req.name
    : "";
  if (!validName(name)) return errorResponse(400, "invalid model name");
  const model = findInLibrary(state, name);
  const installed = model !== undefined && state.models.includes(model);
  // An unknown model: the registry answers 404 to the manifest request (os.ErrNotExist).
  const failure = "pull model manifest: file does not exist";
  const lines = model ? pullLines(model, installed) : [{ status: "pulling manifest" }];
  const finish = () => {
    if (model && !state.models.includes(model)) state.models.push(model);
  };
  if (req.stream === false && after === undefined) {
    if (!model) return errorResponse(500, failure);
    finish();
    return jsonResponse(200, { status: "success" });
  }
  let i = 0;
  const count = after === undefined ? lines.length : Math.min(after, lines.length);
  return streamResponse(managedStream(state, ctx, () => {
    const delayMs = i > 0 ? state.tokenDelayMs : 0;
    if (i < count) {
      const value = lines[i++];
      return { delayMs, bytes: () => line(value) };
    }
    i++;
    if (ending) return { ...ending, delayMs };
    if (!model) return { delayMs, bytes: () => line({ error: failure }), end: "close" };
    finish();
    return { delayMs, bytes: () => line({ status: "success" }), end: "close" };
  }));
}

function handleDelete(state: State, raw: string): Response {
  const parsed = parseBody(raw, "DeleteRequest");
  if (!parsed.ok) return errorResponse(400, parsed.error);
  const req = parsed.body;
  const name = typeof req.model === "string" && req.model !== ""
    ? req.model
    : typeof req.name === "string"
    ? req.name
    : "";
  if (!validName(name)) return errorResponse(400, `name ${goQuote(name)} is invalid`);
  const model = findModel(state, name);
  if (!model) return errorResponse(404, `model '${name}' not found`);
  state.models.splice(state.models.indexOf(model), 1);
  state.loaded.delete(shortName(model));
  // DeleteHandler writes nothing on success: 200 with an empty body.
  return new Response(null, { status: 200 });
}

// ---------------------------------------------------------------------------
// Faults

function takeFault(state: State, path: string): Fault | undefined {
  // The first fault for this path (or for any path); background requests to other paths
  // (a client's health checks) leave a fault meant for generations alone.
  const index = state.faults.findIndex((f) => f.path === undefined || f.path === path);
  if (index < 0) return undefined;
  const entry = state.faults[index];
  if (--entry.remaining <= 0) state.faults.splice(index, 1);
  return entry.fault;
}

function faultChunk(path: string, body: Json, token: string): Json {
  const name = typeof body.model === "string" ? body.model : "";
  if (path === "/api/chat") {
    return {
      model: name,
      created_at: createdAt(),
      message: { role: "assistant", content: token },
      done: false,
    };
  }
  return { model: name, created_at: createdAt(), response: token, done: false };
}

function faultTokens(path: string, body: Json): string[] {
  if (path === "/api/chat") {
    const last = chatMessages(body.messages).findLast((m) => m.role === "user");
    return tokenize(`Echo: ${last?.content ?? ""}`);
  }
  return tokenize(`Echo: ${typeof body.prompt === "string" ? body.prompt : ""}`);
}

function tokenStream(
  state: State,
  ctx: Ctx,
  path: string,
  raw: string,
  after: number,
  ending: StreamStep,
): Response {
  const parsed = parseBody(raw, "GenerateRequest");
  const body = parsed.ok ? parsed.body : {};
  const tokens = path === "/api/generate" || path === "/api/chat" ? faultTokens(path, body) : [];
  const count = tokens.length ? after : 0;
  let i = 0;
  return streamResponse(managedStream(state, ctx, () => {
    const delayMs = i > 0 ? state.tokenDelayMs : 0;
    if (i < count) {
      const token = tokens[i++ % tokens.length];
      return { delayMs, bytes: () => line(faultChunk(path, body, token)) };
    }
    i++;
    return { ...ending, delayMs };
  }));
}

/** Re-emits a response body one byte every `intervalMs`. */
function trickle(state: State, ctx: Ctx, response: Response, intervalMs: number): Response {
  const reader = response.body?.getReader();
  let buffer = new Uint8Array(0);
  let offset = 0;
  let first = true;
  const next = async (): Promise<StreamStep> => {
    while (offset >= buffer.length) {
      const chunk = reader ? await reader.read() : undefined;
      if (!chunk || chunk.done) return { end: "close" };
      buffer = chunk.value;
      offset = 0;
    }
    const byte = buffer.slice(offset, offset + 1);
    offset++;
    const delayMs = first ? 0 : intervalMs;
    first = false;
    return { delayMs, bytes: () => byte };
  };
  // Cancelling the trickle must also release the inner body.
  const body = managedStream(state, ctx, next, () => void reader?.cancel().catch(() => {}));
  return new Response(body, { status: response.status, headers: response.headers });
}

async function faultResponse(
  state: State,
  ctx: Ctx,
  fault: Fault,
  path: string,
  raw: string,
  normal: (ctx: Ctx) => Promise<Response>,
): Promise<Response> {
  switch (fault.kind) {
    case "status":
      return errorResponse(fault.status, fault.error);
    case "non-json":
      return new Response(fault.body, {
        status: fault.status ?? 502,
        headers: { "content-type": fault.contentType ?? "text/html; charset=utf-8" },
      });
    case "error-in-stream": {
      const ending: StreamStep = {
        bytes: () => encoder.encode(`${goJson({ error: fault.error })}\n`),
        end: "close",
      };
      if (path === "/api/pull") return handlePull(state, ctx, raw, fault.afterTokens, ending);
      return tokenStream(state, ctx, path, raw, fault.afterTokens, ending);
    }
    case "drop":
      if (path === "/api/pull") {
        return handlePull(state, ctx, raw, fault.afterTokens, { end: "error" });
      }
      return tokenStream(state, ctx, path, raw, fault.afterTokens, { end: "error" });
    case "stall":
      if (path === "/api/pull") {
        return handlePull(state, ctx, raw, fault.afterTokens, { end: "hang" });
      }
      return tokenStream(state, ctx, path, raw, fault.afterTokens, { end: "hang" });
    case "hang-after-headers":
      return streamResponse(managedStream(state, ctx, () => ({ end: "hang" })));
    case "slow-load":
      // Real Ollama writes no headers until the model is loaded and the first chunk is ready.
      await sleep(state, fault.ms);
      return await normal(ctx);
    case "trickle": {
      const inner = await normal({ ...ctx, countStream: false });
      return trickle(state, ctx, inner, fault.intervalMs);
    }
  }
}

// ---------------------------------------------------------------------------
// Routing

const ROUTES: Record<string, string[]> = {
  "/": ["GET", "HEAD"],
  "/api/version": ["GET", "HEAD"],
  "/api/tags": ["GET", "HEAD"],
  "/api/ps": ["GET"],
  "/api/show": ["POST"],
  "/api/generate": ["POST"],
  "/api/chat": ["POST"],
  "/api/embed": ["POST"],
  "/api/pull": ["POST"],
  "/api/delete": ["DELETE"],
};

async function route(
  state: State,
  ctx: Ctx,
  method: string,
  path: string,
  raw: string,
): Promise<Response> {
  switch (path) {
    case "/":
      return method === "HEAD"
        ? new Response(null, {
          status: 200,
          headers: { "content-type": "text/plain; charset=utf-8" },
        })
        : textResponse(200, "Ollama is running");
    case "/api/version":
      return jsonResponse(200, { version: state.version });
    case "/api/tags":
      return handleTags(state);
    case "/api/ps":
      return handlePs(state);
    case "/api/show":
      return handleShow(state, raw);
    case "/api/generate":
      return await handleGenerate(state, ctx, raw);
    case "/api/chat":
      return await handleChat(state, ctx, raw);
    case "/api/embed":
      return handleEmbed(state, ctx, raw);
    case "/api/pull":
      return handlePull(state, ctx, raw);
    case "/api/delete":
      return handleDelete(state, raw);
    default:
      return textResponse(404, "404 page not found");
  }
}

async function handle(state: State, request: Request): Promise<Response> {
  const ctx: Ctx = { start: performance.now(), countStream: true };
  const path = new URL(request.url).pathname;
  const raw = request.body ? await request.text() : "";
  state.requests.push({ method: request.method, path, body: recordedBody(raw) });
  for (const waiter of [...state.requestWaiters]) if (waiter.path === path) waiter.resolve();

  const methods = ROUTES[path];
  if (!methods) return textResponse(404, "404 page not found");
  if (!methods.includes(request.method)) return textResponse(405, "405 method not allowed");
  const normal = (c: Ctx) => route(state, c, request.method, path, raw);
  const fault = FAULTABLE.has(path) ? takeFault(state, path) : undefined;
  try {
    return fault ? await faultResponse(state, ctx, fault, path, raw, normal) : await normal(ctx);
  } catch (e) {
    return errorResponse(500, e instanceof Error ? e.message : String(e));
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
 * const ollama = await startOllamaDouble({ tokenDelayMs: 5 });
 * const res = await fetch(`${ollama.url}/api/tags`);
 * await res.body?.cancel();
 * await ollama.close();
 * ```
 */
export async function startOllamaDouble(options: OllamaDoubleOptions = {}): Promise<OllamaDouble> {
  const state: State = {
    models: [...(options.models ?? DEFAULT_MODELS)],
    library: [...(options.library ?? LIBRARY_MODELS)],
    version: options.version ?? DEFAULT_VERSION,
    tokenDelayMs: options.tokenDelayMs ?? 0,
    requests: [],
    openStreams: 0,
    streamsStarted: 0,
    peakOpenStreams: 0,
    chunksSent: 0,
    faults: [],
    streams: new Set(),
    sleeps: new Set(),
    loaded: new Map(),
    streamWaiters: new Set(),
    requestWaiters: new Set(),
    toolCalls: 0,
    scripts: [],
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
    port: addr.port,
    get requests() {
      return state.requests;
    },
    get installed() {
      return state.models.map(shortName);
    },
    get openStreams() {
      return state.openStreams;
    },
    get streamsStarted() {
      return state.streamsStarted;
    },
    get peakOpenStreams() {
      return state.peakOpenStreams;
    },
    get chunksSent() {
      return state.chunksSent;
    },
    get tokenDelayMs() {
      return state.tokenDelayMs;
    },
    set tokenDelayMs(ms: number) {
      state.tokenDelayMs = ms;
    },
    failNext(fault: Fault, times = 1, path?: string) {
      if (times > 0) state.faults.push({ fault, remaining: times, ...(path && { path }) });
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
        for (const stream of [...state.streams]) stream.abort();
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
      "token-delay-ms": { type: "string", default: "0" },
    },
  });
  let double: OllamaDouble;
  try {
    double = await startOllamaDouble({
      port: Number(values.port),
      tokenDelayMs: Number(values["token-delay-ms"]),
    });
  } catch (error) {
    if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    console.error(
      `error: port ${values.port} is in use (a real Ollama?): stop it, or pick another port ` +
        "with --port N (0 picks a free one) and export the OLLAMA_HOST line this prints.",
    );
    Deno.exit(1);
  }
  console.log(`listening ${double.url}`);
  // What `rune` needs to find it (11434 is where it looks by default).
  console.log(`export OLLAMA_HOST=${double.host}`);
  const stop = async () => {
    await double.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", stop);
}
