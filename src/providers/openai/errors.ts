/**
 * Error replies of OpenAI-compatible servers mapped onto typed errors, with
 * messages that say what to do: a rejected key (naming where it came from,
 * never the key), a model the server does not have (and how to list them),
 * rate limits (and when to retry), an exhausted quota, a conversation over
 * the context window, a request too large, an overloaded or failing server.
 *
 * OpenAI's body is `{"error": {"message", "type", "param", "code"}}`; other
 * servers differ (see `errorBodySchema` in `wire.ts`) or answer plain text,
 * so the message, code and type are taken from whichever shape arrived.
 * Servers can echo keys in their messages (OpenAI's 401 shows a masked
 * one), so a 401's text is never repeated and key-like words are masked in
 * every other.
 *
 * @module
 */

import {
  AuthenticationError,
  InvalidResponseError,
  ModelNotFoundError,
  type ProviderError,
  UpstreamError,
} from "../errors.ts";
import { describeBody, type ErrorReply } from "../http.ts";
import { preview } from "../ndjson.ts";
import { parseRetryAfter } from "../retry.ts";
import { errorBodySchema } from "./wire.ts";

/** Who answered, for the messages. */
export interface OpenAiSource {
  /** Provider id, e.g. `openrouter`. */
  id: string;
  /** Display name, e.g. `OpenRouter`. */
  name: string;
  /** Address for messages, e.g. `openrouter.ai/api/v1`. */
  address: string;
  /** Where the key comes from (`credential.describe`); absent for a keyless server. */
  credential?: string;
  /** Where the base URL is configured, e.g. `OPENAI_BASE_URL`. */
  baseUrlSetting: string;
}

/** What an error reply said, from whichever shape it came in. */
export interface ErrorDetail {
  /** The server's message (key-like words masked), or a preview of a body that is not JSON. */
  message: string;
  /** OpenAI's `code`, e.g. `model_not_found`, `rate_limit_exceeded`, `insufficient_quota`. */
  code?: string;
  /** OpenAI's `type`, e.g. `invalid_request_error`, `server_error`. */
  type?: string;
  /** The argument the server complained about, e.g. `messages[1].tool_call_id`. */
  param?: string;
  /** False when the body was not a recognisable error body. */
  structured: boolean;
}

/** Key-like words (`sk-...`, `sk-or-v1-...`, `gsk_...`, `xai-...`, masked `sk-abc***xyz`): never repeated in a message. */
const KEY_LIKE = /\b(?:sk|rk|pk|gsk|xai)[-_][\w*.-]{6,}/gi;

/** Masks key-like words in `text`. */
export function maskKeys(text: string): string {
  return text.replace(KEY_LIKE, "[redacted]");
}

