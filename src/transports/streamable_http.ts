/**
 * MCP Streamable HTTP on `/mcp`, in both protocol eras.
 *
 * - **2026-07-28 (stateless)**: requests carrying the per-request `_meta`
 *   envelope go to the SDK's `createMcpHandler` (modern only), which answers
 *   `server/discover`, validates the `Mcp-Method`/`Mcp-Name` headers against
 *   the body, serves `subscriptions/listen`, adds `ttlMs`/`cacheScope` to
 *   `tools/list`, and builds a fresh server instance per request. Closing
 *   the request's stream cancels it.
 * - **2025-era sessions** (2025-11-25, 2025-06-18, 2025-03-26): an
 *   `initialize` opens a session served by the SDK's sessionful
 *   `WebStandardStreamableHTTPServerTransport`, exactly as before.
 *
 * The split uses the SDK's own classifier (`isLegacyRequest`), so the two
 * legs never disagree with the SDK. Around both, Rune adds what the SDK
 * does not do: a session and request cap reserved before any await, a
 * per-session in-flight limit, idle sessions closed, and response bodies
 * metered for backpressure (see `metered_body.ts`); a legacy request whose
 * response stream is gone is cancelled, since nothing could deliver its
 * result later.
 *
 * @module
 */

import {
  createMcpHandler,
  isLegacyRequest,
  type McpServer,
  type McpServerFactory,
  type RequestId,
  WebStandardStreamableHTTPServerTransport,
} from "@modelcontextprotocol/server";
import type { Logger } from "../log.ts";
import { setFlow } from "../mcp/flow.ts";
import { errorReply, JSONRPC_INVALID_REQUEST, TOO_MANY_REQUESTS } from "./jsonrpc.ts";
import { createMeter, type MeterOptions } from "./metered_body.ts";
import { authInfoOf } from "./auth_info.ts";
import type { Identity } from "./security.ts";
import type { SessionSlots } from "./session_slots.ts";

/** Limits of the Streamable HTTP endpoint. */
export interface StreamableHttpLimits extends Omit<MeterOptions, "onStuck" | "onCancel" | "onEnd"> {
  /**
   * Most requests in flight per legacy session.
   * @default 64
   */
  maxInFlight?: number;
  /**
   * Legacy sessions without any request for this long are closed.
   * @default 600000
   */
  httpSessionIdleMs?: number;
  /**
   * Largest request body the SDK would read itself (Rune reads bodies first).
   * @default 33554432
   */
  maxMessageSize?: number;
}

/** Dependencies of {@linkcode createStreamableHttp}. */
export interface StreamableHttpDeps {
  /** Builds a server instance per legacy session or per modern request. */
  factory: McpServerFactory;
  /** The daemon-wide session cap, shared with WebSocket. */
  slots: SessionSlots;
  /** Limits. */
  limits?: StreamableHttpLimits;
  /** Diagnostics sink. */
  log?: Logger;
}

/** The endpoint and the controls the daemon needs around it. */
export interface StreamableHttp {
  /**
   * Serves one request from `identity`; `body` is the parsed POST body
   * (undefined otherwise).
   */
  handle(request: Request, body: unknown, identity: Identity): Promise<Response>;
  /** Open legacy sessions. */
  sessions(): number;
  /** Requests in flight: legacy sessions' plus modern exchanges. */
  inFlight(): number;
  /** Refuses new sessions and requests from now on (503). */
  drain(): void;
  /** Ends every session and exchange, aborting calls in flight. */
  closeAll(): Promise<void>;
}

interface LegacySession {
  transport: WebStandardStreamableHTTPServerTransport;
  server: McpServer;
  /**
   * Who opened it, with the scopes its instance was built for: only the
   * same identity holding the same scopes may use or end it.
   */
  owner: string;
  /** Ids of requests received and not yet answered or cancelled. */
  inFlight: Set<RequestId>;
  lastSeen: number;
}

const JSON_HEADERS = { "content-type": "application/json" };

function jsonError(status: number, message: string, code = JSONRPC_INVALID_REQUEST): Response {
  return new Response(errorReply(null, code, message), { status, headers: JSON_HEADERS });
}

/** Requests (messages with a method and an id) in a parsed body. */
function requestIds(body: unknown): RequestId[] {
  const messages = Array.isArray(body) ? body : [body];
  const ids: RequestId[] = [];
  for (const m of messages) {
    if (m && typeof m === "object" && "method" in m && "id" in m) {
      const id = (m as { id: unknown }).id;
      if (typeof id === "string" || typeof id === "number") ids.push(id);
    }
  }
  return ids;
}

function isInitialize(body: unknown): boolean {
  const message = body as { jsonrpc?: unknown; method?: unknown; id?: unknown } | null;
  return typeof message === "object" && message !== null && message.jsonrpc === "2.0" &&
    message.method === "initialize" && message.id !== undefined;
}

