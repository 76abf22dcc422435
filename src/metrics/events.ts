/**
 * What the fleet layers report for metrics, as plain calls: the provider
 * wrappers (pool, cache, limits, fallbacks), the MCP layer and the
 * transports call a {@linkcode FleetEvents} and never see the metrics
 * library. {@linkcode NO_EVENTS} is the silent default (the CLI, tests);
 * `prometheus.ts` turns the calls into Prometheus series for `/metrics`.
 *
 * @module
 */

import { isAbortError } from "../errors.ts";
import {
  ArgumentError,
  AuthenticationError,
  CapabilityError,
  ConnectionDroppedError,
  InvalidResponseError,
  ModelNotFoundError,
  OverloadedError,
  ProviderPermissionError,
  ProviderTimeoutError,
  ProviderUnreachableError,
  RateLimitError,
  RequestTooLargeError,
  UpstreamError,
  UpstreamTooLargeError,
} from "../providers/errors.ts";

/** How a tool call ended. */
export type Outcome = "ok" | "error" | "cancelled" | "rate_limited";

/** Which rate limit refused a call. */
export type LimitScope = "client" | "provider";

/** The labels of one tool call. */
export interface CallLabels {
  /** Tool name, e.g. `ai_ollama_generate`. */
  tool: string;
  /** Provider id; empty for tools that span providers (`ai_compare`). */
  provider: string;
  /** Model as asked for, without the provider prefix; empty for tools without one. */
  model: string;
  /**
   * Who called: the identity (`token:N`, `oauth:<hash>`; never a token or a
   * subject), or `anonymous` without authentication.
   * @default "anonymous"
   */
  client?: string;
}

/** The state of one upstream host, for the gauges. */
export interface HostGauge {
  /** Provider id. */
  provider: string;
  /** `host:port`. */
  host: string;
  /** Whether calls are routed to it. */
  up: boolean;
  /** Calls running on it now. */
  inFlight: number;
}

/** How a tool call ended. */
export interface CallEnd {
  /** Its outcome. */
  outcome: Outcome;
  /** Its duration in seconds. */
  seconds: number;
  /** Seconds to its first streamed token, when text streamed. */
  ttftSeconds?: number;
}

/** Which provider and model an upstream figure is about. */
export interface ModelLabels {
  /** Provider id. */
  provider: string;
  /** Model name as asked for. */
  model: string;
}

/** What the layers report. Every method is cheap and never throws. */
export interface FleetEvents {
  /** A tool call ended. */
  toolCall(labels: CallLabels, end: CallEnd): void;
  /** Tokens an upstream call consumed (`input`) and produced (`output`). */
  tokens(labels: ModelLabels, counts: { input: number; output: number }): void;
  /** Generation speed of one upstream call, in tokens per second. */
  tokensPerSecond(labels: ModelLabels, value: number): void;
  /** An upstream call failed; `kind` from {@linkcode errorKind}. */
  upstreamError(provider: string, kind: string): void;
  /** A provider retried a request before its first token. */
  retry(provider: string): void;
  /** A call moved to another host of the same provider before its first token. */
  failover(provider: string): void;
  /** A call moved to a configured fallback model before its first token. */
  fallback(provider: string): void;
  /** A cacheable call was answered from the cache. */
  cacheHit(): void;
  /** A cacheable call was not in the cache. */
  cacheMiss(): void;
  /** A rate limit refused a call. */
  rateLimited(scope: LimitScope): void;
}

/** Reports nothing. */
export const NO_EVENTS: FleetEvents = {
  toolCall() {},
  tokens() {},
  tokensPerSecond() {},
  upstreamError() {},
  retry() {},
  failover() {},
  fallback() {},
  cacheHit() {},
  cacheMiss() {},
  rateLimited() {},
};

/**
 * The `kind` label of an upstream failure, or undefined for failures that
 * are not the upstream's (an abort, a refused argument, a local limit).
 */
export function errorKind(error: unknown): string | undefined {
  if (isAbortError(error) || error instanceof ArgumentError || error instanceof CapabilityError) {
    return undefined;
  }
  if ((error as { local?: boolean })?.local === true) return undefined;
  if (error instanceof RateLimitError) return "rate_limited";
  if (error instanceof OverloadedError) return "overloaded";
  if (error instanceof AuthenticationError) return "auth";
  if (error instanceof RequestTooLargeError) return "request_too_large";
  if (error instanceof UpstreamError) {
    if (error.status === 429) return "rate_limited";
    if (error.status === 503 || error.status === 529) return "overloaded";
    return error.status >= 500 || error.status === 200 ? "server_error" : "client_error";
  }
  if (error instanceof ProviderPermissionError) return "permission";
  if (error instanceof ProviderUnreachableError) return "unreachable";
  if (error instanceof ProviderTimeoutError) return "timeout";
  if (error instanceof ConnectionDroppedError) return "dropped";
  if (error instanceof InvalidResponseError) return "invalid_response";
  if (error instanceof UpstreamTooLargeError) return "too_large";
  if (error instanceof ModelNotFoundError) return "model_not_found";
  return "other";
}
