/**
 * Rune as an OAuth 2.1 resource server, as the MCP authorization
 * specification (2025-11-25, 2026-07-28) prescribes for HTTP transports.
 *
 * - **Protected resource metadata** (RFC 9728) at
 *   `/.well-known/oauth-protected-resource` (resource: the public origin)
 *   and at the path-suffixed `/.well-known/oauth-protected-resource/mcp`
 *   (resource: `<origin>/mcp`), naming the trusted issuers, Rune's scopes
 *   and the `header` bearer method.
 * - **Challenges**: a request without a token gets 401 with
 *   `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (no `error`,
 *   as RFC 6750 §3.1 asks when no credentials were sent); a bad token gets
 *   401 with `error="invalid_token"`; a token lacking a scope gets 403 with
 *   `error="insufficient_scope"` and every missing scope at once. The SDK's
 *   `bearerAuthChallengeResponse` always adds `error=` and answers with an
 *   OAuth error body, while Rune's refusals are JSON-RPC errors, so the
 *   header is formatted here, after RFC 6750's grammar.
 * - **Tokens**: JWTs are checked locally (`jwt_verifier.ts`); anything else
 *   through introspection when configured (`introspection.ts`). Either way
 *   the token's audience must be one of this server's identifiers: the
 *   origin or `<origin>/mcp` (both documents above name one, and a client
 *   may have used either). A token is good for `/mcp` and `/ws` alike.
 * - **Identity**: `oauth:` and 32 hex digits of SHA-256 over the issuer,
 *   the subject (`sub`) and the client (`client_id`), made in
 *   {@linkcode oauthIdentityId} only. It owns sessions and tasks and keys
 *   logs and metrics; being a digest, it carries no personal data.
 *
 * The token itself goes nowhere: not into logs, not to the SDK (`authInfo`
 * carries the identity), never upstream.
 *
 * @module
 */

import type { OAuthProtectedResourceMetadata } from "@modelcontextprotocol/server";
import type { Logger } from "../log.ts";
import { DEFAULT_SCOPES, missingScopes, RUNE_SCOPES, runeScopesIn } from "../mcp/scopes.ts";
import { createIntrospector, type Introspector } from "./introspection.ts";
import { FORBIDDEN } from "./jsonrpc.ts";
import {
  createJwtVerifier,
  type JwtVerifier,
  looksLikeJwt,
  type VerifiedToken,
} from "./jwt_verifier.ts";
import { type Identity, isLoopback, type Refusal } from "./security.ts";
import { IssuerUnavailableError, TokenRejectedError } from "./token_errors.ts";

/** Where RFC 9728 puts the metadata document. */
export const METADATA_PATH = "/.well-known/oauth-protected-resource";

/** Client credentials and address of an RFC 7662 introspection endpoint. */
export interface IntrospectionSettings {
  /** The endpoint URL. */
  endpoint: string;
  /** Rune's client id there. */
  clientId: string;
  /** Rune's client secret there. */
  clientSecret: string;
}

/** Options of {@linkcode createResourceServer}. */
export interface ResourceServerOptions {
  /**
   * Rune's public origin (`--public-url`, see {@linkcode parsePublicUrl});
   * when left out, {@linkcode ResourceServer.listening} sets it once the
   * port is known.
   */
  publicUrl?: string;
  /** Trusted issuers (`--oauth-issuer`), at least one. */
  issuers: readonly string[];
  /** Introspection of opaque tokens, when configured. */
  introspection?: IntrospectionSettings;
  /**
   * Tolerated clock difference for `exp` and `nbf`, in seconds.
   * @default 30
   */
  clockToleranceSeconds?: number;
  /**
   * Least time between two key set fetches for an unknown `kid`.
   * @default 30000
   */
  jwksCooldownMs?: number;
  /**
   * After a failed metadata discovery, tokens of that issuer get 503 for
   * this long before discovery is tried again.
   * @default 5000
   */
  discoveryRetryMs?: number;
  /**
   * How long an introspected token is remembered.
   * @default 30000
   */
  introspectionCacheMs?: number;
  /** The `fetch` to reach issuers with. @default fetch */
  fetch?: typeof fetch;
  /** Diagnostics sink. */
  log?: Logger;
}

