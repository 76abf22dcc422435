/**
 * What every HTTP provider does on the wire: send a request under the
 * call's deadlines, map network failures and HTTP error replies onto typed
 * errors, and read replies under byte budgets.
 *
 * A provider supplies an {@linkcode HttpUpstream}: its display name and
 * address, hints for its messages, its deadlines and budgets, and how to
 * read its error replies. Nothing here knows a wire format.
 *
 * @module
 */

import { type ByteLimits, replyTooLarge } from "./budget.ts";
import { createDeadline, type Deadline, type DeadlineClock, type Timeouts } from "./deadline.ts";
import {
  ConnectionDroppedError,
  InvalidResponseError,
  type ProviderError,
  type TimeoutPhase,
} from "./errors.ts";
import { type ParseRefusal, preview } from "./ndjson.ts";
import { fetchFailure, type Upstream } from "./net_errors.ts";
import { readText } from "./stream.ts";
import type { CallOptions } from "./types.ts";

/** An HTTP error reply, as much of it as was read. */
export interface ErrorReply {
  /** HTTP status. */
  status: number;
  /** API path of the request, e.g. `/api/chat`. */
  path: string;
  /** The `content-type` header, or `""`. */
  contentType: string;
  /** The first bytes of the body (at most `maxErrorBytes`). */
  text: string;
  /** True when the body was longer and the rest was never read. */
  truncated: boolean;
  /** Model named in the request, if any. */
  model?: string;
  /** The response headers (`retry-after`, request ids). */
  headers?: Headers;
}

/** One provider's HTTP endpoint and how to talk about it. */
export interface HttpUpstream extends Upstream {
  /** Deadlines of each call. */
  timeouts: Timeouts;
  /** Byte budgets of each call. */
  limits: ByteLimits;
  /** The `fetch` to use. */
  fetch: typeof fetch;
  /** Serves the deadlines of this provider's calls. */
  clock: DeadlineClock;
  /** Headers sent with every request (auth, versions). */
  headers?: Record<string, string>;
  /** Maps an HTTP error reply onto a typed error, in the provider's error format. */
  httpError(reply: ErrorReply): ProviderError;
}

/** One request to an {@linkcode HttpUpstream}. */
export interface HttpRequest extends CallOptions {
  /** HTTP method. */
  method: "GET" | "POST" | "DELETE";
  /** API path, e.g. `/api/tags`. */
  path: string;
  /** JSON body, if any. */
  payload?: unknown;
  /** Model named in the request, for error messages. */
  model?: string;
  /** Deadline while waiting for the response headers. Default `connect`. */
  headersPhase?: TimeoutPhase;
  /** The `accept` header. Default JSON and NDJSON. */
  accept?: string;
  /** Headers of this request only (a credential fetched per request), over the upstream's. */
  headers?: Record<string, string>;
}

/** Starts the deadlines of one call; dispose of it when the call ends. */
export function startCall(upstream: HttpUpstream, signal?: AbortSignal): Deadline {
  return createDeadline(upstream.clock, {
    name: upstream.name,
    address: upstream.address,
    timeouts: upstream.timeouts,
    signal,
  });
}

/**
 * Sends one request and returns the response once its headers are in,
 * mapping network failures and HTTP error statuses onto typed errors. Only
 * a prefix of an error body is read; the rest is cancelled.
 */
export async function exchange(
  upstream: HttpUpstream,
  request: HttpRequest & { deadline: Deadline },
): Promise<Response> {
  const { method, path, payload, deadline } = request;
  // A model server may send no headers before the model is loaded, so for model
  // calls the wait for headers is the first-token wait, not a connect wait.
  deadline.arm(request.headersPhase ?? "connect");
  let response: Response;
  try {
    response = await upstream.fetch(`${upstream.baseUrl}${path}`, {
      method,
      signal: deadline.signal,
      headers: {
        accept: request.accept ?? "application/x-ndjson, application/json",
        ...(payload !== undefined && { "content-type": "application/json" }),
        ...upstream.headers,
        ...request.headers,
      },
      ...(payload !== undefined && { body: JSON.stringify(payload) }),
    });
  } catch (error) {
    if (deadline.signal.aborted) throw deadline.signal.reason;
    throw fetchFailure(upstream, error);
  }
  if (response.ok) return response;
  let body;
  try {
    body = await readText(response.body, {
      maxBytes: upstream.limits.maxErrorBytes,
      signal: deadline.signal,
    });
  } catch {
    if (deadline.signal.aborted) throw deadline.signal.reason;
    // The status alone still says what happened.
    body = { text: "", truncated: false, bytes: 0 };
  }
  throw upstream.httpError({
    status: response.status,
    path,
    contentType: response.headers.get("content-type") ?? "",
    text: body.text,
    truncated: body.truncated,
    model: request.model,
    headers: response.headers,
  });
}

/**
 * A JSON request/response call: the reply is read under the
 * `maxReplyBytes` budget and parsed; the caller validates its shape.
 */
export async function requestJson(upstream: HttpUpstream, request: HttpRequest): Promise<unknown> {
  const { path } = request;
  const deadline = startCall(upstream, request.signal);
  try {
    const response = await exchange(upstream, { ...request, deadline });
    deadline.arm("first-token");
    let body;
    try {
      body = await readText(response.body, {
        maxBytes: upstream.limits.maxReplyBytes,
        signal: deadline.signal,
      });
    } catch (error) {
      if (deadline.signal.aborted) throw deadline.signal.reason;
      throw new ConnectionDroppedError(
        `${upstream.name} at ${upstream.address} closed the connection before finishing its reply to ${path}: check its log and retry.`,
        { cause: error },
      );
    }
    if (body.truncated) throw replyTooLarge(upstream, path, upstream.limits.maxReplyBytes);
    try {
      return JSON.parse(body.text);
    } catch (cause) {
      throw new InvalidResponseError(
        `Invalid response from ${upstream.name} at ${upstream.address}: ${path} answered with something that is not JSON (${
          describeBody(response.headers.get("content-type") ?? "", body.text, false)
        }): is ${upstream.addressSetting} pointing at ${upstream.name}?`,
        { cause },
      );
    }
  } finally {
    deadline.dispose();
  }
}

/** `text/html, cut short: "<html>…"`: what a body looked like, for messages. */
export function describeBody(contentType: string, text: string, truncated: boolean): string {
  return `${contentType || "no content type"}${truncated ? ", cut short" : ""}: ${preview(text)}`;
}

/**
 * A stream parser's refusal as "Invalid response from X at Y: `where`:
 * what the parser said", with what to check.
 */
export function parserRefusal(
  upstream: HttpUpstream,
  where: string,
  error: ParseRefusal,
): InvalidResponseError {
  return new InvalidResponseError(
    `Invalid response from ${upstream.name} at ${upstream.address}: ${where}: ${
      error.message.replace(/^./, (c) => c.toLowerCase())
    } Is ${upstream.addressSetting} pointing at ${upstream.name} itself?`,
    { cause: error },
  );
}