/** A single `tools/call` request (the calls that may run long). */
function isToolCall(body: unknown): boolean {
  const message = body as { method?: unknown; id?: unknown } | null;
  return typeof message === "object" && message !== null && message.method === "tools/call" &&
    message.id !== undefined;
}

function isEventStream(response: Response): boolean {
  return response.body !== null &&
    (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
}

/**
 * The owner key of a legacy session. A session's server instance serves
 * the tools of the scopes it was opened with, so a token with other scopes
 * (after a step-up) finds no session and, as the specification has it for
 * a 404, initializes a new one that serves its tools.
 */
function sessionOwner(identity: Identity): string {
  return identity.scopes ? `${identity.id} ${[...identity.scopes].sort().join(" ")}` : identity.id;
}

/** A cancel names the request it ends (0 and "" are ids like any other). */
function cancellable(id: RequestId | undefined): id is RequestId {
  return id !== undefined;
}

/** Builds the Streamable HTTP endpoint. */
export function createStreamableHttp(deps: StreamableHttpDeps): StreamableHttp {
  const limits = deps.limits ?? {};
  const maxInFlight = limits.maxInFlight ?? 64;
  const httpIdleMs = limits.httpSessionIdleMs ?? 600_000;
  const log = deps.log ?? (() => {});
  const sessions = new Map<string, LegacySession>();
  let modernInFlight = 0;
  let draining = false;
  let sweeper: ReturnType<typeof setInterval> | undefined;

  const modernOptions = {
    legacy: "reject",
    maxRequestBodySize: limits.maxMessageSize ?? 32 * 1024 * 1024,
    onerror: (error: Error) => log("debug", `mcp (2026-07-28): ${error.message}`),
  } as const;
  const modern = createMcpHandler(deps.factory, modernOptions);
  // Tool calls are answered over SSE even without a progress token, so their response starts
  // at once. A JSON response is only written with the result, and until then Deno 2.9 does not
  // notice a client that drops the connection when its body came after its headers (the
  // request's signal never aborts): the call would run to its end for nobody. With the
  // response started, Deno cancels its body when the client goes, which ends the exchange.
  const modernToolCalls = createMcpHandler(deps.factory, { ...modernOptions, responseMode: "sse" });

  function sweepIdleSessions(): void {
    const now = performance.now();
    for (const [id, session] of sessions) {
      if (session.inFlight.size === 0 && now - session.lastSeen > httpIdleMs) {
        log("info", `closing idle HTTP session ${id}`);
        void session.transport.close();
      }
    }
    if (sessions.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  /**
   * Counts a session's requests from arrival to reply: the SSE response
   * starts long before a streamed call ends, so in-flight work is tracked
   * at the message level, like the WebSocket and stdio seam.
   */
  function trackInFlight(session: LegacySession): void {
    const { transport } = session;
    const deliver = transport.onmessage;
    transport.onmessage = (message, extra) => {
      session.lastSeen = performance.now();
      if ("method" in message) {
        if ("id" in message && message.id !== undefined) session.inFlight.add(message.id);
        else if (message.method === "notifications/cancelled") {
          const id = (message.params as { requestId?: RequestId } | undefined)?.requestId;
          if (cancellable(id)) session.inFlight.delete(id);
        }
      }
      deliver?.(message, extra);
    };
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
      session.lastSeen = performance.now();
      if ("id" in message && ("result" in message || "error" in message)) {
        session.inFlight.delete(message.id as RequestId);
      }
      return send(message, options);
    };
  }

  /** Cancels a session's requests whose response stream is gone: nobody can receive them. */
  function cancelOrphans(session: LegacySession, ids: RequestId[]): void {
    for (const id of ids) {
      if (!session.inFlight.has(id) || !cancellable(id)) continue;
      log("info", `client closed the response stream of request ${id}: cancelling it`);
      session.transport.onmessage?.({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: id, reason: "the client closed the response stream" },
      });
    }
  }

  /** Meters a response body; `onCancel` runs if the client goes away or is cut off. */
  function metered(
    request: Request,
    dispatch: () => Promise<Response>,
    onCancel: () => void,
    onEnd: () => void,
  ): Promise<Response> {
    const meter = createMeter({
      highWaterMark: limits.highWaterMark,
      hardCap: limits.hardCap,
      graceMs: limits.graceMs,
      onStuck: (queued) =>
        log("warning", `HTTP client did not read ${queued} queued bytes in time; closing`),
      onCancel,
      onEnd,
    });
    setFlow(request, meter.flow);
    return dispatch().then((response) => {
      if (!isEventStream(response)) {
        meter.release();
        onEnd();
        return response;
      }
      const { body } = meter.attach(response.body!);
      return new Response(body, { status: response.status, headers: response.headers });
    }, (error) => {
      onEnd();
      throw error;
    });
  }

  async function serveModern(
    request: Request,
    body: unknown,
    identity: Identity,
  ): Promise<Response> {
    if (draining) return jsonError(503, "Shutting down: no new requests", TOO_MANY_REQUESTS);
    // Reserved before any await, so no burst can exceed the cap.
    if (!deps.slots.tryReserve()) {
      return jsonError(503, `Too many sessions and requests (limit ${deps.slots.limit})`);
    }
    modernInFlight++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      modernInFlight--;
      deps.slots.release();
    };
    const endpoint = isToolCall(body) ? modernToolCalls : modern;
    try {
      return await metered(
        request,
        () => endpoint.fetch(request, { parsedBody: body, ...authInfoOf(identity) }),
        // The SDK aborts the exchange itself when its stream is cancelled.
        () => {},
        release,
      );
    } catch (error) {
      release();
      throw error;
    }
  }

  async function serveSession(
    request: Request,
    body: unknown,
    { sessionId, identity }: { sessionId: string; identity: Identity },
  ): Promise<Response> {
    const session = sessions.get(sessionId);
    // Another credential's session does not exist as far as this one can tell.
    if (!session || session.owner !== sessionOwner(identity)) {
      return jsonError(404, "Session not found: initialize a new session");
    }
    const ids = requestIds(body);
    if (draining && ids.length > 0) {
      return jsonError(503, "Shutting down: no new requests", TOO_MANY_REQUESTS);
    }
    if (session.inFlight.size + ids.length > maxInFlight) {
      return jsonError(
        429,
        `Too many requests in flight (limit ${maxInFlight})`,
        TOO_MANY_REQUESTS,
      );
    }
    session.lastSeen = performance.now();
    if (ids.length === 0) {
      return await session.transport.handleRequest(request, { parsedBody: body });
    }
    // Counted before any await, so concurrent POSTs cannot all pass the limit.
    const fresh = ids.filter((id) => !session.inFlight.has(id));
    for (const id of fresh) session.inFlight.add(id);
    const response = await metered(
      request,
      () => session.transport.handleRequest(request, { parsedBody: body }),
      () => cancelOrphans(session, ids),
      () => {},
    ).catch((error) => {
      for (const id of fresh) session.inFlight.delete(id);
      throw error;
    });
    // Refused before dispatch (a bad header, a duplicate id): nothing is in flight.
    if (!response.ok) { for (const id of fresh) session.inFlight.delete(id); }
    return response;
  }

  async function openSession(
    request: Request,
    body: unknown,
    identity: Identity,
  ): Promise<Response> {
    if (draining) return jsonError(503, "Shutting down");
    // Reserved before any await, so no burst can exceed the cap.
    if (!deps.slots.tryReserve()) {
      return jsonError(503, `Too many sessions (limit ${deps.slots.limit})`);
    }
    let session: LegacySession | undefined;
    let releaseSlot: (() => void) | undefined = () => deps.slots.release();
    const releaseOnce = () => {
      releaseSlot?.();
      releaseSlot = undefined;
    };
    try {
      const server = await deps.factory({
        era: "legacy",
        requestInfo: request,
        ...authInfoOf(identity),
      }) as McpServer;
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => crypto.randomUUID(),
        onsessioninitialized: (id) => {
          // Called from handleRequest below, after `session` exists.
          sessions.set(id, session!);
          sweeper ??= setInterval(sweepIdleSessions, Math.min(httpIdleMs, 60_000));
        },
        onsessionclosed: (id) => {
          if (sessions.delete(id)) releaseOnce();
        },
      });
      transport.onclose = () => {
        if (transport.sessionId && sessions.delete(transport.sessionId)) releaseOnce();
      };
      await server.connect(transport);
      session = {
        transport,
        server,
        owner: sessionOwner(identity),
        inFlight: new Set(),
        lastSeen: performance.now(),
      };
      trackInFlight(session);
      const response = await session.transport.handleRequest(request, { parsedBody: body });
      // A failed initialize opens no session: give the slot back.
      if (transport.sessionId === undefined || !sessions.has(transport.sessionId)) {
        releaseOnce();
        await server.close().catch(() => {});
      }
      return response;
    } catch (error) {
      releaseOnce();
      throw error;
    }
  }

  async function handle(request: Request, body: unknown, identity: Identity): Promise<Response> {
    if (!await isLegacyRequest(request, body)) return await serveModern(request, body, identity);
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId !== null) return await serveSession(request, body, { sessionId, identity });
    if (request.method !== "POST" || !isInitialize(body)) {
      return jsonError(
        400,
        "Bad Request: no valid session ID; start with an initialize request (2025 protocol versions), or send 2026-07-28 requests with their _meta envelope",
      );
    }
    return await openSession(request, body, identity);
  }

  return {
    handle,
    sessions: () => sessions.size,
    inFlight: () =>
      modernInFlight + [...sessions.values()].reduce((sum, s) => sum + s.inFlight.size, 0),
    drain: () => {
      draining = true;
    },
    closeAll: async () => {
      clearInterval(sweeper);
      sweeper = undefined;
      await Promise.all([modern.close(), modernToolCalls.close()]);
      await Promise.all([...sessions.values()].map((s) => s.transport.close()));
      sessions.clear();
    },
  };
}
