/**
 * Request checks for the network endpoints: Origin allowlist, Host header
 * check against DNS rebinding, and bearer tokens compared in constant time.
 *
 * Several tokens may be configured (one per client, e.g. one per line of
 * `--token-file`); each is its own identity, which owns the sessions opened
 * with it. With OAuth configured (`--oauth-issuer`), a token that is none
 * of those goes to the resource server (`oauth_resource.ts`), whose
 * identities also carry the token's scopes.
 *
 * @module
 */

import type { ResourceServer } from "./oauth_resource.ts";

/** Security settings of the network listener. */
export interface SecurityOptions {
  /** The address the listener is bound to. */
  hostname: string;
  /** Origins allowed besides localhost ones (exact `scheme://host[:port]`). */
  allowedOrigins?: string[];
  /** Accepted bearer tokens; none required when empty or undefined (and no `oauth`). */
  tokens?: string[];
  /** Checks OAuth access tokens; with it, every request needs a token. */
  oauth?: ResourceServer;
}

/** Why a request was refused. */
export interface Refusal {
  /** HTTP status: 400, 401, 403 or (an issuer did not answer) 503. */
  status: number;
  /** Explanation, safe to show (never contains the token). */
  message: string;
  /** The `WWW-Authenticate` value to send with a 401 or 403, if any. */
  challenge?: string;
  /**
   * The credential is authentic but unusable (an expired OAuth token): not a
   * guess, so the failed-auth limiter does not count it.
   */
  genuine?: boolean;
}

/** Who a request comes from, as far as Rune can tell. */
export interface Identity {
  /**
   * A stable, non-secret name: `token:N` for the Nth configured token,
   * `anonymous` when no token is required, `oauth:HEX` for an OAuth access
   * token (see `oauthIdentityId`).
   */
  id: string;
  /** The Rune scopes an OAuth token grants; undefined means every tool. */
  scopes?: readonly string[];
  /** When the OAuth token expires (ms since the epoch). */
  expiresAt?: number;
}

/** The identity of requests when no token is configured. */
export const ANONYMOUS: Identity = { id: "anonymous" };

/** True when the value is a refusal rather than an identity. */
export function isRefusal(value: Identity | Refusal): value is Refusal {
  return "status" in value;
}

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** True for addresses that only this machine can reach. */
export function isLoopback(hostname: string): boolean {
  return LOOPBACK_NAMES.has(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * True for `https:` URLs, and `http:` ones on this machine: where bearer
 * tokens and OAuth requests may go.
 */
export function isSecureOrLoopback(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return url.protocol === "https:" || (url.protocol === "http:" && isLoopback(url.hostname));
}

function hostnameOf(hostHeader: string): string {
  try {
    return new URL(`http://${hostHeader}`).hostname;
  } catch {
    return "";
  }
}

/** Compares origins after normalising (`https://App.example/` equals `https://app.example`). */
function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return a === b;
  }
}

/** Checks the Origin header: none, a localhost origin, or an allowed one. */
export function checkOrigin(request: Request, options: SecurityOptions): Refusal | undefined {
  const origin = request.headers.get("origin");
  if (origin === null) return undefined;
  if (options.allowedOrigins?.some((allowed) => sameOrigin(allowed, origin))) return undefined;
  let hostname = "";
  try {
    const url = new URL(origin);
    if (url.protocol === "http:" || url.protocol === "https:") hostname = url.hostname;
  } catch {
    // Unparseable (or "null") origins are refused below.
  }
  if (hostname && isLoopback(hostname)) return undefined;
  return {
    status: 403,
    message:
      `Origin ${origin} is not allowed: start rune with --allow-origin ${origin} to allow it.`,
  };
}

/**
 * Refuses a malformed Host header (400) and, when bound to loopback, a
 * foreign one (403, DNS rebinding).
 */
