/**
 * OAuth 2.0 for providers that sign users in (Microsoft Entra ID, Okta,
 * Keycloak, company gateways): the Authorization Code flow with PKCE (S256)
 * and a loopback redirect (RFC 8252), token refresh, and revocation (RFC
 * 7009), all through npm `oauth4webapi` (certified, dependency-free) rather
 * than hand-written protocol code.
 *
 * The server comes from OpenID Connect or RFC 8414 discovery of `issuer`,
 * or from explicit endpoints (which also override discovered ones). Every
 * endpoint must be `https:`, except on loopback addresses (local identity
 * providers and tests). Replies are bounded in size and time.
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import type { AuthConfig } from "../config/schema.ts";
import { isAbortError } from "../errors.ts";
import { CredentialError, SignInError, SignInRequiredError } from "./errors.ts";
import { startLoopback, waitFor } from "./loopback.ts";
import type { OAuthCredential } from "./store.ts";

/** Longest wait for one request to the authorization server. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Largest reply read from the authorization server, in bytes. */
export const MAX_REPLY_BYTES = 256 * 1024;
/** How long `rune auth login` waits for the user to finish in the browser. */
export const DEFAULT_LOGIN_TIMEOUT_MS = 5 * 60_000;

/** Options of the functions that talk to the server. */
export interface HttpOptions {
  /** Aborts the call. */
  signal?: AbortSignal;
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Longest wait for one request, in ms. @default 30000 */
  requestTimeoutMs?: number;
  /** The clock (ms since the epoch). @default Date.now */
  now?: () => number;
}

/** A provider's OAuth settings, checked. */
export interface OAuthSettings {
  /** Provider id (for messages). */
  id: string;
  /** Issuer for discovery. */
  issuer?: string;
  /** Explicit authorization endpoint. */
  authorization_endpoint?: string;
  /** Explicit token endpoint. */
  token_endpoint?: string;
  /** Explicit revocation endpoint. */
  revocation_endpoint?: string;
  /** The client id registered for Rune. */
  client_id: string;
  /** Scopes to ask for. */
  scopes: string[];
  /** `audience` parameter (Auth0 and others). */
  audience?: string;
  /** RFC 8707 resource indicator. */
  resource?: string;
}

/** Checks a provider's `auth` block for the OAuth flow; `where` names the config file. */
export function oauthSettings(id: string, auth: AuthConfig, where: string): OAuthSettings {
  const problem = (text: string) =>
    new CredentialError(`${where}: provider "${id}" has an "auth" block that ${text}.`);
  if (!auth.client_id) throw problem('needs "client_id" (the client registered for Rune)');
  if (!auth.issuer && !(auth.authorization_endpoint && auth.token_endpoint)) {
    throw problem('needs "issuer", or both "authorization_endpoint" and "token_endpoint"');
  }
  const scopes = auth.scopes ?? [];
  if (scopes.includes("openid") && !auth.issuer) {
    throw problem('asks for the "openid" scope, which needs "issuer" to check ID tokens');
  }
  for (
    const [name, value] of Object.entries({
      issuer: auth.issuer,
      authorization_endpoint: auth.authorization_endpoint,
      token_endpoint: auth.token_endpoint,
      revocation_endpoint: auth.revocation_endpoint,
    })
  ) {
    if (value && !secureUrl(value)) {
      throw problem(`has ${name} ${value}: plain http:// is allowed only on loopback addresses`);
    }
  }
  return { id, ...auth, client_id: auth.client_id, scopes };
}

