/**
 * Anthropic's error replies mapped onto typed errors with messages that say
 * what to do: an HTTP error body (`{"type":"error","error":{"type",
 * "message"},"request_id"}`) or an `error` event in the middle of a
 * stream. The error types and statuses are those of Anthropic's errors
 * reference (400 `invalid_request_error`, 401 `authentication_error`, 402
 * `billing_error`, 403 `permission_error`, 404 `not_found_error`, 413
 * `request_too_large`, 429 `rate_limit_error`, 500 `api_error`, 504
 * `timeout_error`, 529 `overloaded_error`). Also the retry policy: which of
 * these a retry can cure.
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionDroppedError,
  ModelNotFoundError,
  OverloadedError,
  type ProviderError,
  ProviderUnreachableError,
  RateLimitError,
  RequestTooLargeError,
  UpstreamError,
  type UpstreamErrorOptions,
} from "../errors.ts";
import { describeBody, type ErrorReply } from "../http.ts";
import { parseRetryAfter, type RetryJudge } from "../retry.ts";
import { errorBodySchema } from "./wire.ts";

/** Who answered, for the messages. */
export interface AnthropicSource {
  /** Provider id, e.g. `anthropic` (for "rune ai list --provider ID"). */
  id: string;
  /** Display name, e.g. `Anthropic`. */
  name: string;
  /** `host[:port]` for messages. */
  address: string;
  /** Where the key comes from (`ANTHROPIC_API_KEY`, ...), or undefined when none is configured. */
  credential?: string;
  /** Where the base URL is configured, for advice. */
  addressSetting: string;
}

/** What Anthropic said went wrong. */
interface Reported {
  /** Anthropic's error type, e.g. `rate_limit_error`. */
  type: string;
  /** Anthropic's message. */
  message: string;
  /** `request_id` of the body or the `request-id` header, for support. */
  requestId?: string;
  /** False when the body was not Anthropic's (a proxy's page): only the status is known. */
  fromAnthropic?: boolean;
}

/** Maps an HTTP error reply from Anthropic onto a typed error. */
export function anthropicHttpError(source: AnthropicSource, reply: ErrorReply): ProviderError {
  const requestId = reply.headers?.get("request-id") ?? undefined;
  let reported: Reported | undefined;
  if (!reply.truncated) {
    try {
      const parsed = errorBodySchema.safeParse(JSON.parse(reply.text));
      if (parsed.success) {
        const id = parsed.data.request_id ?? requestId;
        reported = { ...parsed.data.error, ...(id && { requestId: id }) };
      }
    } catch {
      // Not JSON (a proxy's page): the status still says what happened.
    }
  }
  const retryAfterMs = retryAfter(reply.headers);
  if (!reported) {
    // Without Anthropic's body, the status decides; the body's start shows who answered.
    const body = describeBody(reply.contentType, reply.text, reply.truncated);
    reported = {
      type: typeForStatus(reply.status),
      message: `a reply that is not an Anthropic error (${body})`,
      fromAnthropic: false,
    };
  }
  return anthropicError(source, {
    status: reply.status,
    ...reported,
    path: reply.path,
    ...(reply.model !== undefined && { model: reply.model }),
    ...(retryAfterMs !== undefined && { retryAfterMs }),
  });
}

/** Maps an `error` event inside a stream onto a typed error (status 200: the stream had begun). */
export function anthropicStreamError(
  source: AnthropicSource,
  { type, message, model }: { type: string; message: string; model?: string },
): ProviderError {
  return anthropicError(source, {
    status: 200,
    type,
    message,
    path: "/v1/messages",
    ...(model !== undefined && { model }),
  });
}

