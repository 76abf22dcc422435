/**
 * The Ollama provider: Ollama's REST API over native `fetch`, through the
 * shared HTTP layer (deadlines, byte budgets, error mapping).
 *
 * This folder is the only place that knows Ollama's wire format:
 * `wire.ts` (reply shapes), `convert.ts` (mapping), `stream.ts` (streamed
 * calls), `errors.ts` (Ollama's error texts), `keep_alive.ts` (Go
 * durations), `manage.ts` and `pull.ts` (model management).
 *
 * @module
 */

import { type ByteLimits, DEFAULT_BYTE_LIMITS } from "../budget.ts";
import {
  type Capability,
  type CapabilityAdvice,
  neededFor,
  requireCapabilities,
} from "../capabilities.ts";
import { DeadlineClock, DEFAULT_TIMEOUTS, type Timeouts } from "../deadline.ts";
import { ArgumentError, ModelNotFoundError } from "../errors.ts";
import { keepAliveError } from "./keep_alive.ts";
import { type HttpRequest, type HttpUpstream, requestJson } from "../http.ts";
import { DEFAULT_MAX_LINE_LENGTH } from "../ndjson.ts";
import { DEFAULT_OLLAMA_URL, displayAddress } from "../ollama_host.ts";
import type {
  CallOptions,
  ChatRequest,
  Chunk,
  EmbedRequest,
  EmbedResult,
  GenerateRequest,
  ModelDetails,
  ModelInfo,
  Provider,
} from "../types.ts";
import { checkReply, type Shape } from "../validate.ts";
import {
  chatBody,
  embedBody,
  generateBody,
  normalizeModelName,
  toModelDetails,
  toModelInfo,
  toUsage,
} from "./convert.ts";
import { ollamaError, ollamaHttpError } from "./errors.ts";
import { createOllamaManagement } from "./manage.ts";
import { DEFAULT_PULL_IDLE_MS } from "./pull.ts";
import { streamCompletion } from "./stream.ts";
import { embedShape, psShape, showShape, tagsShape, versionShape } from "./wire.ts";

/** Deadlines of one call, in milliseconds. */
export type OllamaTimeouts = Timeouts;

/** Default deadlines, generous enough for large models on slow machines. */
export const DEFAULT_OLLAMA_TIMEOUTS: Readonly<Timeouts> = DEFAULT_TIMEOUTS;

/** Options of {@linkcode createOllamaProvider}. */
export interface OllamaProviderOptions {
  /**
   * Provider id, in tool names and `provider/model` names.
   * @default "ollama"
   */
  id?: string;
  /** Base URL, already resolved (see `parseOllamaHost`). Default `http://127.0.0.1:11434`. */
  baseUrl?: string;
  /** Deadlines; missing fields take {@linkcode DEFAULT_OLLAMA_TIMEOUTS}. */
  timeouts?: Partial<Timeouts>;
  /** Byte budgets; missing fields take `DEFAULT_BYTE_LIMITS` (64 MiB reply, 64 KiB error, 16 MiB stream). */
  limits?: Partial<ByteLimits>;
  /** How long `/api/tags` and `/api/show` answers are reused. Default 2 000 ms. */
  cacheMs?: number;
  /** Longest accepted NDJSON line. Default 16 MiB. */
  maxLineLength?: number;
  /** The `fetch` to use (tests). Default the global `fetch`. */
  fetch?: typeof fetch;
  /**
   * Longest silence from Ollama during a pull, in milliseconds (a pull has
   * no total limit; Ollama writes nothing while it verifies a download).
   * @default 900_000 (15 minutes)
   */
  pullIdleMs?: number;
}

/** What to pick instead, with models Ollama's library has. */
const OLLAMA_ADVICE: CapabilityAdvice = {
  completion: 'pick a text model such as "llama3.2"',
  streaming: "use a streaming-capable model",
  vision: 'pick a vision model such as "llava" or "llama3.2-vision"',
  tools: 'pick a model with tool support such as "llama3.2" or "qwen3"',
  embeddings: 'pick an embedding model such as "nomic-embed-text" or "all-minilm"',
  thinking: 'pick a thinking model such as "qwen3" or "deepseek-r1", or leave "think" off',
};