/** True for `https:` URLs and for `http:` on a loopback address. */
export function secureUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol === "https:") return true;
  return url.protocol === "http:" && isLoopback(url.hostname);
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** The authorization server: discovered from the issuer, explicit endpoints winning. */
export async function authorizationServer(
  settings: OAuthSettings,
  options: HttpOptions = {},
): Promise<oauth.AuthorizationServer> {
  let server: oauth.AuthorizationServer;
  if (settings.issuer) {
    const issuer = new URL(settings.issuer);
    server = await call(settings.id, "discovery", options, async (o) => {
      // OpenID Connect discovery first, then RFC 8414 (plain OAuth servers).
      try {
        return await oauth.processDiscoveryResponse(
          issuer,
          await oauth.discoveryRequest(issuer, { ...o, algorithm: "oidc" }),
        );
      } catch (error) {
        if (isAbortError(error)) throw error;
        return await oauth.processDiscoveryResponse(
          issuer,
          await oauth.discoveryRequest(issuer, { ...o, algorithm: "oauth2" }),
        );
      }
    });
  } else {
    server = { issuer: new URL(settings.token_endpoint!).origin };
  }
  server = {
    ...server,
    ...(settings.authorization_endpoint &&
      { authorization_endpoint: settings.authorization_endpoint }),
    ...(settings.token_endpoint && { token_endpoint: settings.token_endpoint }),
    ...(settings.revocation_endpoint && { revocation_endpoint: settings.revocation_endpoint }),
  };
  for (
    const name of ["authorization_endpoint", "token_endpoint", "revocation_endpoint"] as const
  ) {
    const value = server[name];
    if (value !== undefined && !secureUrl(value)) {
      throw new SignInError(
        `The sign-in server of "${settings.id}" announces ${name} ${value}: Rune sends tokens ` +
          `only over https:// (plain http:// only on loopback addresses).`,
      );
    }
  }
  if (!server.authorization_endpoint || !server.token_endpoint) {
    throw new SignInError(
      `The sign-in server of "${settings.id}" (${settings.issuer}) announces no ` +
        `${server.authorization_endpoint ? "token_endpoint" : "authorization_endpoint"}: set it ` +
        `in the provider's "auth" block.`,
    );
  }
  return server;
}

/** Options of {@linkcode signIn}. */
export interface SignInOptions extends HttpOptions {
  /** Shows the authorization URL to the user (stderr). */
  show(url: string): void;
  /** Opens the URL in a browser; absent with `--no-browser`. */
  openBrowser?: (url: string) => Promise<void>;
  /** How long to wait for the user, in ms. @default 300000 */
  timeoutMs?: number;
}

/**
 * Signs in: PKCE (S256), random `state` (and `nonce` with OpenID), the
 * loopback redirect, the code exchange. Resolves to the credential to store.
 */
export async function signIn(
  settings: OAuthSettings,
  options: SignInOptions,
): Promise<OAuthCredential> {
  const server = await authorizationServer(settings, options);
  const client: oauth.Client = { client_id: settings.client_id };
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const openid = settings.scopes.includes("openid");
  const nonce = openid ? oauth.generateRandomNonce() : undefined;
  const loopback = startLoopback<URLSearchParams>({
    check(url) {
      try {
        return { value: oauth.validateAuthResponse(server, client, url, state) };
      } catch (error) {
        return { error: authResponseError(settings.id, error) };
      }
    },
  });
  try {
    const url = new URL(server.authorization_endpoint!);
    const params = url.searchParams;
    params.set("client_id", settings.client_id);
    params.set("redirect_uri", loopback.redirectUri);
    params.set("response_type", "code");
    if (settings.scopes.length) params.set("scope", settings.scopes.join(" "));
    params.set("code_challenge", await oauth.calculatePKCECodeChallenge(verifier));
    params.set("code_challenge_method", "S256");
    params.set("state", state);
    if (nonce) params.set("nonce", nonce);
    if (settings.resource) params.set("resource", settings.resource);
    if (settings.audience) params.set("audience", settings.audience);
    options.show(url.href);
    await options.openBrowser?.(url.href).catch(() => {});
    const callback = await waitFor(
      loopback.result,
      options.timeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS,
      options.signal,
      () =>
        new SignInError(
          `Nobody finished signing in to "${settings.id}" within ${
            (options.timeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS) / 1000
          } s. Run "rune auth login ${settings.id}" again and complete the sign-in in the ` +
            `browser (with --no-browser, open the printed URL yourself).`,
        ),
    );
    const tokens = await call(
      settings.id,
      "code exchange",
      options,
      async (o) =>
        await oauth.processAuthorizationCodeResponse(
          server,
          client,
          await oauth.authorizationCodeGrantRequest(
            server,
            client,
            oauth.None(),
            callback,
            loopback.redirectUri,
            verifier,
            { ...o, additionalParameters: extraParameters(settings) },
          ),
          openid ? { expectedNonce: nonce, requireIdToken: true } : undefined,
        ),
    );
    return credentialFrom(tokens, {
      issuer: server.issuer,
      token_endpoint: server.token_endpoint!,
      ...(server.revocation_endpoint && { revocation_endpoint: server.revocation_endpoint }),
      client_id: settings.client_id,
      ...(settings.resource && { resource: settings.resource }),
      ...(settings.audience && { audience: settings.audience }),
      requested: settings.scopes,
      now: (options.now ?? Date.now)(),
    });
  } finally {
    await loopback.close();
  }
}

