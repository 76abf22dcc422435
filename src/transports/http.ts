/**
 * The network side of the daemon as one request handler: `GET /ws` (MCP
 * over WebSocket), `/mcp` (MCP Streamable HTTP, both protocol eras), `GET
 * /healthz` and the `GET /` playground page.
 *
 * {@linkcode createHandler} builds the handler from its dependencies and
 * knows nothing of listening; `cli/serve.ts` passes it to `Deno.serve`.
 * Every WebSocket and legacy HTTP session gets its own MCP server instance;
 * 2026-07-28 HTTP requests get one each.
 *
 * @module
 */

import type { McpServerFactory } from "@modelcontextprotocol/server";
import type { Logger } from "../log.ts";
import type { Provider } from "../providers/types.ts";
import { VERSION } from "../version.ts";
import { preflight, withCors } from "./cors.ts";
import { exceedsDepth } from "./json_depth.ts";
import { errorReply, JSONRPC_INVALID_REQUEST, JSONRPC_PARSE_ERROR } from "./jsonrpc.ts";
import { PLAYGROUND_HTML } from "./playground.ts";
import {
  checkHost,
  checkOrigin,
  checkToken,
  offeredProtocols,
  type SecurityOptions,
} from "./security.ts";
import { createSessionSlots } from "./session_slots.ts";
import type { StreamableHttp, StreamableHttpLimits } from "./streamable_http.ts";
import type { WebSocketLimits, WebSocketSession } from "./websocket.ts";

/**
 * The session machinery (MCP SDK, zod, transports), loaded when the first
 * session starts: an idle daemon then holds only the listener, which keeps
 * its memory small.
 */
let sessionKit:
  | Promise<[typeof import("./websocket.ts"), typeof import("./streamable_http.ts")]>
  | undefined;

function loadSessionKit() {
  return sessionKit ??= Promise.all([import("./websocket.ts"), import("./streamable_http.ts")]);
}

/** WebSocket close code "going away", sent on shutdown. */
const CLOSE_GOING_AWAY = 1001;

/** Limits of the network endpoints. */
export interface NetworkLimits extends WebSocketLimits, StreamableHttpLimits {
  /**
   * Most concurrent sessions over WebSocket and HTTP together, counting each
   * stateless (2026-07-28) HTTP request in flight as one.
   * @default 1024
   */
  maxSessions?: number;
  /**
   * WebSocket idle timeout in seconds (ping/pong).
   * @default 60
   */
  idleTimeoutSeconds?: number;
}

/** Dependencies of {@linkcode createHandler}. */
export interface HandlerDeps {
  /** Builds the MCP server instances (may load the MCP machinery on first use). */
  factory: McpServerFactory;
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

const JSON_HEADERS = { "content-type": "application/json" };

function jsonError(status: number, message: string, code = JSONRPC_INVALID_REQUEST): Response {
  return new Response(errorReply(null, code, message), { status, headers: JSON_HEADERS });
}

/** Builds the request handler for the network endpoints. */
export function createHandler(deps: HandlerDeps): Handler {
  const limits = deps.limits ?? {};
  const slots = createSessionSlots(limits.maxSessions ?? 1024);
  const maxMessageSize = limits.maxMessageSize ?? 32 * 1024 * 1024;
  const log = deps.log ?? (() => {});
  const startedAt = performance.now();
  const sockets = new Set<WebSocketSession>();
  let http: StreamableHttp | undefined;
  let draining = false;

  async function streamableHttp(): Promise<StreamableHttp> {
    const [, { createStreamableHttp }] = await loadSessionKit();
    http ??= createStreamableHttp({ factory: deps.factory, slots, limits, log });
    if (draining) http.drain();
    return http;
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
        http: http?.sessions() ?? 0,
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
    if (draining) return new Response("Shutting down\n", { status: 503 });
    // Reserved before any await, so no burst can exceed the cap.
    if (!slots.tryReserve()) {
      return new Response(`Too many sessions (limit ${slots.limit})\n`, { status: 503 });
    }
    let session: WebSocketSession;
    let response: Response;
    try {
      const [kit] = await loadSessionKit();
      const upgraded = Deno.upgradeWebSocket(request, {
        protocol: "mcp",
        idleTimeout: limits.idleTimeoutSeconds ?? 60,
      });
      response = upgraded.response;
      upgraded.socket.binaryType = "arraybuffer";
      session = kit.attachWebSocket(upgraded.socket, deps.factory, {
        ...limits,
        onError: (error) => log("warning", `websocket session: ${error.message}`),
      });
    } catch (error) {
      slots.release();
      throw error;
    }
    sockets.add(session);
    session.closed.then(() => {
      sockets.delete(session);
      slots.release();
    });
    return response;
  }

  /** Reads a POST body under the size bound; a `Response` is the refusal. */
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
    if (exceedsDepth(text)) {
      return jsonError(400, "Invalid Request: the body nests arrays and objects too deeply");
    }
    try {
      return JSON.parse(text);
    } catch {
      return jsonError(400, "Parse error: the body is not valid JSON", JSONRPC_PARSE_ERROR);
    }
  }