/** The resource server. */
export interface ResourceServer {
  /** The canonical resource identifier: the public origin. */
  readonly resource: string;
  /** Every identifier a token's audience may name. */
  readonly audiences: readonly string[];
  /** Sets the public origin from the bound address, unless one was configured. */
  listening(origin: string): void;
  /** The metadata document URL to advertise for an endpoint path (`/mcp`, `/ws`). */
  metadataUrl(path: string): string;
  /** Serves the metadata documents; undefined for any other path. */
  metadataResponse(request: Request, pathname: string): Response | undefined;
  /**
   * Checks a presented token (undefined: none was sent) for a request to
   * `path`: the identity, or the refusal (401, 403, 503) with its challenge.
   */
  authenticate(
    token: string | undefined,
    path: string,
    signal?: AbortSignal,
  ): Promise<Identity | Refusal>;
  /** The 403 refusal for a request needing `scopes` that the token lacks. */
  insufficientScope(path: string, scopes: readonly string[]): Refusal;
  /**
   * The WebSocket counterpart of the 403: once upgraded there is no HTTP
   * status, so a `tools/call` outside `granted` is answered with a JSON-RPC
   * error carrying the challenge's parameters as `data`.
   */
  screen(
    granted: readonly string[],
  ): (message: { method: string; params?: unknown }) => ScopeError | undefined;
}

/** The JSON-RPC error a WebSocket client gets for a call outside its scopes. */
export interface ScopeError {
  /** {@linkcode FORBIDDEN}. */
  code: number;
  /** Says which scopes are missing and what to do. */
  message: string;
  /** The challenge parameters, as in the HTTP header. */
  data: { error: "insufficient_scope"; scope: string; resource_metadata: string };
}

/**
 * Checks `--public-url`: an `https://` origin (scheme, host, port; no path,
 * query or fragment), or `http://` on a loopback address. Returns the
 * origin without a trailing slash; throws a `TypeError` saying what is wrong.
 */
export function parsePublicUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError(`${value} is not an http(s) URL`);
  }
  if (url.pathname !== "/" || url.search || url.hash) {
    throw new TypeError(
      `${value} has a path, query or fragment: give the origin Rune is reached at ` +
        "(e.g. https://rune.example.com); /mcp and /ws are added to it",
    );
  }
  if (url.username || url.password) throw new TypeError(`${value} must not contain credentials`);
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    throw new TypeError(
      `${value} is plain http: bearer tokens must travel over TLS. Use https:// (with ` +
        "--tls-cert and --tls-key, or behind a TLS-terminating proxy)",
    );
  }
  return url.origin;
}

const encoder = new TextEncoder();

/**
 * The identity of a verified token: `oauth:` and the first 128 bits of
 * SHA-256 over its issuer, subject and client, in hex. The same user in
 * the same client keeps it across token refreshes; nothing personal can be
 * read from it.
 */
export async function oauthIdentityId(token: VerifiedToken): Promise<string> {
  const material = JSON.stringify([token.issuer, token.subject ?? "", token.clientId ?? ""]);
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(material)));
  return "oauth:" +
    Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An RFC 6750 quoted value: no `"` or `\`, printable ASCII only. */
function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, " ")}"`;
}

/** Formats a `WWW-Authenticate: Bearer` challenge. */
export function bearerChallenge(params: {
  error?: string;
  description?: string;
  scope?: readonly string[];
  resourceMetadata: string;
}): string {
  const parts: string[] = [];
  if (params.error) parts.push(`error=${quoted(params.error)}`);
  if (params.error && params.scope?.length) parts.push(`scope=${quoted(params.scope.join(" "))}`);
  parts.push(`resource_metadata=${quoted(params.resourceMetadata)}`);
  if (!params.error && params.scope?.length) parts.push(`scope=${quoted(params.scope.join(" "))}`);
  if (params.description) parts.push(`error_description=${quoted(params.description)}`);
  return `Bearer ${parts.join(", ")}`;
}

const METADATA_HEADERS = {
  "content-type": "application/json",
  // Browser-based clients on any origin read it (RFC 9728 documents are public).
  "access-control-allow-origin": "*",
};