/**
 * Trades the refresh token for new tokens. A refused refresh token is a
 * {@linkcode SignInRequiredError} (run `rune auth login ID`); a rotated
 * refresh token replaces the old one in the result.
 */
export async function refreshTokens(
  id: string,
  current: OAuthCredential,
  options: HttpOptions = {},
): Promise<OAuthCredential> {
  if (!current.refresh_token) {
    throw new SignInRequiredError(
      id,
      `The access token of "${id}" has expired and its server gave no refresh token: run ` +
        `"rune auth login ${id}" to sign in again.`,
    );
  }
  const server = storedServer(current);
  const client: oauth.Client = { client_id: current.client_id };
  let tokens: oauth.TokenEndpointResponse;
  try {
    tokens = await call(
      id,
      "token refresh",
      options,
      async (o) =>
        await oauth.processRefreshTokenResponse(
          server,
          client,
          await oauth.refreshTokenGrantRequest(
            server,
            client,
            oauth.None(),
            current.refresh_token!,
            {
              ...o,
              additionalParameters: extraParameters(current),
            },
          ),
        ),
    );
  } catch (error) {
    if (error instanceof SignInRequiredError || isAbortError(error)) throw error;
    const refused = (error as Error).cause;
    if (refused instanceof oauth.ResponseBodyError && refused.error === "invalid_grant") {
      throw new SignInRequiredError(
        id,
        `The sign-in of "${id}" has ended: its server refused the refresh token ` +
          `(invalid_grant${
            refused.error_description ? `: ${refused.error_description}` : ""
          }). Run "rune auth login ${id}" to sign in again.`,
        { cause: error },
      );
    }
    throw new SignInRequiredError(
      id,
      `Could not refresh the access token of "${id}": ${(error as Error).message} If this ` +
        `persists, run "rune auth login ${id}" to sign in again.`,
      { cause: error },
    );
  }
  return credentialFrom(tokens, {
    ...current,
    requested: current.scopes ?? [],
    now: (options.now ?? Date.now)(),
    previousRefreshToken: current.refresh_token,
  });
}

/**
 * Revokes the refresh token and the access token (RFC 7009) when the server
 * has a revocation endpoint. Resolves to false when it has none.
 */
export async function revokeTokens(
  id: string,
  current: OAuthCredential,
  options: HttpOptions = {},
): Promise<boolean> {
  if (!current.revocation_endpoint) return false;
  const server = storedServer(current);
  const client: oauth.Client = { client_id: current.client_id };
  const tokens: [string, string][] = [];
  // The refresh token first: revoking it usually ends the whole grant.
  if (current.refresh_token) tokens.push([current.refresh_token, "refresh_token"]);
  tokens.push([current.access_token, "access_token"]);
  for (const [token, hint] of tokens) {
    await call(id, "revocation", options, async (o) =>
      await oauth.processRevocationResponse(
        await oauth.revocationRequest(server, client, oauth.None(), token, {
          ...o,
          additionalParameters: { token_type_hint: hint },
        }),
      ));
  }
  return true;
}

function storedServer(current: OAuthCredential): oauth.AuthorizationServer {
  for (const value of [current.token_endpoint, current.revocation_endpoint]) {
    if (value !== undefined && !secureUrl(value)) {
      throw new CredentialError(
        `The stored sign-in uses ${value}, which is not https:// on a non-loopback host.`,
      );
    }
  }
  return {
    issuer: current.issuer,
    token_endpoint: current.token_endpoint,
    ...(current.revocation_endpoint && { revocation_endpoint: current.revocation_endpoint }),
  };
}

function extraParameters(
  settings: { resource?: string; audience?: string },
): Record<string, string> {
  return {
    ...(settings.resource && { resource: settings.resource }),
    ...(settings.audience && { audience: settings.audience }),
  };
}