/** The error type Anthropic uses for `status`, when a body did not say. */
function typeForStatus(status: number): string {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 504:
      return "timeout_error";
    case 529:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

function anthropicError(
  source: AnthropicSource,
  report: Reported & {
    status: number;
    path: string;
    model?: string;
    retryAfterMs?: number;
  },
): ProviderError {
  const { status, type, message, model, retryAfterMs } = report;
  const { name, address } = source;
  const cause = new Error(message);
  const options: UpstreamErrorOptions = {
    cause,
    errorType: type,
    ...(retryAfterMs !== undefined && { retryAfterMs }),
  };
  const said = `(${status === 200 ? "" : `HTTP ${status} `}${type}: ${message}${
    report.requestId ? `; request id ${report.requestId}` : ""
  })`;
  const at = `${name} at ${address}`;
  const midStream = status === 200 ? " in the middle of the reply" : "";
  switch (type) {
    case "authentication_error":
      return new AuthenticationError(
        status,
        source.credential ?? "no API key",
        source.credential
          ? `${at} rejected the API key from ${source.credential} ${said}: check that ${source.credential} holds a current ${name} key (keys are listed in the Anthropic Console), and replace it if it was revoked.`
          : `${at} requires an API key and none is configured ${said}: set ANTHROPIC_API_KEY, or api_key_env for this provider in the configuration file.`,
        options,
      );
    case "permission_error":
      return new AuthenticationError(
        status,
        source.credential ?? "no API key",
        `The API key${
          source.credential ? ` from ${source.credential}` : ""
        } may not use this on ${at} ${said}: use a key of a workspace that has access${
          model ? ` to "${model}"` : ""
        }, or pick another model.`,
        options,
      );
    case "not_found_error":
      // Anthropic says "model: <name>"; a bare 404 page means the address is wrong instead.
      if (model && report.fromAnthropic !== false && /model/i.test(message)) {
        return new ModelNotFoundError(
          model,
          `Model "${model}" is not available on ${at} ${said}: list the models this key can use with "rune ai list --provider ${source.id}" (or the ai_${source.id}_list_models tool), and check the spelling.`,
          { cause },
        );
      }
      return new UpstreamError(
        status,
        `${at} has no ${report.path} ${said}: is ${source.addressSetting} pointing at Anthropic's API (https://api.anthropic.com)?`,
        options,
      );
    case "rate_limit_error":
      return new RateLimitError(
        status,
        `${at} is rate limiting this account${midStream} ${said}: ${
          retryAfterMs !== undefined
            ? `retry in ${formatSeconds(retryAfterMs)} (Anthropic's retry-after)`
            : "wait a minute and retry"
        }; lasting limits are raised in the Anthropic Console (Settings, Limits).`,
        options,
      );
    case "overloaded_error":
      return new OverloadedError(
        status,
        `${at} is temporarily overloaded${midStream} ${said}: this is Anthropic's capacity, not your account; retry in ${
          retryAfterMs !== undefined ? formatSeconds(retryAfterMs) : "a few seconds"
        }, or pick another model.`,
        options,
      );
    case "request_too_large":
      return new RequestTooLargeError(
        status,
        `The request is larger than ${at} accepts ${said}: the Messages API takes at most 32 MB per request; send fewer or smaller images, or a shorter conversation.`,
        options,
      );
    case "billing_error":
      return new UpstreamError(
        status,
        `${at} refused the request for billing reasons ${said}: add credits or a payment method in the Anthropic Console (Settings, Billing).`,
        options,
      );
    case "invalid_request_error":
      return new UpstreamError(
        status,
        `${at} refused the request as invalid${midStream} ${said}: fix what Anthropic names (an argument, a message or a limit of the model) and retry.`,
        options,
      );
    case "timeout_error":
      return new UpstreamError(
        status,
        `${at} timed out processing the request${midStream} ${said}: retry, or ask for fewer tokens.`,
        options,
      );
    default:
      if (report.fromAnthropic === false) {
        return new UpstreamError(
          status,
          `${at} answered ${report.path} with HTTP ${status} and ${message}: a proxy or gateway between Rune and ${name} may have failed; retry, and check ${source.addressSetting}.`,
          options,
        );
      }
      return new UpstreamError(
        status,
        `${at} reported an error${midStream} ${said}: ${
          status >= 500 || status === 200
            ? "this is on Anthropic's side; retry in a moment (status.anthropic.com shows incidents)."
            : "check the request and retry."
        }`,
        options,
      );
  }
}

/** `retry-after` (seconds or a date), or Anthropic's `retry-after-ms`, in milliseconds. */
function retryAfter(headers: Headers | undefined): number | undefined {
  const ms = Number.parseFloat(headers?.get("retry-after-ms") ?? "");
  if (Number.isFinite(ms) && ms >= 0) return ms;
  return parseRetryAfter(headers?.get("retry-after") ?? null);
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

/**
 * What a retry can cure before the first token: rate limits, overload,
 * Anthropic's internal errors and timeouts (HTTP 5xx or an `api_error`,
 * `overloaded_error` or `timeout_error` event), a refused or reset
 * connection, and a stream that broke before any token.
 */
export const ANTHROPIC_RETRY_JUDGE: RetryJudge = {
  retryable(error) {
    if (error instanceof RateLimitError || error instanceof OverloadedError) return true;
    if (error instanceof AuthenticationError) return false;
    if (error instanceof UpstreamError) {
      if (error.status >= 500) return true;
      return error.status === 200 &&
        ["api_error", "overloaded_error", "timeout_error"].includes(error.errorType ?? "");
    }
    if (error instanceof ProviderUnreachableError) {
      return error.reason === "reset" || error.reason === "refused";
    }
    return error instanceof ConnectionDroppedError;
  },
  retryAfterMs: (error) => error instanceof UpstreamError ? error.retryAfterMs : undefined,
};
