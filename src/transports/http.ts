/**
 * The network side of the daemon as one request handler: `GET /ws` (MCP
 * over WebSocket), `/mcp` (MCP Streamable HTTP, both protocol eras), `GET
 * /healthz`, the playground (`GET /` and its script and stylesheet) and,
 * with OAuth configured, the protected resource metadata
 * (`/.well-known/oauth-protected-resource[/mcp]`, see `oauth_resource.ts`).
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
import { missingScopes } from "../mcp/scopes.ts";
import { VERSION } from "../version.ts";
import { authInfoOf } from "./auth_info.ts";
import { createAuthLimiter } from "./auth_limiter.ts";
import { preflight, withCors } from "./cors.ts";
import { errorReply, JSONRPC_INVALID_REQUEST } from "./jsonrpc.ts";
import { playgroundResponse } from "./playground.ts";
import { readJsonBody } from "./request_body.ts";
import {
  authenticate,
  checkHost,
  checkOrigin,
  type Identity,
  isRefusal,
  offeredProtocols,
  presentedToken,
  type Refusal,
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
/** WebSocket close code "policy violation", sent when the connection's OAuth token expires. */
const CLOSE_POLICY = 1008;
/** Longest delay `setTimeout` takes (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
  /**
   * A request body must arrive within this time (else 408).
   * @default 30000
   */
  bodyTimeoutMs?: number;
  /**
   * Slowest acceptable body rate in bytes per second, after 5 s (else 408).
   * @default 1024
   */
  minBodyRate?: number;
  /**
   * Most requests whose bodies are still arriving; more get 503 at once.
   * @default 256
   */
  maxReceiving?: number;
  /**
   * Failed authentications per remote address and minute before 429.
   * @default 10
   */
  maxAuthFailures?: number;
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
  /** The metrics served at `GET /metrics` (Prometheus text); without them, 404. */
  metrics?: { render(): Promise<string>; readonly contentType: string };
  /** More of `/healthz` for token holders: hosts of pooled providers, the cache store. */
  fleetHealth?: () => Record<string, unknown>;
}

/** The handler and the controls the daemon needs around it. */
export interface Handler {
  /** Serves one request; `info` gives the remote address (for the failed-auth limit). */
  (request: Request, info?: { remoteAddr: Deno.Addr }): Promise<Response>;
  /** Open sessions by transport. */
  sessions(): { websocket: number; http: number };
  /**
   * Sessions and stateless requests opened and ended since the start (the
   * session cap's counts), for the memory release after load.
   */
  churn(): { opened: number; ended: number };
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

/** A refusal as a response, with its `WWW-Authenticate` challenge when it has one. */
function refusalResponse(refusal: Refusal): Response {
  const response = jsonError(refusal.status, refusal.message);
  if (refusal.challenge) response.headers.set("www-authenticate", refusal.challenge);
  if (refusal.status === 503) response.headers.set("retry-after", "5");
  return response;
}

/** Builds the request handler for the network endpoints. */
export function createHandler(deps: HandlerDeps): Handler {
  const limits = deps.limits ?? {};
  const slots = createSessionSlots(limits.maxSessions ?? 1024);
  const maxMessageSize = limits.maxMessageSize ?? 32 * 1024 * 1024;
  const maxReceiving = limits.maxReceiving ?? 256;
  const log = deps.log ?? (() => {});
  const authLimiter = createAuthLimiter({ maxFailures: limits.maxAuthFailures ?? 10 });
  let receiving = 0;
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

  async function health(request: Request, address: string): Promise<Response> {
    const body: Record<string, unknown> = {
      status: draining ? "draining" : "ok",
      version: VERSION,
      uptime_seconds: Math.round((performance.now() - startedAt) / 1000),
    };
    // With tokens configured, sessions and provider details are for token holders only.
    if (!(await authorize(request, address, "/healthz") instanceof Response)) {
      body.sessions = {
        websocket: sockets.size,
        http: http?.sessions() ?? 0,
        stdio: deps.stdioSessions?.() ?? 0,
      };
      body.providers = await probeProviders();
      Object.assign(body, deps.fleetHealth?.());
    }
    return new Response(JSON.stringify(body), { headers: JSON_HEADERS });
  }

  /**
   * `GET /metrics`: like `/healthz` it needs no Origin and refuses a foreign Host; with tokens
   * configured it answers token holders only (failures count like any other).
   */
  async function metrics(request: Request, address: string): Promise<Response> {
    const identity = await authorize(request, address, "/metrics");
    if (identity instanceof Response) return identity;
    const text = await deps.metrics!.render();
    return new Response(request.method === "HEAD" ? null : text, {
      headers: { "content-type": deps.metrics!.contentType },
    });
  }

  async function upgrade(request: Request, identity: Identity): Promise<Response> {
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
      // Deno matches the requested subprotocol only in lists spelled "a, b"; the header is
      // parsed here as RFC 6455 says, and the answer names "mcp" (which the client offered).
      const upgraded = Deno.upgradeWebSocket(request, {
        idleTimeout: limits.idleTimeoutSeconds ?? 60,
      });
      response = upgraded.response;
      response.headers.set("sec-websocket-protocol", "mcp");
      upgraded.socket.binaryType = "arraybuffer";
      // The connection's identity travels with it: its tasks belong to that identity.
      const factory: McpServerFactory = (ctx) => deps.factory({ ...ctx, ...authInfoOf(identity) });
      session = kit.attachWebSocket(upgraded.socket, factory, {
        ...limits,
        // No HTTP status after the upgrade: calls outside the token's scopes get JSON-RPC errors.
        ...(identity.scopes && deps.security.oauth &&
          { screen: deps.security.oauth.screen(identity.scopes) }),
        onError: (error) => log("warning", `websocket session: ${error.message}`),
      });
    } catch (error) {
      slots.release();
      throw error;
    }
    sockets.add(session);
    // The token was checked once, at the upgrade: the connection ends when it expires.
    const expiry = identity.expiresAt === undefined ? undefined : setTimeout(
      () => session.close(CLOSE_POLICY, "access token expired"),
      Math.min(Math.max(identity.expiresAt - Date.now(), 0), MAX_TIMER_MS),
    );
    session.closed.then(() => {
      clearTimeout(expiry);
      sockets.delete(session);
      slots.release();
    });
    return response;
  }

