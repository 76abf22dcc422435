/**
 * Checks JWT access tokens (RFC 9068) with npm `jose`: the signature
 * against the issuer's published keys, `iss`, `aud` (RFC 8707: a token
 * issued for another resource is refused), `exp` and `nbf` with a small
 * clock tolerance, and an asymmetric algorithm.
 *
 * Only the issuers configured with `--oauth-issuer` are trusted, and only
 * their addresses are ever fetched: the `iss` a token claims merely picks
 * one of them (a token naming any other issuer is refused without a
 * request). Each issuer's metadata is discovered on first use (OpenID
 * Connect discovery, then RFC 8414), through oauth4webapi, which checks
 * that the document names the issuer it was fetched for. Its key set
 * (`jwks_uri`) is cached by `jose`, refetched when it is older than
 * `jwksMaxAgeMs` and when a token names an unknown `kid` (a key rotation),
 * but at most once per `jwksCooldownMs`, so a stream of made-up `kid`s
 * cannot make Rune hammer the issuer. Replies are bounded in size and time.
 *
 * @module
 */

import * as jose from "jose";
import * as oauth from "oauth4webapi";
import { boundedFetch } from "../credentials/oauth.ts";
import { isAbortError } from "../errors.ts";
import { parseScopeClaim } from "../mcp/scopes.ts";
import { isSecureOrLoopback } from "./security.ts";
import { IssuerUnavailableError, TokenRejectedError } from "./token_errors.ts";

/** What a verified access token says. */
export interface VerifiedToken {
  /** The issuer, as its metadata spells it. */
  issuer: string;
  /** The subject (`sub`): the user, or the client for machine tokens. */
  subject?: string;
  /** The client the token was issued to (`client_id`, else `azp`). */
  clientId?: string;
  /** Every scope the token grants (Rune's and others). */
  scopes: string[];
  /** Expiry, seconds since the epoch. */
  expiresAt: number;
  /** Which of the accepted resource identifiers the token is for. */
  audience: string;
}

/** Options of {@linkcode createJwtVerifier}. */
export interface JwtVerifierOptions {
  /** Trusted issuer identifiers (at least one). */
  issuers: readonly string[];
  /** Resource identifiers a token's `aud` must name one of. */
  audiences: readonly string[];
  /**
   * Tolerated clock difference for `exp` and `nbf`, in seconds.
   * @default 30
   */
  clockToleranceSeconds?: number;
  /**
   * Least time between two fetches of an issuer's key set for an unknown `kid`.
   * @default 30000
   */
  jwksCooldownMs?: number;
  /**
   * A cached key set older than this is fetched again before use.
   * @default 600000
   */
  jwksMaxAgeMs?: number;
  /**
   * Deadline of each request to an issuer (metadata, key set).
   * @default 10000
   */
  requestTimeoutMs?: number;
  /**
   * After a failed metadata discovery, tokens of that issuer get 503 for
   * this long before discovery is tried again.
   * @default 5000
   */
  discoveryRetryMs?: number;
  /** The `fetch` to reach issuers with (tests: one trusting a test CA). @default fetch */
  fetch?: typeof fetch;
}

/** A verifier of JWT access tokens. */
export interface JwtVerifier {
  /**
   * Verifies `token`; throws {@linkcode TokenRejectedError} for a token
   * Rune does not accept and {@linkcode IssuerUnavailableError} when its
   * issuer cannot be reached.
   */
  verify(token: string, signal?: AbortSignal): Promise<VerifiedToken>;
}

/** Signature algorithms accepted: asymmetric only (a shared secret would let anyone mint). */
export const ACCEPTED_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/** True when `token` has the shape of a JWS (three parts with a JSON header). */
export function looksLikeJwt(token: string): boolean {
  try {
    jose.decodeProtectedHeader(token);
    return token.split(".").length === 3;
  } catch {
    return false;
  }
}

/** The key lookup of one issuer, discovered on first use. */
interface IssuerState {
  /** The issuer identifier as configured. */
  configured: string;
  /** Discovery in progress or done. */
  keys?: Promise<{ issuer: string; getKey: jose.JWTVerifyGetKey }>;
  /** When discovery last failed (performance.now()), to pace retries. */
  failedAt?: number;
}

/** Compares issuer identifiers the way oauth4webapi does (as parsed URLs). */
export function sameIssuer(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return false;
  }
}

