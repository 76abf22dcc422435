/**
 * The OpenAI-compatible provider: Chat Completions, embeddings and model
 * listing over native `fetch`, through the shared HTTP layer (deadlines,
 * byte budgets, error mapping). One provider type covers OpenAI itself,
 * OpenRouter, Groq, Together, DeepSeek, Mistral, Azure OpenAI's v1 API,
 * vLLM, llama.cpp's server, LM Studio and Ollama's `/v1`; each configured
 * server is one instance with its own id, base URL and credential.
 *
 * This folder is the only place that knows the wire format: `wire.ts`
 * (reply shapes), `convert.ts` (mapping and the per-dialect rules),
 * `stream.ts` (streamed calls), `send.ts` (auth and retries), `errors.ts`
 * (error replies).
 *
 * @module
 */

import { type ByteLimits, DEFAULT_BYTE_LIMITS } from "../budget.ts";
import type { CredentialSource } from "../credential.ts";
import { DeadlineClock, DEFAULT_TIMEOUTS, type Timeouts } from "../deadline.ts";
import { InvalidResponseError, ModelNotFoundError, UpstreamError } from "../errors.ts";
import { exchange, type HttpRequest, type HttpUpstream, requestJson, startCall } from "../http.ts";
import { DEFAULT_MAX_LINE_LENGTH } from "../ndjson.ts";
import type { RetryOptions } from "../retry.ts";
import type {
  CallOptions,
  Capabilities,
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
  type BodyContext,
  chatBody,
  type Dialect,
  dialectOf,
  embedBody,
  generateBody,
  toModelInfo,
  toUsage,
} from "./convert.ts";
import { openAiHttpError, type OpenAiSource } from "./errors.ts";
import { type Access, send } from "./send.ts";
import { streamChat } from "./stream.ts";
import { embeddingsShape, modelsShape, type OpenAiEmbeddings } from "./wire.ts";

/** OpenAI's API, as `OPENAI_BASE_URL` defaults in the official SDKs (the base includes `/v1`). */
export const DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1";

/** Options of {@linkcode createOpenAiProvider}. */
export interface OpenAiProviderOptions {
  /**
   * Provider id, in tool names and `provider/model` names.
   * @default "openai"
   */
  id?: string;
  /**
   * Name for people, in messages.
   * @default "OpenAI"
   */
  label?: string;
  /**
   * Base URL including the version path, as `OPENAI_BASE_URL` takes it:
   * `https://openrouter.ai/api/v1`, `http://127.0.0.1:8000/v1` (vLLM),
   * `http://127.0.0.1:1234/v1` (LM Studio), `http://127.0.0.1:11434/v1`
   * (Ollama), `https://RESOURCE.openai.azure.com/openai/v1` (Azure).
   * @default "https://api.openai.com/v1"
   */
  baseUrl?: string;
  /**
   * Where the base URL is configured, for messages.
   * @default "OPENAI_BASE_URL" for id "openai", else `the base_url of provider "<id>"`
   */
  baseUrlSetting?: string;
  /** Where the key comes from, read for every request; absent for a keyless local server. */
  credential?: CredentialSource;
  /**
   * Which header carries the key: `authorization` sends `Bearer <key>`;
   * `api-key` sends the key alone, as Azure OpenAI takes it.
   * @default "authorization"
   */
  authHeader?: "authorization" | "api-key";
  /** Extra headers on every request (OpenRouter's `HTTP-Referer`, `OpenAI-Organization`...). */
  headers?: Record<string, string>;
  /**
   * Query parameters on every request, e.g. Azure's `{"api-version": "2024-10-21"}`
   * for a deployment base URL.
   */
  query?: Record<string, string>;
  /** Models to list when the server has no `/models` (it answers 404, 405 or 501, or not JSON). */
  models?: string[];
  /**
   * Which rules requests follow (see `convert.ts`): `openai` for OpenAI's
   * own API, `compatible` for every other server.
   * @default "openai" when the base URL's host is api.openai.com, else "compatible"
   */
  dialect?: Dialect;
  /** Deadlines; missing fields take `DEFAULT_TIMEOUTS` (10 s connect, 300 s first token, 60 s idle, 1 800 s total). */
  timeouts?: Partial<Timeouts>;
  /** Byte budgets; missing fields take `DEFAULT_BYTE_LIMITS` (64 MiB reply, 64 KiB error, 16 MiB stream). */
  limits?: Partial<ByteLimits>;
  /** Retries before the first token; `withRetries`' defaults (2 retries, 500 ms base, 30 s longest wait). */
  retry?: RetryOptions;
  /** Called before each retry's wait, with the failure, the retry's number and the wait (metrics). */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /**
   * Longest accepted server-sent event, in characters.
   * @default 16 MiB
   */
  maxEventLength?: number;
  /** The `fetch` to use (tests). Default the global `fetch`. */
  fetch?: typeof fetch;
}

/** Every capability a Chat Completions server may have; per model, only the server knows. */
const ALL_CAPABILITIES: Capabilities = {
  completion: true,
  streaming: true,
  vision: true,
  tools: true,
  embeddings: true,
  thinking: true,
};

