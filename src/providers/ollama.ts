/**
 * The Ollama provider: Ollama's REST API over native `fetch`.
 *
 * This file is the only place that knows Ollama's wire format. Streaming
 * endpoints are parsed incrementally as NDJSON; every call runs under four
 * deadlines (connect, first token, idle between chunks, total), and an
 * abort or expired deadline cancels the HTTP body so Ollama stops
 * generating.
 *
 * @module
 */

import {
  CapabilityError,
  ConnectionDroppedError,
  InvalidResponseError,
  ModelNotFoundError,
  ProviderError,
  ProviderTimeoutError,
  ProviderUnreachableError,
  type TimeoutPhase,
  UpstreamError,
} from "./errors.ts";
import { DEFAULT_MAX_LINE_LENGTH, parseNdjson, preview } from "./ndjson.ts";
import { DEFAULT_OLLAMA_URL, displayAddress } from "./ollama_host.ts";
import type {
  CallOptions,
  Capabilities,
  ChatRequest,
  Chunk,
  EmbedRequest,
  EmbedResult,
  FinalResult,
  GenerateRequest,
  Message,
  ModelDetails,
  ModelInfo,
  ModelOptions,
  Provider,
  ToolCall,
  Usage,
} from "./types.ts";

/** Deadlines of one call, in milliseconds. */
export interface OllamaTimeouts {
  /** Until the response headers arrive. Default 10 s. */
  connectMs: number;
  /** From the headers to the first streamed chunk (model loading). Default 300 s. */
  firstTokenMs: number;
  /** Between two streamed chunks. Default 60 s. */
  idleMs: number;
  /** Whole call. Default 1 800 s. */
  totalMs: number;
}

/** Default deadlines, generous enough for large models on slow machines. */
export const DEFAULT_OLLAMA_TIMEOUTS: OllamaTimeouts = {
  connectMs: 10_000,
  firstTokenMs: 300_000,
  idleMs: 60_000,
  totalMs: 1_800_000,
};

/** Options of {@linkcode createOllamaProvider}. */
export interface OllamaProviderOptions {
  /** Base URL, already resolved (see `parseOllamaHost`). Default `http://127.0.0.1:11434`. */
  baseUrl?: string;
  /** Deadlines; missing fields take {@linkcode DEFAULT_OLLAMA_TIMEOUTS}. */
  timeouts?: Partial<OllamaTimeouts>;
  /** How long `/api/tags` and `/api/show` answers are reused. Default 2 000 ms. */
  cacheMs?: number;
  /** Longest accepted NDJSON line. Default 16 MiB. */
  maxLineLength?: number;
  /** The `fetch` to use (tests). Default the global `fetch`. */
  fetch?: typeof fetch;
}

interface OllamaMessage {
  role: string;
  content?: string;
  thinking?: string;
  images?: string[] | null;
  tool_calls?: {
    function: { name: string; arguments: Record<string, unknown> };
  }[];
  tool_name?: string;
}

/** Token counts and durations (nanoseconds) Ollama reports when a call ends. */
interface OllamaStats {
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
}

interface OllamaStreamLine extends OllamaStats {
  model?: string;
  response?: string;
  thinking?: string;
  message?: OllamaMessage;
  done?: boolean;
  done_reason?: string;
  error?: string;
}

interface OllamaTagModel {
  name: string;
  model?: string;
  modified_at?: string;
  size?: number;
  details?: {
    family?: string;
    parameter_size?: string;
    quantization_level?: string;
  };
}

interface OllamaRunningModel {
  name?: string;
  model?: string;
  expires_at?: string;
  size_vram?: number;
}

interface OllamaShow {
  details?: OllamaTagModel["details"];
  model_info?: Record<string, unknown>;
  capabilities?: string[];
  modified_at?: string;
  template?: string;
  parameters?: string;
  license?: string;
}

interface Cached<T> {
  at: number;
  value: Promise<T>;
}

