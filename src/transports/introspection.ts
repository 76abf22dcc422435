/**
 * Checks opaque access tokens through OAuth 2.0 Token Introspection
 * (RFC 7662), using oauth4webapi's client for the request and the reply.
 * Rune authenticates to the introspection endpoint with its own client
 * credentials (HTTP Basic), kept in the credential store.
 *
 * The reply must say the token is `active`, name this server in `aud`
 * (RFC 8707), carry an `exp` in the future (with the clock tolerance), and,
 * when it has an `iss`, name a trusted issuer. Accepted tokens are cached
 * under their SHA-256 digest for `cacheTtlMs` (never past their expiry),
 * at most `maxCached` of them: a revoked token is refused at most that
 * long after its revocation. Refusals are not cached; the failed-auth
 * limiter in front keeps made-up tokens from turning into a flood of
 * introspection requests.
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import { boundedFetch } from "../credentials/oauth.ts";
import { parseScopeClaim } from "../mcp/scopes.ts";
import { sameIssuer, type VerifiedToken } from "./jwt_verifier.ts";
import { IssuerUnavailableError, TokenRejectedError } from "./token_errors.ts";

/** Options of {@linkcode createIntrospector}. */
export interface IntrospectionOptions {
  /** The introspection endpoint (`--oauth-introspection-url`). */
  endpoint: string;
  /** Trusted issuers; the first is the one the endpoint belongs to. */
  issuers: readonly string[];
  /** Resource identifiers the reply's `aud` must name one of. */
  audiences: readonly string[];
  /** Rune's client id at the authorization server. */
  clientId: string;
  /** Rune's client secret. */
  clientSecret: string;
  /**
   * Tolerated clock difference for `exp` and `nbf`, in seconds.
   * @default 30
   */
  clockToleranceSeconds?: number;
  /**
   * How long an accepted token is remembered.
   * @default 30000
   */
  cacheTtlMs?: number;
  /**
   * Most tokens remembered; the oldest is forgotten first.
   * @default 1000
   */
  maxCached?: number;
  /**
   * Deadline of each introspection request.
   * @default 10000
   */
  requestTimeoutMs?: number;
  /** The `fetch` to reach the endpoint with. @default fetch */
  fetch?: typeof fetch;
  /** Wall clock in milliseconds (tests). @default Date.now */
  now?: () => number;
}

/** A verifier of opaque tokens. */
export interface Introspector {
  /**
   * Verifies `token`; throws {@linkcode TokenRejectedError} for a token
   * Rune does not accept and {@linkcode IssuerUnavailableError} when the
   * endpoint cannot be reached or refuses Rune's credentials.
   */
  verify(token: string, signal?: AbortSignal): Promise<VerifiedToken>;
  /** Tokens remembered now. */
  readonly cached: number;
  /** Introspection requests sent so far. */
  readonly requests: number;
}

const encoder = new TextEncoder();

/** An active token the server vouches for, refused for what it says: not a guess. */
const GENUINE = { genuine: true };

async function digest(token: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(token)));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Creates an introspecting verifier. */
export function createIntrospector(options: IntrospectionOptions): Introspector {
  const tolerance = options.clockToleranceSeconds ?? 30;
  const ttlMs = options.cacheTtlMs ?? 30_000;
  const maxCached = options.maxCached ?? 1000;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const now = options.now ?? Date.now;
  const fetchImpl = boundedFetch(options.fetch ?? fetch);
  const server: oauth.AuthorizationServer = {
    issuer: options.issuers[0],
    introspection_endpoint: options.endpoint,
  };
  const client: oauth.Client = { client_id: options.clientId };
  const auth = oauth.ClientSecretBasic(options.clientSecret);
  // Insertion order is age order: the first entry is the oldest.
  const cache = new Map<string, { token: VerifiedToken; until: number }>();
  let requests = 0;

  async function introspect(
    token: string,
    signal?: AbortSignal,
  ): Promise<oauth.IntrospectionResponse> {
    const timeout = AbortSignal.timeout(timeoutMs);
    requests++;
    try {
      return await oauth.processIntrospectionResponse(
        server,
        client,
        await oauth.introspectionRequest(server, client, auth, token, {
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
          [oauth.customFetch]: fetchImpl,
          // The endpoint was checked at start: http:// only on loopback addresses.
          [oauth.allowInsecureRequests]: true,
        }),
      );
    } catch (cause) {
      signal?.throwIfAborted();
      const status = cause instanceof oauth.ResponseBodyError ||
          cause instanceof oauth.WWWAuthenticateChallengeError
        ? cause.status
        : undefined;
      const detail = status !== undefined
        ? `it answered ${status}${
          status === 401 ? " (are Rune's client credentials right? see rune auth set-key)" : ""
        }`
        : timeout.aborted
        ? `no answer within ${timeoutMs / 1000} s`
        : (cause as Error).message;
      throw new IssuerUnavailableError(
        `Token introspection at ${options.endpoint} failed: ${detail}.`,
        { cause },
      );
    }
  }

  function check(reply: oauth.IntrospectionResponse): VerifiedToken {
    if (reply.active !== true) {
      throw new TokenRejectedError("The access token is not active (expired or revoked).");
    }
    const type = typeof reply.token_type === "string" ? reply.token_type.toLowerCase() : "bearer";
    if (type !== "bearer" && type !== "access_token") {
      throw new TokenRejectedError(`A ${reply.token_type} token is not an access token.`, GENUINE);
    }
    const issuer = typeof reply.iss === "string" ? reply.iss : options.issuers[0];
    if (!options.issuers.some((trusted) => sameIssuer(trusted, issuer))) {
      throw new TokenRejectedError(
        `The access token was issued by ${issuer}, which is not trusted.`,
        GENUINE,
      );
    }
    const named = Array.isArray(reply.aud) ? reply.aud : reply.aud === undefined ? [] : [reply.aud];
    const audience = options.audiences.find((a) => named.includes(a));
    if (audience === undefined) {
      throw new TokenRejectedError(
        "The access token was issued for another resource (its aud does not name this server).",
        GENUINE,
      );
    }
    const seconds = now() / 1000;
    if (typeof reply.exp !== "number") {
      throw new TokenRejectedError(
        "The access token has no expiry (exp): it is not accepted.",
        GENUINE,
      );
    }
    if (reply.exp + tolerance <= seconds) {
      throw new TokenRejectedError("The access token has expired: get a new one.", GENUINE);
    }
    if (typeof reply.nbf === "number" && reply.nbf - tolerance > seconds) {
      throw new TokenRejectedError(
        "The access token is not valid yet (nbf is in the future).",
        GENUINE,
      );
    }
    return {
      issuer,
      ...(typeof reply.sub === "string" && reply.sub !== "" && { subject: reply.sub }),
      ...(typeof reply.client_id === "string" && { clientId: reply.client_id }),
      scopes: parseScopeClaim(reply.scope),
      expiresAt: reply.exp,
      audience,
    };
  }

  return {
    async verify(token, signal) {
      const key = await digest(token);
      const hit = cache.get(key);
      if (hit && hit.until > now()) return hit.token;
      cache.delete(key);
      const verified = check(await introspect(token, signal));
      cache.set(key, {
        token: verified,
        until: Math.min(now() + ttlMs, verified.expiresAt * 1000),
      });
      if (cache.size > maxCached) cache.delete(cache.keys().next().value!);
      return verified;
    },
    get cached() {
      return cache.size;
    },
    get requests() {
      return requests;
    },
  };
}