  async function mcp(request: Request): Promise<Response> {
    const origin = request.headers.get("origin");
    if (request.method === "OPTIONS" && origin !== null) return preflight(request, origin);
    const refusal = await checkToken(request, deps.security);
    if (refusal) {
      log("info", `refused ${request.method} /mcp: ${refusal.status}`);
      return withCors(jsonError(refusal.status, refusal.message), origin);
    }
    let body: unknown;
    if (request.method === "POST") {
      const parsed = await readBody(request);
      if (parsed instanceof Response) return withCors(parsed, origin);
      body = parsed;
    }
    const endpoint = await streamableHttp();
    return withCors(await endpoint.handle(request, body), origin);
  }

  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    // Every endpoint, health and the page included, refuses a foreign Host (DNS rebinding).
    const foreignHost = checkHost(request, deps.security);
    if (foreignHost) return jsonError(foreignHost.status, foreignHost.message);
    if (url.pathname === "/healthz") {
      if (request.method === "GET" || request.method === "HEAD") return await health(request);
      return new Response("Method not allowed: use GET /healthz\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    if (url.pathname === "/" && request.method === "GET") {
      return new Response(PLAYGROUND_HTML, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "content-security-policy":
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:",
        },
      });
    }
    if (url.pathname !== "/ws" && url.pathname !== "/mcp") {
      return new Response("Not found. Endpoints: GET /ws, /mcp, GET /healthz, GET /\n", {
        status: 404,
      });
    }
    const foreignOrigin = checkOrigin(request, deps.security);
    if (foreignOrigin) {
      log("info", `refused ${request.method} ${url.pathname}: ${foreignOrigin.status}`);
      return jsonError(foreignOrigin.status, foreignOrigin.message);
    }
    if (url.pathname === "/mcp") return await mcp(request);
    const refusal = await checkToken(request, deps.security);
    if (refusal) {
      log("info", `refused ${request.method} ${url.pathname}: ${refusal.status}`);
      return jsonError(refusal.status, refusal.message);
    }
    return await upgrade(request);
  };

  return Object.assign(handler, {
    sessions: () => ({ websocket: sockets.size, http: http?.sessions() ?? 0 }),
    inFlight: () =>
      [...sockets].reduce((sum, s) => sum + s.transport.inFlight, 0) + (http?.inFlight() ?? 0),
    drain: () => {
      draining = true;
      http?.drain();
      for (const session of sockets) session.transport.drain();
    },
    closeAll: async () => {
      for (const session of sockets) session.close(CLOSE_GOING_AWAY, "server shutting down");
      await Promise.all([...sockets].map((s) => s.closed));
      await http?.closeAll();
    },
  });
}