/**
 * Creates the Ollama provider.
 *
 * @example
 * ```ts
 * const ollama = createOllamaProvider({ baseUrl: parseOllamaHost(Deno.env.get("OLLAMA_HOST")) });
 * for await (const chunk of ollama.generate({ model: "llama3.2", prompt: "Hi" })) {
 *   if (chunk.type === "text") console.log(chunk.text);
 * }
 * ```
 */
export function createOllamaProvider(
  options: OllamaProviderOptions = {},
): Provider {
  const baseUrl = (options.baseUrl ?? DEFAULT_OLLAMA_URL).replace(/\/+$/, "");
  const address = displayAddress(baseUrl);
  const timeouts = { ...DEFAULT_OLLAMA_TIMEOUTS, ...options.timeouts };
  const cacheMs = options.cacheMs ?? 2_000;
  const maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  const doFetch = options.fetch ?? fetch;
  let tags: Cached<ModelInfo[]> | undefined;
  const shows = new Map<string, Cached<ModelDetails>>();

  const ctx: CallContext = { baseUrl, address, timeouts, doFetch, clock: new DeadlineClock() };

  function cached<T>(
    entry: Cached<T> | undefined,
    load: () => Promise<T>,
  ): Cached<T> {
    if (entry && performance.now() - entry.at < cacheMs) return entry;
    const fresh = { at: performance.now(), value: load() };
    // A failed load must not be reused.
    fresh.value.catch(() => {
      fresh.at = -Infinity;
    });
    return fresh;
  }

  async function listModels(call: CallOptions = {}): Promise<ModelInfo[]> {
    // Shared across callers, so one caller's abort must not fail the others.
    tags = cached(tags, async () => {
      // /api/ps says which models are loaded; an Ollama too old for it still lists models.
      const [body, running] = await Promise.all([
        requestJson<{ models?: OllamaTagModel[] }>(ctx, { method: "GET", path: "/api/tags" }),
        requestJson<{ models?: OllamaRunningModel[] }>(ctx, { method: "GET", path: "/api/ps" })
          .catch(() => undefined),
      ]);
      const loaded = new Map((running?.models ?? []).map((m) => [m.name ?? m.model, m]));
      return (body.models ?? []).map((model) => toModelInfo(model, loaded.get(model.name)));
    });
    return await withSignal(tags.value, call.signal);
  }

  async function showModel(
    model: string,
    call: CallOptions = {},
  ): Promise<ModelDetails> {
    const name = normalizeModelName(model);
    const previous = shows.get(name);
    const entry = cached(previous, async () => {
      const body = await requestJson<OllamaShow>(ctx, {
        method: "POST",
        path: "/api/show",
        payload: { model },
        model,
      });
      return toModelDetails(name, body);
    });
    if (entry !== previous) {
      shows.delete(name);
      // Bounded: any client can ask about any name, and failed lookups must not pile up.
      if (shows.size >= MAX_CACHED_MODELS) shows.delete(shows.keys().next().value!);
      shows.set(name, entry);
      entry.value.catch(() => {
        if (shows.get(name) === entry) shows.delete(name);
      });
    }
    return await withSignal(entry.value, call.signal);
  }

  async function requireCapabilities(
    model: string,
    needed: (keyof Capabilities)[],
    call: CallOptions,
  ): Promise<void> {
    if (needed.length === 0) return;
    const details = await showModel(model, call);
    // An Ollama too old to report capabilities decides for itself.
    if (!details.capabilitiesKnown) return;
    for (const capability of needed) {
      if (!details.capabilities[capability]) {
        throw capabilityError(model, capability);
      }
    }
  }

  function invalidate(error: unknown): void {
    // A model that vanished (or was just pulled) must not be served from cache.
    if (error instanceof ModelNotFoundError) {
      tags = undefined;
      shows.delete(normalizeModelName(error.model));
    }
  }

  /** Streams one completion after checking the capabilities the request needs. */
  function complete(
    path: string,
    body: Record<string, unknown>,
    needed: (keyof Capabilities)[],
    call: CallOptions & { model: string },
  ): AsyncGenerator<Chunk> {
    // Hooks instead of a wrapping generator: every chunk would pass through one more layer.
    return streamCompletion(ctx, {
      ...call,
      method: "POST",
      path,
      payload: { ...body, stream: true },
      maxLineLength,
      before: () => requireCapabilities(call.model, needed, call),
      onError: invalidate,
    });
  }

  function generate(request: GenerateRequest, call: CallOptions = {}): AsyncGenerator<Chunk> {
    const body = {
      model: request.model,
      prompt: request.prompt,
      ...(request.system !== undefined && { system: request.system }),
      ...(request.images?.length && { images: request.images }),
      ...commonFields(request),
    };
    const needed = neededFor({ images: request.images, think: request.think });
    return complete("/api/generate", body, needed, { ...call, model: request.model });
  }

  function chat(request: ChatRequest, call: CallOptions = {}): AsyncGenerator<Chunk> {
    const body = {
      model: request.model,
      messages: request.messages.map(toOllamaMessage),
      ...(request.tools?.length && {
        tools: request.tools.map((tool) => ({
          type: "function",
          function: {
            name: tool.name,
            description: tool.description ?? "",
            parameters: tool.parameters ?? { type: "object", properties: {} },
          },
        })),
      }),
      ...commonFields(request),
    };
    const images = request.messages.flatMap((m) => m.images ?? []);
    const needed = neededFor({ images, tools: request.tools, think: request.think });
    return complete("/api/chat", body, needed, { ...call, model: request.model });
  }

  async function embed(
    request: EmbedRequest,
    call: CallOptions = {},
  ): Promise<EmbedResult> {
    const payload = {
      model: request.model,
      input: request.input,
      ...(request.truncate !== undefined && { truncate: request.truncate }),
      ...(request.keepAlive !== undefined && { keep_alive: request.keepAlive }),
    };
    try {
      const body = await requestJson<OllamaStats & { model?: string; embeddings?: number[][] }>(
        ctx,
        {
          ...call,
          method: "POST",
          path: "/api/embed",
          payload,
          model: request.model,
          headersPhase: "first-token",
        },
      );
      if (!Array.isArray(body.embeddings)) {
        throw new InvalidResponseError(
          `Ollama at ${address} answered /api/embed without an "embeddings" array: is it a current Ollama (0.3.4 or newer)?`,
        );
      }
      return {
        model: body.model ?? request.model,
        embeddings: body.embeddings,
        usage: toUsage(body),
      };
    } catch (error) {
      invalidate(error);
      throw error;
    }
  }

  async function ping(call: CallOptions = {}): Promise<string> {
    const body = await requestJson<{ version?: string }>(ctx, {
      ...call,
      method: "GET",
      path: "/api/version",
    });
    return body.version ?? "unknown";
  }

  return {
    id: "ollama",
    address,
    capabilities: () => ({
      completion: true,
      streaming: true,
      vision: true,
      tools: true,
      embeddings: true,
      thinking: true,
    }),
    listModels,
    showModel,
    generate,
    chat,
    embed,
    ping,
  };
}

