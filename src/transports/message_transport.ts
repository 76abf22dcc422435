/**
 * The one `Transport` seam shared by stdio and WebSocket.
 *
 * A channel (stdin/stdout lines, WebSocket text frames) hands raw message
 * text to {@linkcode MessageTransport.receive}; this module parses and
 * validates it, answers malformed input with the JSON-RPC error the
 * specification prescribes (`-32700` parse error, `-32600` invalid request)
 * without closing the channel, bounds the requests in flight, enforces the
 * opening deadline, and passes good messages to the SDK (the connection
 * entry in `mcp/connection.ts`, which serves both protocol eras). `send()`
 * resolves only when the channel accepted the bytes, which is how
 * backpressure reaches the code producing messages.
 *
 * @module
 */

import {
  type JSONRPCMessage,
  parseJSONRPCMessage,
  type RequestId,
  type Transport,
} from "@modelcontextprotocol/server";
import { checkJsonBounds, type JsonBounds } from "./json_bounds.ts";
import {
  errorReply,
  JSONRPC_INVALID_REQUEST,
  JSONRPC_PARSE_ERROR,
  TOO_MANY_REQUESTS,
} from "./jsonrpc.ts";

/** The byte channel under a {@linkcode MessageTransport}. */
export interface MessageChannel {
  /** Writes one serialized message; resolves when the channel accepted the bytes. */
  write(text: string): Promise<void>;
  /** Closes the channel; `code` and `reason` are used by WebSocket. */
  close(code?: number, reason?: string): void | Promise<void>;
}

/** Limits of one session. */
export interface MessageLimits {
  /** Most requests handled at once; further ones get an error reply. Default 64. */
  maxInFlight?: number;
  /**
   * Close the session when no request (an `initialize`, a `server/discover`
   * or any 2026-07-28 request) arrives within this time; 0 disables.
   * @default 30000
   */
  initializeTimeoutMs?: number;
  /**
   * Nesting and size bounds of one message, checked before it is parsed.
   * @default { maxDepth: 128, maxElements: 100000 }
   */
  jsonBounds?: JsonBounds;
  /**
   * Refuses a request before the server sees it (a tool outside the
   * client's OAuth scopes): the JSON-RPC error to answer with, or undefined
   * to let it through.
   * @default none: everything goes through
   */
  screen?: (
    message: { method: string; params?: unknown },
  ) => { code: number; message: string; data?: unknown } | undefined;
}

/** A `Transport` fed by a channel. */
export interface MessageTransport extends Transport {
  /** Hands one received message text to the transport. */
  receive(text: string): void;
  /** Tells the transport the channel closed (EOF, socket closed). */
  ended(): void;
  /** Requests received and not yet answered or cancelled. */
  readonly inFlight: number;
  /** Refuses new requests from now on (shutdown); calls in flight go on. */
  drain(): void;
}

function requestIdOf(value: unknown): RequestId | null {
  if (typeof value !== "object" || value === null || !("id" in value)) return null;
  const id = (value as { id: unknown }).id;
  return typeof id === "string" || (typeof id === "number" && Number.isFinite(id)) ? id : null;
}

/** Refusals held back while the handshake is answered; more are written at once. */
const MAX_HELD_REJECTIONS = 16;

/** Top-level members of a JSON-RPC request or notification. */
const REQUEST_MEMBERS = new Set(["jsonrpc", "id", "method", "params"]);
/** A `_meta` member the SDK's schema rewrites, so it takes the schema path. */
const RELATED_TASK = "io.modelcontextprotocol/related-task";

/**
 * True for a request or notification of the everyday shape, which the
 * SDK's `JSONRPCMessageSchema` accepts and would only copy. Checking that
 * by hand spares a zod parse per message; anything else, valid or not,
 * still goes through the schema, so replies and drops stay the same.
 */
function isPlainRequest(value: object): boolean {
  const message = value as Record<string, unknown>;
  if (message.jsonrpc !== "2.0" || typeof message.method !== "string") return false;
  for (const key in message) if (!REQUEST_MEMBERS.has(key)) return false;
  if ("id" in message && !isRequestId(message.id)) return false;
  if (!("params" in message)) return true;
  const params = message.params;
  if (!isPlainObject(params)) return false;
  if (!("_meta" in params)) return true;
  const meta = params._meta;
  if (!isPlainObject(meta) || RELATED_TASK in meta) return false;
  return !("progressToken" in meta) || isRequestId(meta.progressToken);
}

/** A string or a safe integer: what the SDK takes as request id and progress token. */
function isRequestId(value: unknown): boolean {
  return typeof value === "string" || Number.isSafeInteger(value);
}

/** A JSON object whose fields the schema would copy as they are. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  // An own "__proto__" (JSON.parse makes one) would set the prototype in zod's copy instead.
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !Object.hasOwn(value, "__proto__");
}

/**
 * Creates a transport over `channel`.
 *
 * Replies the transport writes itself (parse errors, refusals) share the
 * channel's ordering with SDK messages.
 */
