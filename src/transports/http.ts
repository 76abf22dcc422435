/**
 * The network side of the daemon as one request handler: `GET /ws` (MCP
 * over WebSocket), `/mcp` (MCP Streamable HTTP with sessions), `GET
 * /healthz` and the playground (`GET /` and its script and stylesheet).
 *
 * {@linkcode createHandler} builds the handler from its dependencies and
 * knows nothing of listening; `cli/serve.ts` passes it to `Deno.serve`.
 * Every session gets its own MCP server instance.
 *
 * @module
 */

import type { McpServer, RequestId } from "../mcp/sdk.ts";
import type { WebStandardStreamableHTTPServerTransport } from "../mcp/sdk_http.ts";
import type { Logger } from "../log.ts";
import type { Provider } from "../providers/types.ts";
import { VERSION } from "../version.ts";
import {
  errorReply,
  JSONRPC_INVALID_REQUEST,
  JSONRPC_PARSE_ERROR,
  TOO_MANY_REQUESTS,
} from "./jsonrpc.ts";
import { playgroundResponse } from "./playground.ts";
import {
  checkHost,
  checkRequest,
  checkToken,
  offeredProtocols,
  type SecurityOptions,
} from "./security.ts";
import type { WebSocketLimits, WebSocketSession } from "./websocket.ts";

/**
 * The session machinery (MCP SDK, zod, transports), loaded when the first
 * session starts: an idle daemon then holds only the listener, which keeps
 * its memory small.
 */
let sessionKit:
  | Promise<[typeof import("./websocket.ts"), typeof import("../mcp/sdk_http.ts")]>
  | undefined;

function loadSessionKit() {
  return sessionKit ??= Promise.all([import("./websocket.ts"), import("../mcp/sdk_http.ts")]);
}

/** WebSocket close code "going away", sent on shutdown. */
const CLOSE_GOING_AWAY = 1001;

/** A cheap look at a parsed body: is it an `initialize` request? The SDK validates it fully. */
function isInitialize(body: unknown): boolean {
  const message = body as { jsonrpc?: unknown; method?: unknown; id?: unknown } | null;
  return typeof message === "object" && message !== null && message.jsonrpc === "2.0" &&
    message.method === "initialize" && message.id !== undefined;
}

/** Limits of the network endpoints. */
export interface NetworkLimits extends WebSocketLimits {
  /** Most concurrent sessions over WebSocket and HTTP together. Default 1 024. */
  maxSessions?: number;
  /** WebSocket idle timeout in seconds (ping/pong). Default 60. */
  idleTimeoutSeconds?: number;
  /** HTTP sessions without any request for this long are closed. Default 600 000 ms. */
  httpSessionIdleMs?: number;
}

/** Dependencies of {@linkcode createHandler}. */
export interface HandlerDeps {
  /** Creates a fresh MCP server for each session (may load it on first use). */
  createServer: () => McpServer | Promise<McpServer>;
  /** Providers to report in `/healthz`. */
  providers: Provider[];
  /** Origin, Host and token settings. */
  security: SecurityOptions;
  /** Session and message limits. */
  limits?: NetworkLimits;
  /** Diagnostics sink. */
  log?: Logger;
  /** Number of stdio sessions, for `/healthz`. */
  stdioSessions?: () => number;
}

/** The handler and the controls the daemon needs around it. */
export interface Handler {
  /** Serves one request. */
  (request: Request): Promise<Response>;
  /** Open sessions by transport. */
  sessions(): { websocket: number; http: number };
  /** Requests in flight across all sessions. */
  inFlight(): number;
  /** Refuses new sessions and requests from now on (503). */
  drain(): void;
  /** Closes every session (1001 for WebSockets), aborting in-flight calls. */
  closeAll(): Promise<void>;
}

interface HttpSession {
  transport: WebStandardStreamableHTTPServerTransport;
  server: McpServer;
  /** Ids of requests received and not yet answered or cancelled. */
  inFlight: Set<RequestId>;
  lastSeen: number;
}

/**
 * Counts a session's requests from arrival to reply. The HTTP response
 * (an SSE stream) starts long before a streamed call ends, so in-flight
 * work is tracked at the message level, like the WebSocket and stdio seam.
 */