/** Most model details kept in the `/api/show` cache. */
const MAX_CACHED_MODELS = 256;

/** Everything a single HTTP exchange with Ollama needs. */
interface CallContext {
  baseUrl: string;
  address: string;
  timeouts: OllamaTimeouts;
  doFetch: typeof fetch;
  /** Serves the deadlines of this provider's calls. */
  clock: DeadlineClock;
}

interface ExchangeRequest extends CallOptions {
  /** HTTP method. */
  method: "GET" | "POST";
  /** API path, e.g. `/api/tags`. */
  path: string;
  /** JSON body, if any. */
  payload?: unknown;
  /** Model named in the request, for error messages. */
  model?: string;
  /** Deadline while waiting for the response headers. Default `connect`. */
  headersPhase?: TimeoutPhase;
}

/** Ollama normalises `name` to `name:latest`; caches key on that. */
function normalizeModelName(model: string): string {
  return model.includes(":") ? model : `${model}:latest`;
}

/** The capabilities a request needs beyond plain completion. */
function neededFor(
  { images, tools, think }: { images?: string[]; tools?: unknown[]; think?: boolean },
): (keyof Capabilities)[] {
  const needed: (keyof Capabilities)[] = [];
  if (images?.length) needed.push("vision");
  if (tools?.length) needed.push("tools");
  if (think) needed.push("thinking");
  return needed;
}

