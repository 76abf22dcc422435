/**
 * Tells apart why `fetch` failed before any reply: a missing Deno
 * permission, a redirect loop, a TLS failure, a DNS failure, a refused
 * connection, or a connection reset.
 *
 * Deno's `fetch` throws `Deno.errors.NotCapable` for a missing `--allow-net`
 * permission, and otherwise a `TypeError("fetch failed")` whose `cause` is
 * an `Error` carrying the HTTP client's text (seen on Deno 2.9):
 *
 * - refused: `... client error (Connect): tcp connect error: Connection refused (os error 111)`
 * - DNS: `... client error (Connect): dns error: failed to lookup address information: ...`
 * - TLS: `... client error (Connect): invalid peer certificate: ...` or
 *   `... received corrupt message of type InvalidContentType` (HTTPS to a plain HTTP server)
 * - reset: `... client error (SendRequest): connection closed before message completed`
 *   (also `Connection reset by peer (os error 104)`, `Broken pipe`)
 * - redirect loop: `TypeError("Fetch failed: Maximum number of redirects (20) reached")`
 *
 * Matching text is the only way to tell these apart (no codes are
 * exposed), so it is done here only, on the whole `cause` chain, and
 * anything unknown falls back to a plain "cannot reach" message that shows
 * the client's own text.
 *
 * @module
 */

import {
  type ProviderError,
  ProviderPermissionError,
  ProviderUnreachableError,
  type UnreachableReason,
} from "./errors.ts";

/** Who failed to answer, for the messages. */
export interface Upstream {
  /** Display name, e.g. `Ollama`. */
  name: string;
  /** `host:port` (and path) for messages. */
  address: string;
  /** Base URL the request went to; its `host:port` is what `--allow-net` needs. */
  baseUrl: string;
  /**
   * What to check when nothing listens there, e.g.
   * `is "ollama serve" running? Set OLLAMA_HOST or --ollama-host if it listens elsewhere.`
   */
  unreachableHint: string;
  /** Where the address is configured, e.g. `OLLAMA_HOST or --ollama-host`. */
  addressSetting: string;
}

const PATTERNS: [UnreachableReason, RegExp][] = [
  ["redirect-loop", /maximum number of redirects|redirect loop|too many redirects/i],
  [
    "dns",
    /dns error|failed to lookup address|name or service not known|nodename nor servname|no such host|name resolution/i,
  ],
  [
    "tls",
    /invalid peer certificate|certificate|tls|ssl|handshake|corrupt message|InvalidContentType|alert/i,
  ],
  ["refused", /connection refused|os error 111|ECONNREFUSED|actively refused|os error 10061/i],
  [
    "reset",
    /connection reset|os error 104|ECONNRESET|connection closed before message completed|broken pipe|os error 32|connection aborted|unexpected eof/i,
  ],
];

/** The typed error for a `fetch` that failed before the response headers. */
export function fetchFailure(upstream: Upstream, error: unknown): ProviderError {
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return permissionError(upstream, error);
  }
  const texts = causeMessages(error);
  const all = texts.join(" | ");
  const reason = PATTERNS.find(([, pattern]) => pattern.test(all))?.[0] ?? "other";
  const detail = clientDetail(texts);
  const { name, address, unreachableHint, addressSetting } = upstream;
  const messages: Record<UnreachableReason, string> = {
    refused:
      `Cannot reach ${name} at ${address}: the connection was refused (${detail}): ${unreachableHint}`,
    dns:
      `Cannot reach ${name} at ${address}: the host name does not resolve (DNS lookup failed: ${detail}): check the spelling in ${addressSetting}, and that this machine's DNS works.`,
    tls:
      `Cannot reach ${name} at ${address}: the TLS handshake failed (${detail}): if the server speaks plain HTTP use http:// in ${addressSetting}; if it uses a private certificate authority, give it to Deno with DENO_CERT=/path/to/ca.pem.`,
    reset:
      `${name} at ${address} closed the connection before replying (${detail}): it may have crashed or restarted, or a proxy dropped the request; check its log and retry.`,
    "redirect-loop":
      `${name} at ${address} answered with redirects that never end (a redirect loop, ${detail}): point ${addressSetting} at the server itself, not at a proxy or login page that redirects.`,
    other: `Cannot reach ${name} at ${address} (${detail}): ${unreachableHint}`,
  };
  return new ProviderUnreachableError(reason, messages[reason], { cause: error });
}

function permissionError(upstream: Upstream, error: Error): ProviderPermissionError {
  // Deno names the refused host: `Requires net access to "host:port", run again with ...`;
  // after a redirect it is not the configured one.
  const host = /net access to "([^"]+)"/.exec(error.message)?.[1] ?? new URL(upstream.baseUrl).host;
  return new ProviderPermissionError(
    host,
    `Rune is not allowed to connect to ${host} (Deno's --allow-net permission does not include it), so ${upstream.name} at ${upstream.address} was not contacted: add the host to --allow-net, e.g. "deno run --allow-net=127.0.0.1,localhost,${host} ...", or reinstall rune with that host in its --allow-net.`,
    { cause: error },
  );
}

/** The messages of `error` and its causes, outermost first. */
function causeMessages(error: unknown): string[] {
  const texts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    texts.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return texts;
}

/** The HTTP client's own words, without the request URL it repeats. */
function clientDetail(texts: string[]): string {
  const inner = texts.at(-1) ?? "unknown error";
  // "error sending request ... for url (...): client error (Connect): tcp connect error: X"
  const parts = inner.split(/\): /);
  const tail = parts.length > 1 ? parts.slice(-1)[0] : inner;
  return tail.replace(/^client error \(\w+\):\s*/, "").replace(/^Fetch failed:\s*/i, "").trim();
}
