/**
 * Request checks for the network endpoints: Origin allowlist, Host header
 * check against DNS rebinding, and bearer tokens compared in constant time.
 *
 * @module
 */

/** Security settings of the network listener. */
export interface SecurityOptions {
  /** The address the listener is bound to. */
  hostname: string;
  /** Origins allowed besides localhost ones (exact `scheme://host[:port]`). */
  allowedOrigins?: string[];
  /** Required bearer token; none when undefined. */
  token?: string;
}

/** Why a request was refused. */
export interface Refusal {
  /** HTTP status: 401 or 403. */
  status: number;
  /** Explanation, safe to show (never contains the token). */
  message: string;
}

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** True for addresses that only this machine can reach. */
export function isLoopback(hostname: string): boolean {
  return LOOPBACK_NAMES.has(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
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

/** Refuses a foreign Host header when bound to loopback (DNS rebinding). */
export function checkHost(request: Request, options: SecurityOptions): Refusal | undefined {
  if (!isLoopback(options.hostname)) return undefined;
  const host = request.headers.get("host");
  if (host !== null && isLoopback(hostnameOf(host))) return undefined;
  return {
    status: 403,
    message: `Host ${JSON.stringify(host)} is not this machine: refused to prevent DNS rebinding.`,
  };
}

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/** Compares two secrets in time independent of where they differ. */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  // Hashing first makes the lengths equal, so length does not leak either; the loop never
  // exits early, so the time does not depend on where the digests differ.
  const [x, y] = await Promise.all([digest(a), digest(b)]);
  let difference = 0;
  for (let i = 0; i < x.length; i++) difference |= x[i] ^ y[i];
  return difference === 0;
}

/** The subprotocol prefix browsers use to send the token on a WebSocket. */
export const BEARER_PROTOCOL_PREFIX = "bearer.";

/** Lists the entries of `Sec-WebSocket-Protocol`. */
export function offeredProtocols(request: Request): string[] {
  return (request.headers.get("sec-websocket-protocol") ?? "")
    .split(",").map((p) => p.trim()).filter(Boolean);
}

/**
 * Checks the bearer token from `Authorization` or, for WebSockets, from a
 * `bearer.TOKEN` subprotocol entry.
 */
export async function checkToken(
  request: Request,
  options: SecurityOptions,
): Promise<Refusal | undefined> {
  if (options.token === undefined) return undefined;
  const header = request.headers.get("authorization");
  let presented: string | undefined;
  if (header?.toLowerCase().startsWith("bearer ")) presented = header.slice(7).trim();
  presented ??= offeredProtocols(request)
    .find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX))
    ?.slice(BEARER_PROTOCOL_PREFIX.length);
  if (presented !== undefined && await sameSecret(presented, options.token)) return undefined;
  return {
    status: 401,
    message: presented === undefined
      ? "A bearer token is required: send Authorization: Bearer TOKEN (browsers: subprotocol bearer.TOKEN)."
      : "The bearer token is wrong.",
  };
}

/** Runs the Host, Origin and token checks in that order. */
export async function checkRequest(
  request: Request,
  options: SecurityOptions,
): Promise<Refusal | undefined> {
  return checkHost(request, options) ?? checkOrigin(request, options) ??
    await checkToken(request, options);
}