/** HTTP statuses of a server without `GET /models`. */
const NO_LISTING = new Set([404, 405, 501]);

/** `host[:port]/path` of a base URL, for messages. */
function displayAddress(baseUrl: string): string {
  const url = new URL(baseUrl);
  return url.host + url.pathname.replace(/\/+$/, "");
}

/**
 * Creates an OpenAI-compatible provider.
 *
 * @example
 * ```ts
 * const openai = createOpenAiProvider({
 *   credential: fixedCredential(Deno.env.get("OPENAI_API_KEY")!, "OPENAI_API_KEY"),
 * });
 * for await (const chunk of openai.generate({ model: "gpt-4o-mini", prompt: "Hi" })) {
 *   if (chunk.type === "text") console.log(chunk.text);
 * }
 * ```
 */
export function createOpenAiProvider(options: OpenAiProviderOptions = {}): Provider {
  const id = options.id ?? "openai";
  const label = options.label ?? "OpenAI";
  const baseUrl = (options.baseUrl ?? DEFAULT_OPENAI_BASE_URL).replace(/\/+$/, "");
  const address = displayAddress(baseUrl);
  const dialect = options.dialect ?? dialectOf(baseUrl);
  const baseUrlSetting = options.baseUrlSetting ??
    (id === "openai" ? "OPENAI_BASE_URL" : `the base_url of provider "${id}"`);
  const query = options.query && Object.keys(options.query).length
    ? `?${new URLSearchParams(options.query)}`
    : "";
  const maxEventLength = options.maxEventLength ?? DEFAULT_MAX_LINE_LENGTH;
  const configured = options.models ? [...options.models] : undefined;
  const source: OpenAiSource = {
    id,
    name: label,
    address,
    baseUrlSetting,
    ...(options.credential && { credential: options.credential.describe }),
  };
  const upstream: HttpUpstream = {
    name: label,
    address,
    baseUrl,
    unreachableHint: dialect === "openai"
      ? "check this machine's network connection and proxy settings."
      : `is the server running there? Check ${baseUrlSetting}.`,
    addressSetting: baseUrlSetting,
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
    limits: { ...DEFAULT_BYTE_LIMITS, ...options.limits },
    fetch: options.fetch ?? fetch,
    clock: new DeadlineClock(),
    // Lower-cased, so a configured header and the key's header cannot both go out.
    ...(options.headers && {
      headers: Object.fromEntries(
        Object.entries(options.headers).map(([name, value]) => [name.toLowerCase(), value]),
      ),
    }),
    httpError: (reply) => openAiHttpError(source, reply),
  };
  const access: Access = {
    credential: options.credential,
    authHeader: options.authHeader ?? "authorization",
    retry: options.retry ?? {},
    ...(options.onRetry && { onRetry: options.onRetry }),
  };
  // Cleared for good once the server refuses stream_options (usage then stays empty).
  let streamOptions = true;

  function context(): BodyContext {
    return { id, label, dialect, streamOptions };
  }

  async function call<T>(request: HttpRequest, shape: Shape<T>): Promise<T> {
    const value = await send(
      access,
      (headers) =>
        requestJson(upstream, {
          ...request,
          path: request.path + query,
          headers,
          accept: "application/json",
        }),
      { signal: request.signal },
    );
    return checkReply(value, shape, upstream, request.path);
  }

  /** The server's models, or why it has no listing (404, 405, 501, or not a model list). */
  async function serverModels(
    options: CallOptions,
  ): Promise<{ models: ModelInfo[] } | { missing: Error }> {
    try {
      const body = await call({ ...options, method: "GET", path: "/models" }, modelsShape);
      return { models: body.data.map(toModelInfo) };
    } catch (error) {
      if (error instanceof UpstreamError && NO_LISTING.has(error.status)) return { missing: error };
      // A web page or something else that is not a model list.
      if (error instanceof InvalidResponseError) return { missing: error };
      throw error;
    }
  }

  async function listModels(options: CallOptions = {}): Promise<ModelInfo[]> {
    const listed = await serverModels(options);
    if ("models" in listed) return listed.models;
    if (configured) return configured.map((name) => ({ name }));
    const { missing } = listed;
    const what = missing instanceof UpstreamError
      ? `HTTP ${missing.status} on /models`
      : "/models answered with something that is not a model list";
    throw new UpstreamError(
      missing instanceof UpstreamError ? missing.status : 200,
      `${label} at ${address} has no model listing (${what}): name the server's models in the "models" of provider "${id}", or check that ${baseUrlSetting} is the API's base URL (usually ending in /v1).`,
      { cause: missing, retryable: false },
    );
  }

  async function showModel(model: string, options: CallOptions = {}): Promise<ModelDetails> {
    const listed = await serverModels(options);
    // Without a listing, whether the model exists is the server's business.
    const models = "models" in listed ? listed.models : undefined;
    const found = models?.find((m) => m.name === model);
    if (models && !found) {
      throw new ModelNotFoundError(
        model,
        `Model "${model}" is not among the ${models.length} models ${label} at ${address} lists: pick one from "rune ai list --provider ${id}" (or ai_list_models), and check its spelling.`,
      );
    }
    return guessDetails(found ?? { name: model });
  }

  function complete(
    payload: Record<string, unknown>,
    options: CallOptions & { model: string },
  ): AsyncGenerator<Chunk> {
    return streamChat(upstream, {
      payload,
      model: options.model,
      source,
      access,
      maxEventLength,
      query,
      signal: options.signal,
      onStreamOptionsRefused: () => (streamOptions = false),
    });
  }

  function generate(request: GenerateRequest, options: CallOptions = {}): AsyncGenerator<Chunk> {
    let payload;
    try {
      payload = generateBody(request, context());
    } catch (error) {
      return failing(error as Error);
    }
    return complete(payload, { ...options, model: request.model });
  }

  function chat(request: ChatRequest, options: CallOptions = {}): AsyncGenerator<Chunk> {
    let payload;
    try {
      payload = chatBody(request, context());
    } catch (error) {
      return failing(error as Error);
    }
    return complete(payload, { ...options, model: request.model });
  }

  async function embed(request: EmbedRequest, options: CallOptions = {}): Promise<EmbedResult> {
    const payload = embedBody(request, context());
    const body = await call(
      {
        ...options,
        method: "POST",
        path: "/embeddings",
        payload,
        model: request.model,
        headersPhase: "first-token",
      },
      embeddingsShape,
    );
    const inputs = typeof request.input === "string" ? 1 : request.input.length;
    return {
      model: body.model ?? request.model,
      embeddings: vectors(body, { inputs, source }),
      usage: toUsage(body.usage),
    };
  }

  async function ping(options: CallOptions = {}): Promise<string> {
    return await send(access, async (headers) => {
      const deadline = startCall(upstream, options.signal);
      try {
        const response = await exchange(upstream, {
          method: "GET",
          path: `/models${query}`,
          deadline,
          headers,
        });
        await response.body?.cancel();
        return response.headers.get("openai-version") ?? "unknown";
      } catch (error) {
        // A server without a model listing still answered.
        if (error instanceof UpstreamError && NO_LISTING.has(error.status)) return "unknown";
        throw error;
      } finally {
        deadline.dispose();
      }
    }, { signal: options.signal });
  }

  return {
    id,
    type: "openai",
    label,
    address,
    capabilities: () => ({ ...ALL_CAPABILITIES }),
    listModels,
    showModel,
    generate,
    chat,
    embed,
    ping,
  };
}