/** Most model details kept in the `/api/show` cache. */
const MAX_CACHED_MODELS = 256;

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
export function createOllamaProvider(options: OllamaProviderOptions = {}): Provider {
  const baseUrl = (options.baseUrl ?? DEFAULT_OLLAMA_URL).replace(/\/+$/, "");
  const address = displayAddress(baseUrl);
  const cacheMs = options.cacheMs ?? 2_000;
  const maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  const source = { address, advice: OLLAMA_ADVICE };
  const upstream: HttpUpstream = {
    name: "Ollama",
    address,
    baseUrl,
    unreachableHint:
      'is "ollama serve" running? Set OLLAMA_HOST or --ollama-host if it listens elsewhere.',
    addressSetting: "OLLAMA_HOST or --ollama-host",
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
    limits: { ...DEFAULT_BYTE_LIMITS, ...options.limits },
    fetch: options.fetch ?? fetch,
    clock: new DeadlineClock(),
    httpError: (reply) => ollamaHttpError(source, reply),
  };
  let tags: Cached<ModelInfo[]> | undefined;
  const shows = new Map<string, Cached<ModelDetails>>();

  async function call<T>(request: HttpRequest, shape: Shape<T>): Promise<T> {
    const value = await requestJson(upstream, request);
    return checkReply(value, shape, upstream, request.path);
  }

  function cached<T>(entry: Cached<T> | undefined, load: () => Promise<T>): Cached<T> {
    if (entry && performance.now() - entry.at < cacheMs) return entry;
    const fresh = { at: performance.now(), value: load() };
    // A failed load must not be reused.
    fresh.value.catch(() => {
      fresh.at = -Infinity;
    });
    return fresh;
  }

  async function listModels(options: CallOptions = {}): Promise<ModelInfo[]> {
    // Shared across callers, so one caller's abort must not fail the others.
    tags = cached(tags, async () => {
      // /api/ps says which models are loaded; an Ollama too old for it still lists models.
      const [body, running] = await Promise.all([
        call({ method: "GET", path: "/api/tags" }, tagsShape),
        call({ method: "GET", path: "/api/ps" }, psShape).catch(() => undefined),
      ]);
      const loaded = new Map((running?.models ?? []).map((m) => [m.name ?? m.model, m]));
      return (body.models ?? []).map((model) => toModelInfo(model, loaded.get(model.name)));
    });
    return await withSignal(tags.value, options.signal);
  }

  async function showModel(model: string, options: CallOptions = {}): Promise<ModelDetails> {
    const name = normalizeModelName(model);
    const previous = shows.get(name);
    const entry = cached(previous, async () => {
      const body = await call(
        { method: "POST", path: "/api/show", payload: { model }, model },
        showShape,
      );
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
    return await withSignal(entry.value, options.signal);
  }

  async function requireFor(model: string, needed: Capability[], options: CallOptions) {
    if (needed.length === 0) return;
    requireCapabilities(await showModel(model, options), needed, { model, advice: OLLAMA_ADVICE });
  }

  function forget(model: string): void {
    tags = undefined;
    shows.delete(normalizeModelName(model));
  }

  function invalidate(error: unknown): void {
    // A model that vanished (or was just pulled) must not be served from cache.
    if (error instanceof ModelNotFoundError) forget(error.model);
  }

  /** Streams one completion after checking the capabilities the request needs. */
  function complete(
    path: string,
    payload: Record<string, unknown>,
    needed: Capability[],
    options: CallOptions & { model: string },
  ): AsyncGenerator<Chunk> {
    const model = options.model;
    // Hooks instead of a wrapping generator: every chunk would pass through one more layer.
    return streamCompletion(upstream, {
      ...options,
      method: "POST",
      path,
      payload,
      maxLineLength,
      before: () => requireFor(model, needed, options),
      lineError: (message) => ollamaError(source, { status: 200, message, model }),
      onError: invalidate,
    });
  }

  function generate(request: GenerateRequest, options: CallOptions = {}): AsyncGenerator<Chunk> {
    const invalid = keepAliveArgumentError(request.keepAlive);
    if (invalid) return failing(invalid);
    const needed = neededFor({ images: request.images, think: request.think });
    return complete("/api/generate", generateBody(request), needed, {
      ...options,
      model: request.model,
    });
  }

  function chat(request: ChatRequest, options: CallOptions = {}): AsyncGenerator<Chunk> {
    const invalid = keepAliveArgumentError(request.keepAlive);
    if (invalid) return failing(invalid);
    const images = request.messages.flatMap((m) => m.images ?? []);
    const needed = neededFor({ images, tools: request.tools, think: request.think });
    return complete("/api/chat", chatBody(request), needed, { ...options, model: request.model });
  }

  async function embed(request: EmbedRequest, options: CallOptions = {}): Promise<EmbedResult> {
    const invalid = keepAliveArgumentError(request.keepAlive);
    if (invalid) throw invalid;
    try {
      // Ollama's /api/embed does not check capabilities itself (the runner fails later
      // with a 500), so Rune refuses a model without "embedding" first, as for vision.
      await requireFor(request.model, ["embeddings"], options);
      const body = await call(
        {
          ...options,
          method: "POST",
          path: "/api/embed",
          payload: embedBody(request),
          model: request.model,
          headersPhase: "first-token",
        },
        embedShape,
      );
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

  async function ping(options: CallOptions = {}): Promise<string> {
    const body = await call({ ...options, method: "GET", path: "/api/version" }, versionShape);
    return body.version ?? "unknown";
  }

  return {
    id: options.id ?? "ollama",
    type: "ollama",
    label: "Ollama",
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
    modelManagement: createOllamaManagement({
      upstream,
      source,
      pullIdleMs: options.pullIdleMs ?? DEFAULT_PULL_IDLE_MS,
      forget,
    }),
  };
}

/** Waits for `promise` but gives up (with the signal's reason) on abort. */
function withSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The error for a `keep_alive` Ollama would answer 400 for, in Ollama's words; checked before sending. */
function keepAliveArgumentError(value: string | number | undefined): ArgumentError | undefined {
  if (value === undefined) return undefined;
  const problem = keepAliveError(value);
  if (problem === undefined) return undefined;
  return new ArgumentError(
    "keep_alive",
    `Invalid keep_alive for Ollama: ${problem}: use a duration such as "10m", "1h30m" or "0", or a number of seconds.`,
  );
}

/** A chunk stream that fails when read, like any other call that fails. */
// deno-lint-ignore require-yield
async function* failing(error: Error): AsyncGenerator<Chunk> {
  throw error;
}