function trackInFlight(session: HttpSession): void {
  const { transport } = session;
  const deliver = transport.onmessage;
  transport.onmessage = (message, extra) => {
    session.lastSeen = performance.now();
    if ("method" in message) {
      if ("id" in message && message.id !== undefined) session.inFlight.add(message.id);
      else if (message.method === "notifications/cancelled") {
        const id = (message.params as { requestId?: RequestId } | undefined)?.requestId;
        // The SDK ignores cancels for ids 0 and "" (the call runs on), so they stay counted.
        if (id !== undefined && id !== 0 && id !== "") session.inFlight.delete(id);
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

const JSON_HEADERS = { "content-type": "application/json" };

function jsonError(status: number, message: string, code = JSONRPC_INVALID_REQUEST): Response {
  return new Response(errorReply(null, code, message), { status, headers: JSON_HEADERS });
}

/** Builds the request handler for the network endpoints. */
export function createHandler(deps: HandlerDeps): Handler {
  const limits = deps.limits ?? {};
  const maxSessions = limits.maxSessions ?? 1024;
  const maxMessageSize = limits.maxMessageSize ?? 32 * 1024 * 1024;
  const maxInFlight = limits.maxInFlight ?? 64;
  const httpIdleMs = limits.httpSessionIdleMs ?? 600_000;
  const log = deps.log ?? (() => {});
  const startedAt = performance.now();
  const sockets = new Set<WebSocketSession>();
  const httpSessions = new Map<string, HttpSession>();
  let draining = false;
  let sweeper: ReturnType<typeof setInterval> | undefined;

  const sessionCount = () => sockets.size + httpSessions.size;

  function sweepIdleHttpSessions(): void {
    const now = performance.now();
    for (const [id, session] of httpSessions) {
      if (session.inFlight.size === 0 && now - session.lastSeen > httpIdleMs) {
        log("info", `closing idle HTTP session ${id}`);
        void session.transport.close();
      }
    }
    if (httpSessions.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  /** The provider pings in progress: concurrent health checks share them. */
  let probe: Promise<unknown[]> | undefined;

  function probeProviders(): Promise<unknown[]> {
    probe ??= Promise.all(deps.providers.map(async (provider) => {
      try {
        const version = await provider.ping({ signal: AbortSignal.timeout(2_000) });
        return { id: provider.id, address: provider.address, reachable: true, version };
      } catch (error) {
        return {
          id: provider.id,
          address: provider.address,
          reachable: false,
          error: (error as Error).message,
        };
      }
    })).finally(() => (probe = undefined));
    return probe;
  }

  async function health(request: Request): Promise<Response> {
    const body: Record<string, unknown> = {
      status: draining ? "draining" : "ok",
      version: VERSION,
      uptime_seconds: Math.round((performance.now() - startedAt) / 1000),
    };
    // With a token configured, sessions and provider details are for token holders only.
    if (deps.security.token === undefined || !await checkToken(request, deps.security)) {
      body.sessions = {
        websocket: sockets.size,
        http: httpSessions.size,
        stdio: deps.stdioSessions?.() ?? 0,
      };
      body.providers = await probeProviders();
    }
    return new Response(JSON.stringify(body), { headers: JSON_HEADERS });
  }

  async function upgrade(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response('Use a WebSocket client with subprotocol "mcp" on this endpoint.\n', {
        status: 426,
        headers: { upgrade: "websocket" },
      });
    }
    if (!offeredProtocols(request).includes("mcp")) {
      return new Response('The WebSocket subprotocol "mcp" is required.\n', { status: 400 });
    }
    const [kit, server] = await Promise.all([loadSessionKit(), deps.createServer()]);
    const { socket, response } = Deno.upgradeWebSocket(request, {
      protocol: "mcp",
      idleTimeout: limits.idleTimeoutSeconds ?? 60,
    });
    socket.binaryType = "arraybuffer";
    const session = kit[0].attachWebSocket(socket, server, {
      ...limits,
      onError: (error) => log("warning", `websocket session: ${error.message}`),
    });
    sockets.add(session);
    session.closed.then(() => sockets.delete(session));
    return response;
  }

  async function readBody(request: Request): Promise<unknown | Response> {
    const length = Number(request.headers.get("content-length") ?? "0");
    if (length > maxMessageSize) {
      return jsonError(413, `Message larger than ${maxMessageSize} bytes`);
    }
    if (!request.body) return jsonError(400, "Empty body", JSONRPC_PARSE_ERROR);
    // Count bytes as they arrive: Content-Length may be absent (chunked) or lie.
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of request.body) {
      size += chunk.byteLength;
      if (size > maxMessageSize) {
        return jsonError(413, `Message larger than ${maxMessageSize} bytes`);
      }
      chunks.push(chunk);
    }
    const text = new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
    try {
      return JSON.parse(text);
    } catch {
      return jsonError(400, "Parse error: the body is not valid JSON", JSONRPC_PARSE_ERROR);
    }
  }

  function countRequests(body: unknown): number {
    const messages = Array.isArray(body) ? body : [body];
    return messages.filter((m) => m && typeof m === "object" && "method" in m && "id" in m).length;
  }

  async function streamableHttp(request: Request): Promise<Response> {
    const sessionId = request.headers.get("mcp-session-id");
    let body: unknown;
    if (request.method === "POST") {
      const parsed = await readBody(request);
      if (parsed instanceof Response) return parsed;
      body = parsed;
    }
    if (sessionId !== null) {
      const session = httpSessions.get(sessionId);
      if (!session) return jsonError(404, "Session not found: initialize a new session");
      const requests = countRequests(body);
      if (draining && requests > 0) {
        return jsonError(503, "Shutting down: no new requests", TOO_MANY_REQUESTS);
      }
      if (session.inFlight.size + requests > maxInFlight) {
        return jsonError(
          429,
          `Too many requests in flight (limit ${maxInFlight})`,
          TOO_MANY_REQUESTS,
        );
      }
      session.lastSeen = performance.now();
      return await session.transport.handleRequest(request, { parsedBody: body });
    }
    if (request.method !== "POST" || !isInitialize(body)) {
      return jsonError(400, "Bad Request: no valid session ID; start with an initialize request");
    }
    if (draining) return jsonError(503, "Shutting down");
    if (sessionCount() >= maxSessions) {
      return jsonError(503, `Too many sessions (limit ${maxSessions})`);
    }
    const [[, { WebStandardStreamableHTTPServerTransport }], server] = await Promise.all([
      loadSessionKit(),
      deps.createServer(),
    ]);
    const transport: WebStandardStreamableHTTPServerTransport =
      new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => crypto.randomUUID(),
        onsessioninitialized: (id) => {
          // Called from handleRequest below, after `session` exists.
          httpSessions.set(id, session);
          sweeper ??= setInterval(sweepIdleHttpSessions, Math.min(httpIdleMs, 60_000));
        },
        onsessionclosed: (id) => {
          httpSessions.delete(id);
        },
      });
    transport.onclose = () => {
      if (transport.sessionId) httpSessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    const session: HttpSession = {
      transport,
      server,
      inFlight: new Set(),
      lastSeen: performance.now(),
    };
    trackInFlight(session);
    return await transport.handleRequest(request, { parsedBody: body });
  }

  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    // Every endpoint, health and the page included, refuses a foreign Host (DNS rebinding).
    const foreignHost = checkHost(request, deps.security);
    if (foreignHost) return jsonError(foreignHost.status, foreignHost.message);
    if (url.pathname === "/healthz" && request.method === "GET") return await health(request);
    const page = request.method === "GET" ? playgroundResponse(url.pathname) : undefined;
    if (page) return page;
    if (url.pathname !== "/ws" && url.pathname !== "/mcp") {
      return new Response("Not found. Endpoints: GET /ws, /mcp, GET /healthz, GET /\n", {
        status: 404,
      });
    }
    const refusal = await checkRequest(request, deps.security);
    if (refusal) {
      log("info", `refused ${request.method} ${url.pathname}: ${refusal.status}`);
      return jsonError(refusal.status, refusal.message);
    }
    if (url.pathname === "/ws") {
      if (draining) return new Response("Shutting down\n", { status: 503 });
      if (sessionCount() >= maxSessions) {
        return new Response(`Too many sessions (limit ${maxSessions})\n`, { status: 503 });
      }
      return await upgrade(request);
    }
    return await streamableHttp(request);
  };

  return Object.assign(handler, {
    sessions: () => ({ websocket: sockets.size, http: httpSessions.size }),
    inFlight: () =>
      [...sockets].reduce((sum, s) => sum + s.transport.inFlight, 0) +
      [...httpSessions.values()].reduce((sum, s) => sum + s.inFlight.size, 0),
    drain: () => {
      draining = true;
      for (const session of sockets) session.transport.drain();
    },
    closeAll: async () => {
      clearInterval(sweeper);
      sweeper = undefined;
      for (const session of sockets) session.close(CLOSE_GOING_AWAY, "server shutting down");
      await Promise.all([...sockets].map((s) => s.closed));
      await Promise.all([...httpSessions.values()].map((s) => s.transport.close()));
      httpSessions.clear();
    },
  });
}