/** What a model can do, guessed from its name: Chat Completions servers do not say. */
function guessDetails(model: ModelInfo): ModelDetails {
  const embedding = /embed/i.test(model.name);
  const thinking = /(^|[-/])(o\d|gpt-5|r1|qwq)|reason|think|qwen3|gpt-oss/i.test(model.name);
  return {
    ...model,
    capabilities: {
      completion: !embedding,
      streaming: !embedding,
      vision: !embedding,
      tools: !embedding,
      embeddings: embedding,
      thinking: !embedding && thinking,
    },
    capabilitiesKnown: false,
    extra: { ...(model.family && { owned_by: model.family }) },
  };
}

/** The vectors in input order, checked against the number of inputs; base64 decoded. */
function vectors(
  body: OpenAiEmbeddings,
  { inputs, source }: { inputs: number; source: OpenAiSource },
): number[][] {
  const out: number[][] = new Array(inputs);
  for (const row of body.data) {
    if (row.index >= inputs || out[row.index] !== undefined) {
      throw new InvalidResponseError(
        `Invalid response from ${source.name} at ${source.address}: /embeddings returned ${
          row.index >= inputs
            ? `index ${row.index} for ${inputs} inputs`
            : `index ${row.index} twice`
        }: is ${source.baseUrlSetting} pointing at an OpenAI-compatible API?`,
      );
    }
    out[row.index] = typeof row.embedding === "string"
      ? decodeFloat32(row.embedding, source)
      : row.embedding;
  }
  if (body.data.length !== inputs) {
    throw new InvalidResponseError(
      `Invalid response from ${source.name} at ${source.address}: /embeddings returned ${body.data.length} vectors for ${inputs} inputs: is ${source.baseUrlSetting} pointing at an OpenAI-compatible API?`,
    );
  }
  return out;
}

/** A base64 embedding (`encoding_format: "base64"`): little-endian float32s. */
function decodeFloat32(text: string, source: OpenAiSource): number[] {
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch (cause) {
    throw new InvalidResponseError(
      `Invalid response from ${source.name} at ${source.address}: /embeddings returned an embedding that is neither numbers nor base64.`,
      { cause },
    );
  }
  if (bytes.byteLength % 4 !== 0) {
    throw new InvalidResponseError(
      `Invalid response from ${source.name} at ${source.address}: /embeddings returned a base64 embedding of ${bytes.byteLength} bytes, not whole float32s.`,
    );
  }
  const view = new DataView(bytes.buffer);
  return Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
}

/** A chunk stream that fails when read, like any other call that fails. */
// deno-lint-ignore require-yield
async function* failing(error: Error): AsyncGenerator<Chunk> {
  throw error;
}
