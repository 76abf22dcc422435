/**
 * The Anthropic Claude provider: the Messages API (`POST /v1/messages`,
 * streamed as server-sent events) and the Models API (`GET /v1/models`)
 * over native `fetch`, through the shared HTTP layer (deadlines, byte
 * budgets, error mapping) and retry policy.
 *
 * Requests are authenticated and versioned as Anthropic's documentation
 * and official SDK do: `x-api-key` (or `Authorization: Bearer` for an OAuth
 * access token), `anthropic-version: 2023-06-01`. The secret is asked of
 * the credential source on every request, and after a 401 the source is
 * asked once for a fresh one.
 *
 * This folder is the only place that knows Anthropic's wire format:
 * `wire.ts` (reply shapes), `convert.ts` (mapping), `stream.ts` (streamed
 * calls), `errors.ts` (Anthropic's error replies), `signatures.ts` (signed
 * thinking blocks to give back).
 *
 * @module
 */

import { type ByteLimits, DEFAULT_BYTE_LIMITS } from "../budget.ts";
import type { CredentialSource } from "../credential.ts";
import { type Deadline, DeadlineClock, DEFAULT_TIMEOUTS, type Timeouts } from "../deadline.ts";
import {
  AuthenticationError,
  CapabilityError,
  ModelNotFoundError,
  UpstreamError,
} from "../errors.ts";
import { exchange, type HttpRequest, type HttpUpstream, requestJson } from "../http.ts";
import { DEFAULT_MAX_LINE_LENGTH } from "../ndjson.ts";
import { displayAddress } from "../ollama_host.ts";
import { type RetryJudge, type RetryOptions, withRetries } from "../retry.ts";
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
  type BodyOptions,
  chatBody,
  DEFAULT_MAX_TOKENS,
  DEFAULT_THINKING_BUDGET,
  generateBody,
  guessedDetails,
  MIN_THINKING_BUDGET,
  toModelDetails,
  toModelInfo,
} from "./convert.ts";
import { ANTHROPIC_RETRY_JUDGE, anthropicHttpError, anthropicStreamError } from "./errors.ts";
import { SignatureMemory } from "./signatures.ts";
import { streamMessages } from "./stream.ts";
import { type AnthropicModel, modelShape, modelsPageShape } from "./wire.ts";

/** Anthropic's API address. */
export const DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com";

/**
 * The `anthropic-version` Rune speaks: the Messages API as documented for
 * 2023-06-01 (with `temperature`, `top_p` and `top_k`, which version
 * 2026-10-21 removed).
 */
export const ANTHROPIC_VERSION = "2023-06-01";

/** Models listed per `GET /v1/models` page (Anthropic's maximum). */
export const MODELS_PAGE_SIZE = 1000;

/** Most `GET /v1/models` pages read for one listing; the rest is left unread. */
export const MAX_MODEL_PAGES = 10;

/** How the secret is sent. */
export type AnthropicAuthScheme = "x-api-key" | "bearer";

/** Options of {@linkcode createAnthropicProvider}. */
export interface AnthropicProviderOptions {
  /**
   * Provider id, in tool names and `provider/model` names.
   * @default "anthropic"
   */
  id?: string;
  /**
   * Name for people, in messages and listings.
   * @default "Anthropic"
   */
  label?: string;
  /**
   * Base URL of the API, without `/v1`.
   * @default "https://api.anthropic.com"
   */
  baseUrl?: string;
  /** Where the API key (or OAuth access token) comes from; none sends no credential (a gateway). */
  credential?: CredentialSource;
  /**
   * How the secret is sent: `x-api-key` (an API key) or `bearer`
   * (`Authorization: Bearer`, an OAuth access token).
   * @default "x-api-key"
   */
  authScheme?: AnthropicAuthScheme;
  /**
   * Extra headers on every request (e.g. `anthropic-beta`); they may not
   * replace the credential or `anthropic-version` (the mapping is written for it).
   */
  headers?: Record<string, string>;
  /**
   * Models to list instead of asking `GET /v1/models` (a gateway without it,
   * or to offer a few); `showModel` describes one from its name when the
   * gateway cannot (404).
   */
  models?: string[];
  /** Deadlines; missing fields take `DEFAULT_TIMEOUTS`. */
  timeouts?: Partial<Timeouts>;
  /** Byte budgets; missing fields take `DEFAULT_BYTE_LIMITS`. */
  limits?: Partial<ByteLimits>;
  /** Retries before the first token (429, 529, 5xx, resets); see `RetryOptions` for defaults. */
  retry?: RetryOptions;
  /** Called before each retry's wait, with the failure, the retry's number and the wait (logs). */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /**
   * `max_tokens` when a call gives none (Anthropic requires it).
   * @default 4096
   */
  maxTokens?: number;
  /**
   * The thinking budget of `think: true`, in tokens (at least 1024).
   * @default 4096
   */
  thinkingBudget?: number;
  /**
   * Where the base URL is configured, for messages.
   * @default "ANTHROPIC_BASE_URL (or base_url in the configuration file)"
   */
  addressSetting?: string;
  /**
   * Longest accepted server-sent event, in characters.
   * @default 16 MiB
   */
  maxEventLength?: number;
  /** The `fetch` to use (tests). Default the global `fetch`. */
  fetch?: typeof fetch;
}