const CAPABILITY_ADVICE: Record<keyof Capabilities, string> = {
  completion: 'pick a text model such as "llama3.2"',
  streaming: "use a streaming-capable model",
  vision: 'pick a vision model such as "llava" or "llama3.2-vision"',
  tools: 'pick a model with tool support such as "llama3.2" or "qwen3"',
  embeddings: 'pick an embedding model such as "nomic-embed-text" or "all-minilm"',
  thinking: 'pick a thinking model such as "qwen3" or "deepseek-r1", or leave "think" off',
};

function capabilityError(
  model: string,
  capability: keyof Capabilities,
  cause?: unknown,
): CapabilityError {
  const what = capability === "vision" ? "images" : capability;
  return new CapabilityError(
    model,
    capability,
    `Model "${model}" does not support ${what}: ${CAPABILITY_ADVICE[capability]}.`,
    { cause },
  );
}

function commonFields(
  request: GenerateRequest | ChatRequest,
): Record<string, unknown> {
  const options = toOllamaOptions(request.options);
  return {
    ...(request.format !== undefined && { format: request.format }),
    ...(options && { options }),
    ...(request.think !== undefined && { think: request.think }),
    ...(request.keepAlive !== undefined && { keep_alive: request.keepAlive }),
  };
}

function toOllamaOptions(
  options: ModelOptions | undefined,
): Record<string, unknown> | undefined {
  if (!options) return undefined;
  const mapped: Record<string, unknown> = {};
  if (options.temperature !== undefined) {
    mapped.temperature = options.temperature;
  }
  if (options.topP !== undefined) mapped.top_p = options.topP;
  if (options.topK !== undefined) mapped.top_k = options.topK;
  if (options.seed !== undefined) mapped.seed = options.seed;
  if (options.maxTokens !== undefined) mapped.num_predict = options.maxTokens;
  if (options.stop !== undefined) mapped.stop = options.stop;
  if (options.contextLength !== undefined) {
    mapped.num_ctx = options.contextLength;
  }
  return Object.keys(mapped).length ? mapped : undefined;
}

function toOllamaMessage(message: Message): OllamaMessage {
  return {
    role: message.role,
    content: message.content,
    ...(message.thinking !== undefined && { thinking: message.thinking }),
    ...(message.images?.length && { images: message.images }),
    ...(message.toolCalls?.length && {
      tool_calls: message.toolCalls.map((call) => ({
        function: { name: call.name, arguments: call.arguments },
      })),
    }),
    ...(message.toolName !== undefined && { tool_name: message.toolName }),
  };
}

function toModelInfo(model: OllamaTagModel, running?: OllamaRunningModel): ModelInfo {
  return {
    ...(running && {
      loaded: {
        ...(running.expires_at && { expiresAt: running.expires_at }),
        ...(running.size_vram !== undefined && { sizeVram: running.size_vram }),
      },
    }),
    name: model.name ?? model.model,
    ...(model.size !== undefined && { size: model.size }),
    ...(model.details?.family && { family: model.details.family }),
    ...(model.details?.parameter_size &&
      { parameterSize: model.details.parameter_size }),
    ...(model.details?.quantization_level &&
      { quantization: model.details.quantization_level }),
    ...(model.modified_at && { modifiedAt: model.modified_at }),
  };
}