export function checkHost(request: Request, options: SecurityOptions): Refusal | undefined {
  let host = request.headers.get("host");
  if (host !== null && (/\s/.test(host) || hostnameOf(host) === "")) {
    return { status: 400, message: "Bad Request: the Host header is not a valid host[:port]." };
  }
  if (!isLoopback(options.hostname)) return undefined;
  // HTTP/2 (what clients speak over TLS) has no Host header: its :authority is the URL's host.
  // Browsers, which DNS rebinding abuses, always send one of the two.
  if (host === null) host = new URL(request.url).host;
  if (host !== null && isLoopback(hostnameOf(host))) return undefined;
  return {
    status: 403,
    message: `Host ${JSON.stringify(host)} is not this machine: refused to prevent DNS rebinding.`,
  };
}

const encoder = new TextEncoder();

/**
 * Compares a presented secret with a configured one in time independent of
 * where they differ.
 *
 * Synchronous on purpose: the failed-authentication limit checks an
 * address, compares and counts a failure in one step, with no await in
 * between. Deno hands several requests to the handler before their awaits
 * resume, so an asynchronous comparison (Web Crypto digests) let a burst of
 * 50 wrong tokens get 14 comparisons past a limit of 10.
 */
export function sameSecret(presented: string, configured: string): boolean {
  const x = encoder.encode(presented);
  const y = encoder.encode(configured);
  // The loop runs over the configured secret whatever is presented and never exits early, so
  // the time depends only on the configured length (and on the length of what the client sent,
  // which the client knows), never on where the two differ.
  let difference = x.length ^ y.length;
  for (let i = 0; i < y.length; i++) difference |= (i < x.length ? x[i] : 0) ^ y[i];
  return difference === 0;
}

/** The subprotocol prefix browsers use to send the token on a WebSocket. */
export const BEARER_PROTOCOL_PREFIX = "bearer.";

/**
 * Lists the entries of `Sec-WebSocket-Protocol` as RFC 6455 defines it: a
 * comma-separated list of tokens with optional whitespace around each
 * (`mcp,bearer.X`, `x, mcp` and `mcp , x` all offer `mcp`); several header
 * lines are joined by the Headers API with ", ".
 */
export function offeredProtocols(request: Request): string[] {
  return (request.headers.get("sec-websocket-protocol") ?? "")
    .split(",").map((p) => p.trim()).filter(Boolean);
}

/** The bearer token a request presents, from `Authorization` or a `bearer.TOKEN` subprotocol. */
export function presentedToken(request: Request): string | undefined {
  const header = request.headers.get("authorization");
  if (header !== null && /^bearer\s/i.test(header)) return header.slice(7).trim();
  return offeredProtocols(request)
    .find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX))
    ?.slice(BEARER_PROTOCOL_PREFIX.length);
}

/**
 * Authenticates a request: the identity of the configured token it presents
 * (every token is compared, so the time does not tell which one matched),
 * else what the OAuth resource server makes of it when there is one,
 * {@linkcode ANONYMOUS} when no token is configured, or a 401 refusal.
 * Synchronous for configured tokens (see {@linkcode sameSecret}); a
 * promise only when the OAuth resource server is consulted, which has its
 * own deadlines and cache.
 */
export function authenticate(
  request: Request,
  options: SecurityOptions,
): Identity | Refusal | Promise<Identity | Refusal> {
  const tokens = options.tokens ?? [];
  if (tokens.length === 0 && !options.oauth) return ANONYMOUS;
  const presented = presentedToken(request);
  if (presented !== undefined && tokens.length > 0) {
    const matches = tokens.map((token) => sameSecret(presented, token));
    const index = matches.indexOf(true);
    if (index >= 0) return { id: `token:${index + 1}` };
  }
  if (options.oauth) {
    // Not request.signal: reading it makes Deno warn about its legacy abort semantics, and
    // token checks are bounded by their own deadlines.
    return options.oauth.authenticate(presented || undefined, new URL(request.url).pathname);
  }
  return {
    status: 401,
    message: presented === undefined
      ? "A bearer token is required: send Authorization: Bearer TOKEN (browsers: subprotocol bearer.TOKEN)."
      : "The bearer token is wrong.",
  };
}