function asText(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** How an error body arrived. */
export interface BodyFacts {
  /** True when the body was cut at the byte budget (then it is not parsed). */
  truncated?: boolean;
  /** The `content-type` header. */
  contentType?: string;
}

/** Reads an error body in any of the shapes servers use. */
export function errorDetail(text: string, facts: BodyFacts = {}): ErrorDetail {
  const { truncated = false, contentType = "" } = facts;
  let parsed: unknown;
  if (!truncated) {
    try {
      parsed = JSON.parse(text);
    } catch {
      // Plain text or HTML: previewed below.
    }
  }
  const body = parsed === undefined ? undefined : errorBodySchema.safeParse(parsed);
  if (body?.success) {
    const { error, detail } = body.data;
    const inner = typeof error === "object" && error !== null ? error : undefined;
    const message = asText(inner?.message) ??
      asText(typeof error === "string" ? error : undefined) ??
      asText(body.data.message) ?? asText(detail);
    if (message !== undefined) {
      const code = asText(inner?.code ?? body.data.code);
      const type = asText(inner?.type ?? body.data.type);
      const param = asText(inner?.param ?? body.data.param);
      return {
        message: maskKeys(shorten(message)),
        ...(code !== undefined && { code }),
        ...(type !== undefined && { type }),
        ...(param !== undefined && { param }),
        structured: true,
      };
    }
  }
  const shown = text.trim() === ""
    ? "no body"
    : contentType.includes("text/plain") && !truncated
    ? preview(text)
    : describeBody(contentType, text, truncated);
  return { message: maskKeys(shown), structured: false };
}

/** Longest server message repeated in an error, in characters. */
const MAX_MESSAGE = 1000;

function shorten(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
}

/** Maps an HTTP error reply onto a typed error. */
export function openAiHttpError(source: OpenAiSource, reply: ErrorReply): ProviderError {
  const detail = errorDetail(reply.text, reply);
  return openAiError(source, {
    status: reply.status,
    detail,
    path: reply.path,
    model: reply.model,
    retryAfterMs: reply.headers ? retryAfterFrom(reply.headers) : undefined,
  });
}

/** What {@linkcode openAiError} maps. */
export interface ErrorFacts {
  /** HTTP status; 200 for an error event inside a stream. */
  status: number;
  /** What the server said. */
  detail: ErrorDetail;
  /** API path of the request, e.g. `/chat/completions`. */
  path: string;
  /** Model named in the request. */
  model?: string;
  /** The server's requested wait, from its headers. */
  retryAfterMs?: number;
}

/** Maps an error the server reported (over HTTP or inside a stream) onto a typed error. */
export function openAiError(source: OpenAiSource, facts: ErrorFacts): ProviderError {
  const { status, detail, path, model, retryAfterMs } = facts;
  const { id, name, address, credential } = source;
  const cause = new Error(detail.message);
  const said = `HTTP ${status}: ${detail.message}`;
  const code = detail.code ?? "";
  const type = detail.type ?? "";

  if (status === 401) {
    // The text is not repeated: OpenAI's shows part of the key.
    const why = code || type ? ` (HTTP 401, ${code || type})` : " (HTTP 401)";
    return new AuthenticationError(
      status,
      credential,
      credential === undefined
        ? `${name} at ${address} requires an API key${why}, but provider "${id}" has none configured: set its key (api_key_env in its config entry, or OPENAI_API_KEY for "openai").`
        : `${name} at ${address} rejected the API key from ${credential}${why}: check that ${credential} holds a current key for ${name}, or create a new one.`,
      { cause },
    );
  }
  if (status === 403) {
    return new AuthenticationError(
      status,
      credential,
      `${name} at ${address} refused the request (${said})${
        credential === undefined ? "" : `: the key from ${credential} lacks access to it`
      }; check the key's project, permissions and region.`,
      { cause },
    );
  }
  if (model !== undefined && isModelMissing(status, detail)) {
    return new ModelNotFoundError(
      model,
      `Model "${model}" is not available on ${name} at ${address} (${said}): pick one from "rune ai list --provider ${id}" (or ai_list_models), and check its spelling.`,
      { cause },
    );
  }
  if (status === 429 || code === "rate_limit_exceeded") {
    if (code === "insufficient_quota" || type === "insufficient_quota") {
      return new UpstreamError(
        status,
        `${name} at ${address} says the account's quota is used up (${said}): check the plan and billing of the account${
          credential === undefined ? "" : ` behind ${credential}`
        }; retrying will not help.`,
        { cause, retryable: false },
      );
    }
    const when = retryAfterMs === undefined
      ? "wait a moment and retry"
      : `retry in ${formatWait(retryAfterMs)}`;
    return new UpstreamError(
      status,
      `${name} at ${address} is rate limiting requests (${said}): ${when}, or send fewer requests or tokens per minute.`,
      { cause, retryAfterMs },
    );
  }
  if (isContextExceeded(detail)) {
    return new UpstreamError(
      status,
      `The request is longer than ${
        model === undefined ? "the model" : `model "${model}"`
      }'s context window on ${name} at ${address} (${said}): shorten the messages or the prompt, ask for fewer tokens, or pick a model with a longer context.`,
      { cause, retryable: false },
    );
  }
  if (status === 413) {
    return new UpstreamError(
      status,
      `${name} at ${address} refused the request as too large (${said}): send fewer or smaller messages, images or inputs.`,
      { cause, retryable: false },
    );
  }
  if (status === 503 || status === 529 || /overloaded/i.test(`${type} ${code} ${detail.message}`)) {
    return new UpstreamError(
      status,
      `${name} at ${address} is overloaded (${said}): retry in ${
        retryAfterMs === undefined ? "a moment" : formatWait(retryAfterMs)
      }.`,
      { cause, retryAfterMs },
    );
  }
  if (status === 404) {
    return new UpstreamError(
      status,
      `${name} at ${address} has no ${path} (${said}): check that ${source.baseUrlSetting} is the API's base URL, usually ending in /v1 (e.g. http://127.0.0.1:8000/v1).`,
      { cause },
    );
  }
  if (status === 200) {
    return new UpstreamError(
      status,
      `${name} at ${address} reported an error in the middle of the reply: ${detail.message}${
        code ? ` (${code})` : ""
      }; retry, and check the server's status or log if it persists.`,
      { cause },
    );
  }
  if (status >= 500) {
    return new UpstreamError(
      status,
      `${name} at ${address} failed (${said}): a problem on the server's side; retry in a moment, and check its status page or log if it persists.`,
      { cause, retryAfterMs },
    );
  }
  if (!detail.structured) {
    return new InvalidResponseError(
      `${name} at ${address} answered ${path} with HTTP ${status} and a body that is not an API error (${detail.message}): is ${source.baseUrlSetting} pointing at an OpenAI-compatible API and not at a proxy or web page?`,
      { cause },
    );
  }
  const param = detail.param ? ` (argument ${detail.param})` : "";
  return new UpstreamError(
    status,
    `${name} at ${address} refused the request${param} (${said}): fix that argument, or leave it out for this server.`,
    { cause, retryable: false },
  );
}

function isModelMissing(status: number, detail: ErrorDetail): boolean {
  if (detail.code === "model_not_found") return true;
  if (status !== 404 && status !== 400) return false;
  const text = detail.message;
  return /model/i.test(text) &&
    /not found|does not exist|not exist|not a valid model|unknown model|no such model/i.test(text);
}

function isContextExceeded(detail: ErrorDetail): boolean {
  return detail.code === "context_length_exceeded" ||
    /maximum context length|context length|context window|context_length|prompt is too long|too many tokens/i
      .test(detail.message);
}

/** A wait as people read it: `800 ms`, `2 s`, `1.5 s`. */
export function formatWait(ms: number): string {
  if (ms < 1000) return `${Math.ceil(ms)} ms`;
  const seconds = Math.ceil(ms / 100) / 10;
  return `${seconds} s`;
}

/**
 * The server's requested wait before a retry: `retry-after-ms` (OpenAI's
 * SDK reads it), `retry-after` (seconds or a date), else OpenAI's
 * `x-ratelimit-reset-requests`/`-tokens` (`1s`, `6m0s`, `20ms`), the one
 * whose `x-ratelimit-remaining-*` is 0, or the longer.
 */
export function retryAfterFrom(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number(headers.get("retry-after-ms") ?? "");
  if (headers.get("retry-after-ms") !== null && Number.isFinite(ms) && ms >= 0) return ms;
  const after = parseRetryAfter(headers.get("retry-after"), now);
  if (after !== undefined) return after;
  let wait: number | undefined;
  for (const limit of ["requests", "tokens"]) {
    const reset = parseResetDuration(headers.get(`x-ratelimit-reset-${limit}`));
    if (reset === undefined) continue;
    if (headers.get(`x-ratelimit-remaining-${limit}`) === "0") return reset;
    wait = Math.max(wait ?? 0, reset);
  }
  return wait;
}

const RESET_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** OpenAI's reset durations: `1s`, `6m0s`, `1h2m3.5s`, `20ms`. */
export function parseResetDuration(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, n, , unit] of text.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * RESET_UNITS[unit];
  }
  return total;
}