/** Maps Ollama's capability names onto the provider-neutral flags. */
export function toCapabilities(names: readonly string[]): Capabilities {
  const has = (name: string) => names.includes(name);
  return {
    completion: has("completion"),
    streaming: has("completion"),
    vision: has("vision"),
    tools: has("tools"),
    embeddings: has("embedding"),
    thinking: has("thinking"),
  };
}

function toModelDetails(name: string, show: OllamaShow): ModelDetails {
  const info = show.model_info ?? {};
  const contextKey = Object.keys(info).find((key) => key.endsWith(".context_length"));
  const contextLength = contextKey ? Number(info[contextKey]) : undefined;
  return {
    name,
    ...(show.details?.family && { family: show.details.family }),
    ...(show.details?.parameter_size &&
      { parameterSize: show.details.parameter_size }),
    ...(show.details?.quantization_level &&
      { quantization: show.details.quantization_level }),
    ...(show.modified_at && { modifiedAt: show.modified_at }),
    capabilities: toCapabilities(show.capabilities ?? ["completion"]),
    capabilitiesKnown: Array.isArray(show.capabilities),
    ...(contextLength !== undefined && Number.isFinite(contextLength) &&
      { contextLength }),
    extra: {
      ...(show.parameters !== undefined && { parameters: show.parameters }),
      ...(show.template !== undefined && { template: show.template }),
      ...(show.license !== undefined && { license: show.license }),
    },
  };
}

const NS_PER_MS = 1_000_000;

function toUsage(line: OllamaStats): Usage {
  const ms = (ns: number | undefined) => ns === undefined ? undefined : ns / NS_PER_MS;
  const usage: Usage = {
    promptTokens: line.prompt_eval_count,
    completionTokens: line.eval_count,
    totalMs: ms(line.total_duration),
    loadMs: ms(line.load_duration),
    promptMs: ms(line.prompt_eval_duration),
    generationMs: ms(line.eval_duration),
  };
  for (const key of Object.keys(usage) as (keyof Usage)[]) {
    if (usage[key] === undefined) delete usage[key];
  }
  return usage;
}

/**
 * One call's deadlines: a watchdog re-armed at each phase plus the total
 * limit, merged with the caller's signal.
 */
interface Deadline {
  signal: AbortSignal;
  arm(phase: TimeoutPhase): void;
  dispose(): void;
}

/** A call's deadline as {@linkcode DeadlineClock} sees it. */
interface ClockEntry {
  /** When the call expires (`performance.now()` time). */
  dueAt: number;
  /** Aborts the call; the clock has already dropped it. */
  expire(): void;
}

/** Longest delay `setTimeout` takes as given; longer ones fire at once. */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

/**
 * One timer for the deadlines of all of a provider's calls in flight, set
 * for the earliest one. Timers were a visible part of each call's CPU
 * time; with calls overlapping, the timer is set once and calls only join
 * and leave a set. It is cleared when no call is left, so it never keeps
 * the process alive.
 */
class DeadlineClock {
  #entries = new Set<ClockEntry>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  /** Starts watching `entry`. */
  add(entry: ClockEntry): void {
    this.#entries.add(entry);
    this.moved(entry);
  }