export function createMessageTransport(
  channel: MessageChannel,
  limits: MessageLimits = {},
): MessageTransport {
  const maxInFlight = limits.maxInFlight ?? 64;
  const initializeTimeoutMs = limits.initializeTimeoutMs ?? 30_000;
  const jsonBounds = limits.jsonBounds ?? {};
  const inFlight = new Set<RequestId>();
  let closed = false;
  let draining = false;
  let initTimer: ReturnType<typeof setTimeout> | undefined;
  // The session's handshake request (`initialize` or `server/discover`), until it is answered:
  // refusals of later garbage wait for its reply (a few at most), so a client never reads an
  // error before the reply to its handshake.
  let opening: RequestId | undefined;
  let opened = false;
  let heldRejections: string[] = [];

  function write(text: string): void {
    channel.write(text).catch((error) => transport.onerror?.(error as Error));
  }

  function reject(text: string): void {
    if (opening !== undefined && !opened && heldRejections.length < MAX_HELD_REJECTIONS) {
      heldRejections.push(text);
    } else write(text);
  }

  function releaseRejections(): void {
    opened = true;
    const held = heldRejections;
    heldRejections = [];
    for (const text of held) write(text);
  }

  function finish(): void {
    if (closed) return;
    closed = true;
    clearTimeout(initTimer);
    inFlight.clear();
    heldRejections = [];
    transport.onclose?.();
  }

  const transport: MessageTransport = {
    get inFlight() {
      return inFlight.size;
    },
    start() {
      if (initializeTimeoutMs > 0) {
        initTimer = setTimeout(() => {
          transport.onerror?.(new Error(`No request within ${initializeTimeoutMs} ms`));
          // 1008 (policy violation) on WebSocket: the client broke the handshake rule.
          Promise.resolve(channel.close(1008, "no initialize request")).finally(finish);
        }, initializeTimeoutMs);
      }
      return Promise.resolve();
    },
    async send(message) {
      if (closed) throw new Error("Transport is closed");
      const reply = "id" in message && ("result" in message || "error" in message);
      if (reply) inFlight.delete(message.id as RequestId);
      const written = channel.write(JSON.stringify(message));
      if (reply && !opened && opening !== undefined && message.id === opening) {
        // Queued behind the opening reply on the channel, so they arrive after it.
        releaseRejections();
      }
      await written;
    },
    async close() {
      if (closed) return;
      await channel.close(1000, "closing");
      finish();
    },
    receive(text) {
      if (closed) return;
      const tooBig = checkJsonBounds(text, jsonBounds);
      if (tooBig !== undefined) {
        // Refused before parsing: deep nesting and masses of tiny values cost JSON.parse (and
        // everything after it) time that would stall every other session.
        reject(errorReply(null, JSONRPC_INVALID_REQUEST, `Invalid Request: ${tooBig}`));
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        reject(errorReply(null, JSONRPC_PARSE_ERROR, "Parse error: the message is not valid JSON"));
        return;
      }
      if (Array.isArray(value)) {
        reject(
          errorReply(null, JSONRPC_INVALID_REQUEST, "Invalid Request: batches are not supported"),
        );
        return;
      }
      let message: JSONRPCMessage;
      if (value !== null && typeof value === "object" && isPlainRequest(value)) {
        message = value as JSONRPCMessage;
      } else {
        let parsed: JSONRPCMessage | undefined;
        try {
          parsed = parseJSONRPCMessage(value);
        } catch {
          parsed = undefined;
        }
        if (parsed === undefined) {
          // Malformed notifications get no reply. A message with an `id` member is no
          // notification (JSON-RPC 2.0 §4.1) even when the id is unusable: it is answered, with
          // id null then.
          const id = requestIdOf(value);
          const hasId = typeof value === "object" && value !== null && "id" in value;
          const hasMethod = typeof (value as { method?: unknown })?.method === "string";
          if (hasId || !hasMethod) {
            reject(
              errorReply(
                id,
                JSONRPC_INVALID_REQUEST,
                "Invalid Request: not a JSON-RPC 2.0 message",
              ),
            );
          }
          return;
        }
        message = parsed;
      }
      if ("method" in message) {
        if ("id" in message && message.id !== undefined) {
          if (!opened && opening === undefined) {
            clearTimeout(initTimer);
            if (message.method === "initialize" || message.method === "server/discover") {
              opening = message.id;
            } else opened = true;
          }
          if (inFlight.has(message.id)) {
            reject(
              errorReply(
                message.id,
                JSONRPC_INVALID_REQUEST,
                "Invalid Request: this id is already in flight",
              ),
            );
            return;
          }
          if (draining && message.method !== "ping") {
            reject(errorReply(message.id, TOO_MANY_REQUESTS, "Shutting down: no new requests"));
            return;
          }
          if (inFlight.size >= maxInFlight) {
            reject(
              errorReply(
                message.id,
                TOO_MANY_REQUESTS,
                `Too many requests in flight (limit ${maxInFlight}): wait for replies before sending more`,
              ),
            );
            return;
          }
          const refused = limits.screen?.(message);
          if (refused) {
            reject(errorReply(message.id, refused.code, refused.message, refused.data));
            return;
          }
          inFlight.add(message.id);
        } else if (message.method === "notifications/cancelled") {
          // A cancelled request gets no reply, so it stops counting now.
          const id = (message.params as { requestId?: RequestId } | undefined)?.requestId;
          if (id !== undefined) inFlight.delete(id);
        }
      }
      transport.onmessage?.(message);
    },
    drain() {
      draining = true;
    },
    ended() {
      finish();
    },
  };
  return transport;
}