/**
 * Creates the Anthropic provider.
 *
 * @example
 * ```ts
 * const claude = createAnthropicProvider({
 *   credential: fixedCredential(Deno.env.get("ANTHROPIC_API_KEY")!, "ANTHROPIC_API_KEY"),
 * });
 * for await (const chunk of claude.generate({ model: "claude-sonnet-4-6", prompt: "Hi" })) {
 *   if (chunk.type === "text") console.log(chunk.text);
 * }
 * ```
 */
export function createAnthropicProvider(options: AnthropicProviderOptions = {}): Provider {
  const id = options.id ?? "anthropic";
  const label = options.label ?? "Anthropic";
  const baseUrl = (options.baseUrl ?? DEFAULT_ANTHROPIC_URL).replace(/\/+$/, "").replace(
    /\/v1$/,
    "",
  );
  const address = displayAddress(baseUrl);
  const credential = options.credential;
  const scheme = options.authScheme ?? "x-api-key";
  const addressSetting = options.addressSetting ??
    "ANTHROPIC_BASE_URL (or base_url in the configuration file)";
  const thinkingBudget = options.thinkingBudget ?? DEFAULT_THINKING_BUDGET;
  if (!Number.isInteger(thinkingBudget) || thinkingBudget < MIN_THINKING_BUDGET) {
    throw new RangeError(
      `thinkingBudget must be a whole number of at least ${MIN_THINKING_BUDGET}, got ${thinkingBudget}`,
    );
  }
  const source = { id, name: label, address, credential: credential?.describe, addressSetting };
  const upstream: HttpUpstream = {
    name: label,
    address,
    baseUrl,
    unreachableHint:
      `check this machine's network connection, and ${addressSetting} if ${label} should be reached elsewhere.`,
    addressSetting,
    timeouts: { ...DEFAULT_TIMEOUTS, ...options.timeouts },
    limits: { ...DEFAULT_BYTE_LIMITS, ...options.limits },
    fetch: options.fetch ?? fetch,
    clock: new DeadlineClock(),
    headers: { ...withoutCredential(options.headers), "anthropic-version": ANTHROPIC_VERSION },
    httpError: (reply) => anthropicHttpError(source, reply),
  };
  const retry = options.retry ?? {};
  const judge: RetryJudge = options.onRetry
    ? { ...ANTHROPIC_RETRY_JUDGE, onRetry: options.onRetry }
    : ANTHROPIC_RETRY_JUDGE;
  const signatures = new SignatureMemory();
  const bodyOptions: BodyOptions = {
    name: label,
    maxTokens: options.maxTokens ?? DEFAULT_MAX_TOKENS,
    thinkingBudget,
    signatures,
  };
  const maxEventLength = options.maxEventLength ?? DEFAULT_MAX_LINE_LENGTH;
  const configured = options.models?.length ? [...options.models] : undefined;

  /** The credential's headers for one request. */
  function authHeaders(secret: string | undefined): Record<string, string> {
    if (secret === undefined) return {};
    return scheme === "bearer" ? { authorization: `Bearer ${secret}` } : { "x-api-key": secret };
  }

  /**
   * Runs `send` with the current secret; after a 401 asks the credential
   * once for a fresh secret and, when it gives a different one, sends once more.
   */
  async function authorized<T>(
    send: (headers: Record<string, string>) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    const secret = credential ? await credential.get(signal) : undefined;
    try {
      return await send(authHeaders(secret));
    } catch (error) {
      if (!(error instanceof AuthenticationError) || error.status !== 401 || !credential?.refresh) {
        throw error;
      }
      const fresh = await credential.refresh(signal);
      if (fresh === undefined || fresh === secret) throw error;
      return await send(authHeaders(fresh));
    }
  }

  /** A JSON call with the credential, retried as the policy allows. */
  function call<T>(request: HttpRequest, shape: Shape<T>): Promise<T> {
    return withRetries(
      () =>
        authorized(async (headers) => {
          const value = await requestJson(upstream, {
            ...request,
            headers,
            accept: "application/json",
          });
          return checkReply(value, shape, upstream, request.path);
        }, request.signal),
      judge,
      { ...retry, ...(request.signal && { signal: request.signal }) },
    );
  }

  async function listModels(callOptions: CallOptions = {}): Promise<ModelInfo[]> {
    if (configured) return configured.map((name) => toModelInfo({ id: name }));
    const models: AnthropicModel[] = [];
    let after: string | undefined;
    for (let page = 0; page < MAX_MODEL_PAGES; page++) {
      const query = new URLSearchParams({ limit: String(MODELS_PAGE_SIZE) });
      if (after !== undefined) query.set("after_id", after);
      const body = await call(
        { ...callOptions, method: "GET", path: `/v1/models?${query}` },
        modelsPageShape,
      );
      models.push(...body.data);
      if (!body.has_more || !body.last_id || body.data.length === 0) break;
      after = body.last_id;
    }
    return models.map(toModelInfo);
  }

  async function showModel(model: string, callOptions: CallOptions = {}): Promise<ModelDetails> {
    try {
      const body = await call(
        {
          ...callOptions,
          method: "GET",
          path: `/v1/models/${encodeURIComponent(model)}`,
          model,
        },
        modelShape,
      );
      return toModelDetails(body);
    } catch (error) {
      // A gateway may serve a configured model without describing it: its name tells enough.
      const notFound = error instanceof ModelNotFoundError ||
        (error instanceof UpstreamError && error.status === 404);
      if (notFound && configured?.includes(model)) return guessedDetails(model);
      throw error;
    }
  }

  /** Streams one `POST /v1/messages` with `payload` for `model`. */
  function complete(
    payload: Record<string, unknown>,
    { model, ...callOptions }: CallOptions & { model: string },
  ): AsyncGenerator<Chunk> {
    return streamMessages(upstream, {
      model,
      ...(callOptions.signal && { signal: callOptions.signal }),
      maxEventLength,
      retry,
      judge,
      signatures,
      send: (deadline: Deadline) =>
        authorized(
          (headers) =>
            exchange(upstream, {
              method: "POST",
              path: "/v1/messages",
              payload,
              model,
              headers,
              accept: "text/event-stream",
              deadline,
              // A busy model (or a gateway in front of it) may hold the headers back: the
              // wait for them is the first-token wait, as for any model server.
              headersPhase: "first-token",
            }),
          deadline.signal,
        ),
      streamError: (error) => anthropicStreamError(source, { ...error, model }),
    });
  }

  function generate(
    request: GenerateRequest,
    callOptions: CallOptions = {},
  ): AsyncGenerator<Chunk> {
    let payload;
    try {
      payload = generateBody(request, bodyOptions);
    } catch (error) {
      return failing(error as Error);
    }
    return complete(payload, { ...callOptions, model: request.model });
  }

  function chat(request: ChatRequest, callOptions: CallOptions = {}): AsyncGenerator<Chunk> {
    let payload;
    try {
      payload = chatBody(request, bodyOptions);
    } catch (error) {
      return failing(error as Error);
    }
    return complete(payload, { ...callOptions, model: request.model });
  }

  function embed(request: EmbedRequest, _options: CallOptions = {}): Promise<EmbedResult> {
    return Promise.reject(
      new CapabilityError(
        request.model,
        "embeddings",
        `${label} has no embeddings API, so "${request.model}" cannot embed text: use an embedding model of another provider (Anthropic recommends Voyage AI), e.g. through ai_embed with an "ollama/..." or "openai/..." model.`,
      ),
    );
  }

  async function ping(callOptions: CallOptions = {}): Promise<string> {
    try {
      await call({ ...callOptions, method: "GET", path: "/v1/models?limit=1" }, modelsPageShape);
    } catch (error) {
      // A gateway without /v1/models (hence configured models) still answered, and the key passed.
      const missing = error instanceof UpstreamError && !(error instanceof AuthenticationError) &&
        error.status === 404;
      if (!(configured && missing)) throw error;
    }
    return `API ${ANTHROPIC_VERSION}`;
  }

  return {
    id,
    type: "anthropic",
    label,
    address,
    capabilities: () => ({
      completion: true,
      streaming: true,
      vision: true,
      tools: true,
      embeddings: false,
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

/** Configured headers minus any that would carry or replace the credential. */
function withoutCredential(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower !== "x-api-key" && lower !== "authorization") out[lower] = value;
  }
  return out;
}

/** A chunk stream that fails when read, like any other call that fails. */
// deno-lint-ignore require-yield
async function* failing(error: Error): AsyncGenerator<Chunk> {
  throw error;
}