  /** Stops watching `entry`. */
  remove(entry: ClockEntry): void {
    this.#entries.delete(entry);
    if (this.#entries.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
  }

  /** Tells the clock `entry.dueAt` changed; a later deadline needs no new timer. */
  moved(entry: ClockEntry): void {
    // An entry already expired or removed must not set a timer nobody clears.
    if (entry.dueAt >= this.#timerAt || !this.#entries.has(entry)) return;
    clearTimeout(this.#timer);
    this.#timerAt = entry.dueAt;
    const delay = Math.min(Math.max(entry.dueAt - performance.now(), 0), MAX_TIMER_DELAY);
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    const expired: ClockEntry[] = [];
    let next: ClockEntry | undefined;
    for (const entry of this.#entries) {
      if (entry.dueAt <= now) expired.push(entry);
      else if (next === undefined || entry.dueAt < next.dueAt) next = entry;
    }
    for (const entry of expired) this.#entries.delete(entry);
    if (next !== undefined) this.moved(next);
    // Last, so whatever aborting runs sees the clock consistent.
    for (const entry of expired) entry.expire();
  }
}

function createDeadline(
  ctx: CallContext,
  signal: AbortSignal | undefined,
): Deadline {
  const controller = new AbortController();
  const limits: Record<TimeoutPhase, number> = {
    connect: ctx.timeouts.connectMs,
    "first-token": ctx.timeouts.firstTokenMs,
    idle: ctx.timeouts.idleMs,
    total: ctx.timeouts.totalMs,
  };
  const totalAt = performance.now() + limits.total;
  let phase: TimeoutPhase = "connect";
  let phaseAt = Infinity;
  const entry: ClockEntry = {
    dueAt: totalAt,
    expire() {
      // The earlier deadline is the one that ran out.
      const which = phaseAt <= totalAt ? phase : "total";
      controller.abort(timeoutError(ctx, which, limits[which]));
    },
  };
  // Forwarding the caller's abort costs less than `AbortSignal.any` per call.
  const forward = () => controller.abort(signal?.reason);
  if (signal?.aborted) forward();
  else signal?.addEventListener("abort", forward, { once: true });
  ctx.clock.add(entry);
  return {
    signal: controller.signal,
    arm(next) {
      phase = next;
      phaseAt = performance.now() + limits[next];
      entry.dueAt = Math.min(phaseAt, totalAt);
      ctx.clock.moved(entry);
    },
    dispose() {
      signal?.removeEventListener("abort", forward);
      ctx.clock.remove(entry);
    },
  };
}

function timeoutError(
  ctx: CallContext,
  phase: TimeoutPhase,
  ms: number,
): ProviderTimeoutError {
  const seconds = `${ms / 1000}s`;
  const text: Record<TimeoutPhase, string> = {
    connect:
      `Ollama at ${ctx.address} did not answer within ${seconds} (connect timeout): is it overloaded or hung? Check "ollama ps", or raise --connect-timeout.`,
    "first-token":
      `Ollama at ${ctx.address} sent nothing back within ${seconds} (first-token timeout): the model may still be loading, or Ollama is busy with other requests; retry, or raise --first-token-timeout.`,
    idle:
      `Ollama at ${ctx.address} went silent for ${seconds} in the middle of a reply (idle timeout): it may be stuck or overloaded; retry, or raise --idle-timeout.`,
    total:
      `The call to Ollama at ${ctx.address} took longer than ${seconds} (total timeout): ask for fewer tokens, or raise --total-timeout.`,
  };
  return new ProviderTimeoutError(phase, ms, text[phase]);
}

/** Re-raises an abort as the reason the call's own signal carries. */
function abortReason(signal: AbortSignal, fallback: unknown): unknown {
  return signal.aborted ? signal.reason : fallback;
}

/**
 * Sends one request and returns the response once its headers are in,
 * mapping HTTP and network failures onto typed errors.
 */
async function exchange(
  ctx: CallContext,
  request: ExchangeRequest & { deadline: Deadline },
): Promise<Response> {
  const { method, path, payload, deadline } = request;
  // Ollama sends no headers before the model is loaded and the first chunk is ready, so for
  // model calls the wait for headers is the first-token wait, not a connect wait.
  deadline.arm(request.headersPhase ?? "connect");
  let response: Response;
  try {
    response = await ctx.doFetch(`${ctx.baseUrl}${path}`, {
      method,
      signal: deadline.signal,
      ...(payload !== undefined && {
        body: JSON.stringify(payload),
        headers: {
          "content-type": "application/json",
          accept: "application/x-ndjson, application/json",
        },
      }),
    });
  } catch (error) {
    if (deadline.signal.aborted) throw deadline.signal.reason;
    throw new ProviderUnreachableError(
      `Cannot reach Ollama at ${ctx.address}: is "ollama serve" running? Set OLLAMA_HOST or --ollama-host if it listens elsewhere.`,
      { cause: error },
    );
  }
  if (response.ok) return response;
  const text = await response.text().catch(() => "");
  throw httpError(ctx, { response, text, model: request.model });
}

/** Maps an HTTP error reply onto a typed error. */
function httpError(
  ctx: CallContext,
  { response, text, model }: { response: Response; text: string; model?: string },
): ProviderError {
  let message: string | undefined;
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.error === "string") message = parsed.error;
  } catch {
    // Not JSON: reported below with a preview of the body.
  }
  if (message === undefined) {
    return new InvalidResponseError(
      `Ollama at ${ctx.address} answered HTTP ${response.status} with a body that is not an Ollama error (${
        response.headers.get("content-type") ?? "no content type"
      }: ${
        preview(text)
      }): is OLLAMA_HOST pointing at Ollama and not at a proxy or another service?`,
    );
  }
  return upstreamError(ctx, { status: response.status, message, model });
}

/** Maps an error Ollama reported (`status` 200: inside a stream) onto a typed error. */
function upstreamError(
  ctx: CallContext,
  { status, message, model }: { status: number; message: string; model?: string },
): ProviderError {
  const cause = new Error(message);
  if (
    model && (status === 404 || /not found/i.test(message)) &&
    /model/i.test(message)
  ) {
    return new ModelNotFoundError(
      model,
      `Model "${model}" is not installed on Ollama at ${ctx.address}: run "ollama pull ${model}", or pick one from "rune ai list".`,
      { cause },
    );
  }
  const unsupported = /does not support (\w+)/i.exec(message);
  if (model && unsupported) {
    const word = unsupported[1].toLowerCase();
    const capability: keyof Capabilities = word.startsWith("embed")
      ? "embeddings"
      : word.startsWith("image") || word.startsWith("vision")
      ? "vision"
      : word.startsWith("think")
      ? "thinking"
      : word.startsWith("tool")
      ? "tools"
      : "completion";
    return capabilityError(model, capability, cause);
  }
  const where = status === 200 ? "in the middle of the reply" : `with HTTP ${status}`;
  return new UpstreamError(
    status,
    `Ollama at ${ctx.address} reported an error ${where}: ${message}${
      status >= 500 || status === 200 ? " (check the Ollama server log)" : ""
    }`,
    { cause },
  );
}

/** A JSON request/response call under the connect and total deadlines. */
async function requestJson<T>(ctx: CallContext, request: ExchangeRequest): Promise<T> {
  const { path } = request;
  const deadline = createDeadline(ctx, request.signal);
  try {
    const response = await exchange(ctx, { ...request, deadline });
    deadline.arm("first-token");
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw abortReason(
        deadline.signal,
        new ConnectionDroppedError(
          `Ollama at ${ctx.address} closed the connection before finishing its reply to ${path}: check the Ollama server log and retry.`,
          { cause: error },
        ),
      );
    }
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new InvalidResponseError(
        `Ollama at ${ctx.address} answered ${path} with something that is not JSON (${
          response.headers.get("content-type") ?? "no content type"
        }: ${preview(text)}): is OLLAMA_HOST pointing at Ollama?`,
        { cause },
      );
    }
  } finally {
    deadline.dispose();
  }
}