function credentialFrom(
  tokens: oauth.TokenEndpointResponse,
  context: {
    issuer: string;
    token_endpoint: string;
    revocation_endpoint?: string;
    client_id: string;
    resource?: string;
    audience?: string;
    requested: string[];
    now: number;
    previousRefreshToken?: string;
  },
): OAuthCredential {
  const scopes = typeof tokens.scope === "string"
    ? tokens.scope.split(" ").filter(Boolean)
    : context.requested;
  const refresh = tokens.refresh_token ?? context.previousRefreshToken;
  return {
    kind: "oauth",
    access_token: tokens.access_token,
    ...(refresh && { refresh_token: refresh }),
    ...(typeof tokens.expires_in === "number" &&
      { expires_at: context.now + tokens.expires_in * 1000 }),
    ...(scopes.length && { scopes }),
    issuer: context.issuer,
    token_endpoint: context.token_endpoint,
    ...(context.revocation_endpoint && { revocation_endpoint: context.revocation_endpoint }),
    client_id: context.client_id,
    ...(context.resource && { resource: context.resource }),
    ...(context.audience && { audience: context.audience }),
    saved_at: new Date(context.now).toISOString(),
  };
}

type RequestOptions = {
  signal: AbortSignal;
  [oauth.customFetch]: typeof fetch;
  [oauth.allowInsecureRequests]?: boolean;
};

/** Runs one exchange with the server with a deadline, a bounded reply and clear errors. */
async function call<T>(
  id: string,
  what: string,
  options: HttpOptions,
  run: (options: RequestOptions) => Promise<T>,
): Promise<T> {
  const timeout = AbortSignal.timeout(options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const request: RequestOptions = {
    signal,
    [oauth.customFetch]: boundedFetch(options.fetch ?? fetch),
    // Endpoints were checked: http:// reaches this point only for loopback addresses.
    [oauth.allowInsecureRequests]: true,
  };
  try {
    return await run(request);
  } catch (error) {
    options.signal?.throwIfAborted();
    if (timeout.aborted) {
      throw new SignInError(
        `The sign-in server of "${id}" did not answer the ${what} within ` +
          `${(options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS) / 1000} s.`,
        { cause: error },
      );
    }
    if (error instanceof oauth.ResponseBodyError) {
      throw new SignInError(
        `The sign-in server of "${id}" refused the ${what}: ${error.error}${
          error.error_description ? ` (${error.error_description})` : ""
        }.`,
        { cause: error },
      );
    }
    if (error instanceof oauth.OperationProcessingError) {
      throw new SignInError(
        `The sign-in server of "${id}" gave an invalid reply to the ${what}: ${error.message}.`,
        { cause: error },
      );
    }
    if (error instanceof TypeError) {
      throw new SignInError(
        `Could not reach the sign-in server of "${id}" for the ${what}: ${error.message}.`,
        { cause: error },
      );
    }
    throw error;
  }
}

function authResponseError(id: string, error: unknown): Error {
  if (error instanceof oauth.AuthorizationResponseError) {
    return new SignInError(
      `The sign-in server of "${id}" answered the authorization with ${error.error}${
        error.error_description ? ` (${error.error_description})` : ""
      }.`,
      { cause: error },
    );
  }
  const message = (error as Error).message;
  if (/state/.test(message)) {
    return new SignInError(
      `The sign-in redirect did not carry the state Rune sent (a stale or forged redirect), so ` +
        `it was refused. Run "rune auth login ${id}" again.`,
      { cause: error },
    );
  }
  return new SignInError(`The sign-in redirect was refused: ${message}.`, { cause: error });
}

/**
 * A `fetch` whose response bodies stop at {@linkcode MAX_REPLY_BYTES}; also
 * used by the resource server for its issuers' metadata, keys and
 * introspection replies.
 */
export function boundedFetch(base: typeof fetch): typeof fetch {
  return async (input, init) => {
    const response = await base(input, init);
    if (!response.body) return response;
    let seen = 0;
    const limited = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          seen += chunk.byteLength;
          if (seen > MAX_REPLY_BYTES) {
            controller.error(
              new TypeError(`the reply is larger than ${MAX_REPLY_BYTES} bytes`),
            );
            return;
          }
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(limited, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}