/** Creates a verifier trusting `options.issuers`. */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const tolerance = options.clockToleranceSeconds ?? 30;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const retryMs = options.discoveryRetryMs ?? 5_000;
  const fetchImpl = boundedFetch(options.fetch ?? fetch);
  const issuers: IssuerState[] = options.issuers.map((configured) => ({ configured }));

  async function discover(state: IssuerState): Promise<{
    issuer: string;
    getKey: jose.JWTVerifyGetKey;
  }> {
    const expected = new URL(state.configured);
    const request = {
      signal: AbortSignal.timeout(timeoutMs),
      [oauth.customFetch]: fetchImpl,
      // Issuers were checked at start: http:// is allowed for loopback addresses only.
      [oauth.allowInsecureRequests]: true,
    };
    let server: oauth.AuthorizationServer;
    try {
      // OpenID Connect discovery first, then RFC 8414 (plain OAuth servers).
      try {
        server = await oauth.processDiscoveryResponse(
          expected,
          await oauth.discoveryRequest(expected, { ...request, algorithm: "oidc" }),
        );
      } catch {
        server = await oauth.processDiscoveryResponse(
          expected,
          await oauth.discoveryRequest(expected, { ...request, algorithm: "oauth2" }),
        );
      }
    } catch (cause) {
      throw new IssuerUnavailableError(
        `Cannot read the metadata of issuer ${state.configured}: ${describe(cause)}. ` +
          "Check that it is reachable from Rune.",
        { cause },
      );
    }
    const jwksUri = server.jwks_uri;
    if (!jwksUri || !isSecureOrLoopback(jwksUri)) {
      throw new IssuerUnavailableError(
        `Issuer ${state.configured} publishes no usable jwks_uri (${
          jwksUri ?? "none"
        }): JWT access tokens cannot be checked.`,
      );
    }
    const remote = jose.createRemoteJWKSet(new URL(jwksUri), {
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: options.jwksMaxAgeMs ?? 600_000,
      timeoutDuration: timeoutMs,
      [jose.customFetch]: fetchImpl,
    });
    const getKey: jose.JWTVerifyGetKey = async (header, token) => {
      try {
        return await remote(header, token);
      } catch (cause) {
        // A missing or ambiguous key is the token's problem; anything else is the fetch's.
        if (
          cause instanceof jose.errors.JWKSNoMatchingKey ||
          cause instanceof jose.errors.JWKSMultipleMatchingKeys ||
          cause instanceof jose.errors.JOSENotSupported
        ) throw cause;
        throw new IssuerUnavailableError(
          `Cannot read the keys of issuer ${state.configured} at ${jwksUri}: ${describe(cause)}.`,
          { cause },
        );
      }
    };
    return { issuer: server.issuer, getKey };
  }

  function keysOf(state: IssuerState) {
    if (
      state.keys === undefined && state.failedAt !== undefined &&
      performance.now() - state.failedAt < retryMs
    ) {
      return Promise.reject(
        new IssuerUnavailableError(
          `Issuer ${state.configured} did not answer a moment ago; retrying shortly.`,
        ),
      );
    }
    state.keys ??= discover(state).catch((error) => {
      state.keys = undefined;
      state.failedAt = performance.now();
      throw error;
    });
    return state.keys;
  }

  return {
    async verify(token, signal) {
      let claimed: jose.JWTPayload;
      try {
        claimed = jose.decodeJwt(token);
      } catch (cause) {
        throw new TokenRejectedError("The access token is not a valid JWT.", { cause });
      }
      const state = typeof claimed.iss === "string"
        ? issuers.find((s) => sameIssuer(s.configured, claimed.iss!))
        : undefined;
      if (!state) {
        throw new TokenRejectedError(
          `The access token was issued by ${
            JSON.stringify(claimed.iss ?? null)
          }, which this server does not trust.`,
        );
      }
      const { issuer, getKey } = await keysOf(state);
      signal?.throwIfAborted();
      let payload: jose.JWTPayload;
      try {
        ({ payload } = await jose.jwtVerify(token, getKey, {
          issuer,
          audience: [...options.audiences],
          clockTolerance: tolerance,
          requiredClaims: ["exp"],
          algorithms: ACCEPTED_ALGORITHMS,
        }));
      } catch (error) {
        throw rejection(error);
      }
      const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      const audience = options.audiences.find((a) => audiences.includes(a))!;
      const clientId = typeof payload.client_id === "string"
        ? payload.client_id
        : typeof payload.azp === "string"
        ? payload.azp
        : undefined;
      const subject = typeof payload.sub === "string" && payload.sub !== ""
        ? payload.sub
        : undefined;
      return {
        issuer,
        ...(subject !== undefined && { subject }),
        ...(clientId !== undefined && { clientId }),
        scopes: parseScopeClaim(payload.scope ?? payload.scp),
        expiresAt: payload.exp!,
        audience,
      };
    },
  };
}

/** Turns a `jose` verification failure into the refusal the client sees. */
function rejection(error: unknown): unknown {
  if (error instanceof IssuerUnavailableError || isAbortError(error)) return error;
  const e = jose.errors;
  // Claims are checked after the signature: a token failing them is genuine.
  if (error instanceof e.JWTExpired) {
    return new TokenRejectedError("The access token has expired: get a new one.", {
      cause: error,
      genuine: true,
    });
  }
  if (error instanceof e.JWTClaimValidationFailed) {
    const message = error.claim === "aud"
      ? "The access token was issued for another resource (its aud does not name this server)."
      : error.claim === "iss"
      ? "The access token's issuer does not match its issuer's metadata."
      : error.claim === "nbf"
      ? "The access token is not valid yet (nbf is in the future)."
      : `The access token's ${error.claim} claim is not acceptable: ${error.reason}.`;
    return new TokenRejectedError(message, { cause: error, genuine: true });
  }
  if (error instanceof e.JWSSignatureVerificationFailed) {
    return new TokenRejectedError("The access token's signature does not verify.", {
      cause: error,
    });
  }
  if (error instanceof e.JWKSNoMatchingKey) {
    return new TokenRejectedError(
      "The access token is signed with a key its issuer does not publish.",
      { cause: error },
    );
  }
  if (error instanceof e.JOSEAlgNotAllowed) {
    return new TokenRejectedError(
      "The access token is signed with an algorithm this server does not accept.",
      { cause: error },
    );
  }
  if (error instanceof e.JOSEError) {
    return new TokenRejectedError(`The access token is not acceptable: ${error.message}.`, {
      cause: error,
    });
  }
  return error;
}

function describe(cause: unknown): string {
  if (cause instanceof oauth.ResponseBodyError) return `${cause.status} ${cause.error}`;
  return cause instanceof Error ? cause.message : String(cause);
}