/** Options of {@linkcode streamCompletion}. */
interface StreamOptions extends ExchangeRequest {
  maxLineLength: number;
  /** Runs before the request (capability checks); its errors skip `onError`. */
  before?: () => Promise<void>;
  /** Sees every error of the exchange before it propagates. */
  onError?: (error: unknown) => void;
}

/**
 * Posts a streaming request and turns Ollama's NDJSON lines into chunks.
 * Leaving the loop early (abort, error, consumer `break`) cancels the body.
 */
async function* streamCompletion(
  ctx: CallContext,
  options: StreamOptions,
): AsyncGenerator<Chunk> {
  const { path } = options;
  await options.before?.();
  const deadline = createDeadline(ctx, options.signal);
  const model = options.model ?? "";
  let text = "";
  let thinking = "";
  const toolCalls: ToolCall[] = [];
  let lines = 0;
  try {
    const response = await exchange(ctx, { ...options, deadline, headersPhase: "first-token" });
    if (!response.body) {
      throw new InvalidResponseError(
        `Ollama at ${ctx.address} sent an empty reply to ${path}.`,
      );
    }
    const type = response.headers.get("content-type") ?? "";
    if (!type.includes("ndjson") && !type.includes("json")) {
      const body = await response.text().catch(() => "");
      throw new InvalidResponseError(
        `Ollama at ${ctx.address} answered ${path} with ${
          type || "no content type"
        } instead of NDJSON (${
          preview(body)
        }): is OLLAMA_HOST pointing at Ollama and not at a proxy or another service?`,
      );
    }
    deadline.arm("first-token");
    const iterator = parseNdjson(response.body, {
      maxLineLength: options.maxLineLength,
      signal: deadline.signal,
    });
    try {
      while (true) {
        let next: IteratorResult<unknown>;
        try {
          next = await iterator.next();
        } catch (error) {
          if (deadline.signal.aborted) throw deadline.signal.reason;
          if (error instanceof ProviderError) throw error;
          throw new ConnectionDroppedError(
            `Ollama at ${ctx.address} closed the connection in the middle of the reply after ${lines} chunks: it may have crashed or run out of memory; check the Ollama server log and retry.`,
            { cause: error },
          );
        }
        if (next.done) break;
        lines++;
        deadline.arm("idle");
        const line = next.value as OllamaStreamLine;
        if (typeof line !== "object" || line === null) {
          throw new InvalidResponseError(
            `Ollama at ${ctx.address} sent a stream line that is not an object.`,
          );
        }
        if (typeof line.error === "string") {
          throw upstreamError(ctx, { status: 200, message: line.error, model });
        }
        const delta = line.response ?? line.message?.content ?? "";
        const thought = line.thinking ?? line.message?.thinking ?? "";
        if (thought) {
          thinking += thought;
          yield { type: "thinking", text: thought };
        }
        if (delta) {
          text += delta;
          yield { type: "text", text: delta };
        }
        const calls = line.message?.tool_calls;
        if (calls?.length) {
          const mapped = calls.map((call) => ({
            name: call.function.name,
            arguments: call.function.arguments ?? {},
          }));
          toolCalls.push(...mapped);
          yield { type: "tool_calls", toolCalls: mapped };
        }
        if (line.done) {
          const result: FinalResult = {
            model: line.model ?? model,
            text,
            ...(thinking && { thinking }),
            toolCalls,
            doneReason: line.done_reason ?? "stop",
            usage: toUsage(line),
          };
          yield { type: "done", result };
          return;
        }
      }
    } finally {
      await iterator.return(undefined);
    }
    throw new ConnectionDroppedError(
      `Ollama at ${ctx.address} ended the reply after ${lines} chunks without a final "done" chunk: it may have crashed; check the Ollama server log and retry.`,
    );
  } catch (error) {
    options.onError?.(error);
    throw error;
  } finally {
    deadline.dispose();
  }
}

/** Waits for `promise` but gives up (with the signal's reason) on abort. */
function withSignal<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
