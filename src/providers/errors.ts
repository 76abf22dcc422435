/**
 * Typed provider errors whose messages say what failed and what to do.
 *
 * The MCP layer returns these as `isError` tool results and the CLI prints
 * them without a stack trace; every class keeps the underlying `cause`.
 *
 * @module
 */

import { RuneError } from "../errors.ts";

/** Base class of every error a provider raises for a failed upstream call. */
export class ProviderError extends RuneError {}

/** Why a backend could not be reached; see {@linkcode ProviderUnreachableError}. */
export type UnreachableReason =
  | "refused"
  | "dns"
  | "tls"
  | "reset"
  | "redirect-loop"
  | "other";

/** The backend cannot be reached at all (refused, DNS, TLS, reset before a reply, redirect loop). */
export class ProviderUnreachableError extends ProviderError {
  /** Create the error; `reason` says which network step failed. */
  constructor(
    readonly reason: UnreachableReason,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Deno refused the connection: the process lacks the `--allow-net`
 * permission for the host. Never a sign that the backend is down.
 */
export class ProviderPermissionError extends ProviderError {
  /** Create the error; `host` is the `host:port` Deno refused. */
  constructor(readonly host: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Which byte budget of a call was exceeded; see {@linkcode UpstreamTooLargeError}. */
export type ByteLimitName = "reply" | "stream";

/**
 * The backend sent more than a byte budget allows; the upstream body was
 * cancelled at once, so memory stays bounded.
 */
export class UpstreamTooLargeError extends ProviderError {
  /** Create the error for `limit` exceeded past `maxBytes`. */
  constructor(
    readonly limit: ByteLimitName,
    readonly maxBytes: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The requested model is not available on the backend. */
export class ModelNotFoundError extends ProviderError {
  /** Create the error for `model`; `message` says how to get it. */
  constructor(readonly model: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The model exists but lacks a capability the request needs. */
export class CapabilityError extends ProviderError {
  /** Create the error for `model` lacking `capability`. */
  constructor(
    readonly model: string,
    readonly capability: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Options of {@linkcode UpstreamError}: what the backend said beyond the status. */
export interface UpstreamErrorOptions extends ErrorOptions {
  /** The wait the backend asked for before a retry (`retry-after`), in milliseconds. */
  retryAfterMs?: number;
  /** The backend's own error type, e.g. Anthropic's `overloaded_error`. */
  errorType?: string;
  /**
   * Whether a retry can cure the error, when the backend said so (an
   * exhausted quota is a 429 no retry cures); absent: decided by status.
   */
  retryable?: boolean;
}

/** The backend answered with an error (HTTP status or an error line in a stream). */
export class UpstreamError extends ProviderError {
  /** The wait the backend asked for before a retry, in milliseconds, if it said. */
  readonly retryAfterMs?: number;
  /** The backend's own error type, if it has one (e.g. `rate_limit_error`). */
  readonly errorType?: string;
  /** Whether a retry can cure the error, when the backend said so. */
  readonly retryable?: boolean;

  /** Create the error; `status` is the HTTP status (200 for in-stream errors). */
  constructor(
    readonly status: number,
    message: string,
    options?: UpstreamErrorOptions,
  ) {
    super(message, options);
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options?.errorType !== undefined) this.errorType = options.errorType;
    if (options?.retryable !== undefined) this.retryable = options.retryable;
  }
}

/**
 * The backend refused the credential (401) or its permissions (403). The
 * message names where the key came from (`credential`), never the key.
 */
export class AuthenticationError extends UpstreamError {
  /** Create the error; `credential` says where the key came from (undefined: none configured). */
  constructor(
    status: number,
    readonly credential: string | undefined,
    message: string,
    options?: UpstreamErrorOptions,
  ) {
    super(status, message, options);
  }
}

/** The backend is rate limiting this account (429); `retryAfterMs` says when to retry. */
export class RateLimitError extends UpstreamError {}

/** The backend is overloaded for everyone (Anthropic's 529, a 503); retry shortly. */
export class OverloadedError extends UpstreamError {}

/** The request was larger than the backend accepts (413). */
export class RequestTooLargeError extends UpstreamError {}

/** The connection closed in the middle of a streamed reply. */
export class ConnectionDroppedError extends ProviderError {}

/** The backend replied with something that is not the expected JSON. */
export class InvalidResponseError extends ProviderError {}

/** Which deadline of a call expired. */
export type TimeoutPhase = "connect" | "first-token" | "idle" | "total";

/** A call took longer than one of its configured deadlines. */
export class ProviderTimeoutError extends ProviderError {
  /** Create the error for the expired `phase` after `ms` milliseconds. */
  constructor(
    readonly phase: TimeoutPhase,
    readonly ms: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A request argument the provider cannot honour (e.g. `keep_alive` on a
 * cloud API) or whose value it refuses: reported before anything is sent,
 * naming the provider and the argument, never silently dropped.
 */
export class ArgumentError extends ProviderError {
  /** Create the error for `argument` (a tool argument name, e.g. `keep_alive`). */
  constructor(readonly argument: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