  /** Reads a POST body within its bounds; a `Response` is the refusal. */
  async function readBody(request: Request): Promise<unknown | Response> {
    if (receiving >= maxReceiving) {
      return jsonError(503, `Too many requests still sending their body (limit ${maxReceiving})`);
    }
    receiving++;
    try {
      const body = await readJsonBody(request, {
        maxBytes: maxMessageSize,
        timeoutMs: limits.bodyTimeoutMs,
        minBytesPerSecond: limits.minBodyRate,
      });
      if (!body.ok) {
        if (body.response.status === 408) log("info", "closed a request whose body was too slow");
        return body.response;
      }
      return body.value;
    } finally {
      receiving--;
    }
  }

  /**
   * Authenticates a request, counting failures per remote address: past the
   * limit the address gets 429 until its window ends. Check, comparison and
   * count happen in one synchronous step, so no burst gets more attempts.
   */
  function authorize(
    request: Request,
    address: string,
    path: string,
  ): Identity | Response | Promise<Identity | Response> {
    const verdict = authLimiter.check(address);
    if (!verdict.allowed) {
      if (verdict.firstRefusal) {
        log("info", `too many failed authentications from ${address}: refusing it for a while`);
      }
      return new Response(
        errorReply(
          null,
          JSONRPC_INVALID_REQUEST,
          `Too many failed authentications: retry in ${verdict.retryAfterSeconds} s`,
        ),
        {
          status: 429,
          headers: { ...JSON_HEADERS, "retry-after": String(verdict.retryAfterSeconds) },
        },
      );
    }
    const identity = authenticate(request, deps.security);
    // Configured tokens are checked synchronously; only an OAuth token waits for the resource
    // server (whose failures are still counted, after its answer).
    return identity instanceof Promise
      ? identity.then((value) => authorized(request, address, path, value))
      : authorized(request, address, path, identity);
  }

  /** The identity, or the refusal as a response with the failure counted. */
  function authorized(
    request: Request,
    address: string,
    path: string,
    identity: Identity | Refusal,
  ): Identity | Response {
    if (!isRefusal(identity)) return identity;
    // Only a presented token can be a guess (a request without one is how OAuth sign-in starts,
    // an expired token is how a refresh starts).
    if (identity.status === 401 && !identity.genuine && presentedToken(request) !== undefined) {
      authLimiter.failed(address);
    }
    log("debug", `refused ${request.method} ${path} from ${address}: ${identity.status}`);
    return refusalResponse(identity);
  }

  async function mcp(request: Request, address: string): Promise<Response> {
    const origin = request.headers.get("origin");
    if (request.method === "OPTIONS" && origin !== null) return preflight(request, origin);
    const identity = await authorize(request, address, "/mcp");
    if (identity instanceof Response) return withCors(identity, origin);
    let body: unknown;
    if (request.method === "POST") {
      const parsed = await readBody(request);
      if (parsed instanceof Response) return withCors(parsed, origin);
      body = parsed;
      // A call outside the token's scopes gets the 403 challenge before any session sees it.
      const missing = identity.scopes ? missingScopes(body, identity.scopes) : [];
      if (missing.length > 0 && deps.security.oauth) {
        return withCors(
          refusalResponse(deps.security.oauth.insufficientScope("/mcp", missing)),
          origin,
        );
      }
    }
    const endpoint = await streamableHttp();
    return withCors(await endpoint.handle(request, body, identity), origin);
  }

  const handler = async (
    request: Request,
    info?: { remoteAddr: Deno.Addr },
  ): Promise<Response> => {
    // Every endpoint, health and the page included, refuses a malformed or (on loopback)
    // foreign Host (DNS rebinding).
    const badHost = checkHost(request, deps.security);
    if (badHost) return jsonError(badHost.status, badHost.message);
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      return jsonError(400, "Bad Request: the request target is not a valid URL.");
    }
    const remote = info?.remoteAddr;
    const address = remote && "hostname" in remote ? remote.hostname : "local";
    if (url.pathname === "/healthz") {
      if (request.method === "GET" || request.method === "HEAD") {
        return await health(request, address);
      }
      return new Response("Method not allowed: use GET /healthz\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    const metadata = deps.security.oauth?.metadataResponse(request, url.pathname);
    if (metadata) return metadata;
    if (url.pathname === "/metrics" && deps.metrics) {
      if (request.method === "GET" || request.method === "HEAD") {
        return await metrics(request, address);
      }
      return new Response("Method not allowed: use GET /metrics\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    const page = request.method === "GET" ? playgroundResponse(url.pathname) : undefined;
    if (page) return page;
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
    if (url.pathname === "/mcp") return await mcp(request, address);
    const identity = await authorize(request, address, url.pathname);
    if (identity instanceof Response) return identity;
    return await upgrade(request, identity);
  };

  return Object.assign(handler, {
    sessions: () => ({ websocket: sockets.size, http: http?.sessions() ?? 0 }),
    churn: () => ({ opened: slots.opened, ended: slots.ended }),
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