/** Creates the resource server. */
export function createResourceServer(options: ResourceServerOptions): ResourceServer {
  if (options.issuers.length === 0) throw new TypeError("at least one issuer is required");
  const log = options.log ?? (() => {});
  let origin: string | undefined;
  let jwt: JwtVerifier | undefined;
  let introspector: Introspector | undefined;

  function configure(publicOrigin: string): void {
    origin = publicOrigin;
    const audiences = [origin, `${origin}/mcp`];
    jwt = createJwtVerifier({
      issuers: options.issuers,
      audiences,
      clockToleranceSeconds: options.clockToleranceSeconds,
      jwksCooldownMs: options.jwksCooldownMs,
      discoveryRetryMs: options.discoveryRetryMs,
      fetch: options.fetch,
    });
    if (options.introspection) {
      introspector = createIntrospector({
        ...options.introspection,
        issuers: options.issuers,
        audiences,
        clockToleranceSeconds: options.clockToleranceSeconds,
        cacheTtlMs: options.introspectionCacheMs,
        fetch: options.fetch,
      });
    }
  }
  if (options.publicUrl !== undefined) configure(options.publicUrl);

  function base(): string {
    // listening() runs right after Deno.serve returns, before any request is handled.
    if (origin === undefined) throw new Error("the resource server has no public URL yet");
    return origin;
  }

  function metadataUrl(path: string): string {
    return path === "/mcp" ? `${base()}${METADATA_PATH}/mcp` : `${base()}${METADATA_PATH}`;
  }

  function document(resource: string): OAuthProtectedResourceMetadata {
    return {
      resource,
      authorization_servers: [...options.issuers],
      scopes_supported: [...RUNE_SCOPES],
      bearer_methods_supported: ["header"],
      resource_name: "Rune",
    };
  }

  function unauthorized(
    path: string,
    message: string,
    description?: string,
    genuine = false,
  ): Refusal {
    return {
      status: 401,
      message,
      ...(genuine && { genuine }),
      challenge: bearerChallenge({
        ...(description !== undefined && { error: "invalid_token", description }),
        scope: DEFAULT_SCOPES,
        resourceMetadata: metadataUrl(path),
      }),
    };
  }

  function insufficientScope(path: string, scopes: readonly string[]): Refusal {
    const description = `This needs the scope ${scopes.join(" and ")}: sign in again granting it.`;
    return {
      status: 403,
      message: description,
      challenge: bearerChallenge({
        error: "insufficient_scope",
        scope: scopes,
        resourceMetadata: metadataUrl(path),
        description,
      }),
    };
  }

  async function verify(token: string, signal?: AbortSignal): Promise<VerifiedToken> {
    if (looksLikeJwt(token)) return await jwt!.verify(token, signal);
    if (introspector) return await introspector.verify(token, signal);
    throw new TokenRejectedError(
      "The access token is not a JWT, and this server has no introspection endpoint for opaque tokens.",
    );
  }

  return {
    get resource() {
      return base();
    },
    get audiences() {
      return [base(), `${base()}/mcp`];
    },
    listening(publicOrigin) {
      if (origin === undefined) configure(publicOrigin);
    },
    metadataUrl,
    metadataResponse(request, pathname) {
      const resource = pathname === METADATA_PATH
        ? base()
        : pathname === `${METADATA_PATH}/mcp`
        ? `${base()}/mcp`
        : undefined;
      if (resource === undefined) return undefined;
      if (request.method === "OPTIONS") {
        return new Response(null, {
          status: 204,
          headers: {
            "access-control-allow-origin": "*",
            "access-control-allow-methods": "GET, HEAD, OPTIONS",
          },
        });
      }
      if (request.method !== "GET" && request.method !== "HEAD") {
        return new Response(`Method not allowed: use GET ${pathname}\n`, {
          status: 405,
          headers: { allow: "GET, HEAD, OPTIONS" },
        });
      }
      const body = request.method === "HEAD" ? null : JSON.stringify(document(resource));
      return new Response(body, { headers: METADATA_HEADERS });
    },
    async authenticate(token, path, signal) {
      if (token === undefined) {
        return unauthorized(
          path,
          `Sign in first: this server takes OAuth access tokens (discovery: ${metadataUrl(path)}).`,
        );
      }
      let verified: VerifiedToken;
      try {
        verified = await verify(token, signal);
      } catch (error) {
        if (error instanceof TokenRejectedError) {
          log("debug", `refused an access token: ${error.message}`);
          return unauthorized(path, error.message, error.message, error.genuine);
        }
        if (error instanceof IssuerUnavailableError) {
          log("warning", error.message);
          return {
            status: 503,
            message: "The access token cannot be checked now: its issuer did not answer.",
          };
        }
        throw error;
      }
      if (verified.subject === undefined && verified.clientId === undefined) {
        const message = "The access token names neither a subject (sub) nor a client (client_id).";
        return unauthorized(path, message, message, true);
      }
      const scopes = runeScopesIn(verified.scopes);
      const id = await oauthIdentityId(verified);
      if (scopes.length === 0) return insufficientScope(path, DEFAULT_SCOPES);
      log(
        "debug",
        `accepted an access token for ${id} (client ${verified.clientId ?? "?"}, scopes ${
          scopes.join(" ")
        })`,
      );
      return { id, scopes, expiresAt: verified.expiresAt * 1000 };
    },
    insufficientScope,
    screen(granted) {
      return (message) => {
        const missing = missingScopes(message, granted);
        if (missing.length === 0) return undefined;
        const refusal = insufficientScope("/ws", missing);
        return {
          code: FORBIDDEN,
          message: `${refusal.message} (reconnect with the new token)`,
          data: {
            error: "insufficient_scope",
            scope: missing.join(" "),
            resource_metadata: metadataUrl("/ws"),
          },
        };
      };
    },
  };
}
