/**
 * A real OpenID Connect provider for the tests (npm `oidc-provider`, the
 * certified Node implementation) on 127.0.0.1 and port 0: discovery,
 * authorization with its development login and consent pages, PKCE required
 * (public native client), refresh tokens rotated at every use, revocation.
 * {@linkcode browse} plays the user's browser: it fetches the URL Rune
 * printed, signs in, consents and follows the redirects to the loopback
 * callback.
 *
 * @module
 */

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";

// oidc-provider announces its development defaults on every start; the tests know them.
for (const level of ["info", "warn"] as const) {
  const original = console[level];
  console[level] = (...args: unknown[]) => {
    if (typeof args[0] === "string" && args[0].startsWith("oidc-provider ")) return;
    original(...args);
  };
}

/** The client id registered for Rune. */
export const CLIENT_ID = "rune-cli";

/** A running identity provider. */
export interface IdentityProvider {
  /** Its issuer URL, `http://127.0.0.1:PORT`. */
  issuer: string;
  /** The oidc-provider instance (tokens can be looked up through it). */
  provider: Provider;
  /** Token requests seen, by grant type (`authorization_code`, `refresh_token`). */
  grants: string[];
  /** Tokens revoked through the revocation endpoint (their type hints). */
  revocations: string[];
  /** True when `token` is an access token the provider issued and still honours. */
  accessTokenValid(token: string): Promise<boolean>;
  /** The access token issued last (the only one the provider double accepts). */
  latestAccessToken(): string | undefined;
  /** Makes the next `count` refresh requests fail with `invalid_grant`. */
  failRefreshes(count: number): void;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Options of {@linkcode startIdentityProvider}. */
export interface IdentityProviderOptions {
  /** Access token lifetime in seconds. @default 3600 */
  accessTokenTtl?: number;
}

/** Starts an identity provider on 127.0.0.1, port 0. */
export async function startIdentityProvider(
  options: IdentityProviderOptions = {},
): Promise<IdentityProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const grants: string[] = [];
  const revocations: string[] = [];
  let failing = 0;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      application_type: "native",
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      // Native clients may use any port on a loopback redirect (RFC 8252 section 7.3).
      redirect_uris: ["http://127.0.0.1/callback"],
    }],
    scopes: ["openid", "offline_access", "llm.read", "llm.write"],
    features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
    pkce: { required: () => true },
    issueRefreshToken: () => Promise.resolve(true),
    rotateRefreshToken: () => true,
    ttl: { AccessToken: options.accessTokenTtl ?? 3600, IdToken: 3600, RefreshToken: 86400 },
    cookies: { keys: ["a test cookie key that is long enough"] },
    findAccount: (_ctx: unknown, sub: string) =>
      Promise.resolve({ accountId: sub, claims: () => Promise.resolve({ sub }) }),
  });
  let latest: string | undefined;
  provider.on("access_token.saved", (token: { jti: string }) => latest = token.jti);
  const callback = provider.callback();
  server.on("request", (req, res) => {
    if (req.method === "POST" && req.url === "/token") {
      // Which grant, without reading the body twice: oidc-provider parses it afterwards.
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = new URLSearchParams(Buffer.concat(chunks).toString());
        const grant = body.get("grant_type") ?? "";
        grants.push(grant);
        if (grant === "refresh_token" && failing > 0) {
          failing--;
          res.writeHead(400, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: "invalid_grant", error_description: "grant revoked" }));
          return;
        }
        // Hand the parsed body on, as body parsers upstream of Koa do.
        (req as unknown as { body: Record<string, string> }).body = Object.fromEntries(body);
        callback(req, res);
      });
      return;
    }
    if (req.method === "POST" && req.url === "/token/revocation") {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = new URLSearchParams(Buffer.concat(chunks).toString());
        revocations.push(body.get("token_type_hint") ?? "");
        (req as unknown as { body: Record<string, string> }).body = Object.fromEntries(body);
        callback(req, res);
      });
      return;
    }
    callback(req, res);
  });
  return {
    issuer,
    provider,
    grants,
    revocations,
    async accessTokenValid(token) {
      const found = await provider.AccessToken.find(token);
      return found !== undefined && !found.isExpired;
    },
    latestAccessToken: () => latest,
    failRefreshes(count) {
      failing = count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A small browser: a cookie jar and manual redirects. */
export async function browse(url: string, options: { login?: string } = {}): Promise<Response> {
  const cookies = new Map<string, string>();
  let next: { url: string; init: RequestInit } = { url, init: {} };
  for (let hop = 0; hop < 20; hop++) {
    const headers = new Headers(next.init.headers);
    if (cookies.size && new URL(next.url).hostname === new URL(url).hostname) {
      headers.set("cookie", [...cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    }
    const response = await fetch(next.url, { ...next.init, headers, redirect: "manual" });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair.indexOf("=");
      cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      next = { url: new URL(location, next.url).href, init: {} };
      continue;
    }
    const type = response.headers.get("content-type") ?? "";
    if (!type.includes("text/html")) return response;
    const html = await response.text();
    const form = /<form[^>]*action="([^"]+)"[^>]*method="post"/.exec(html);
    if (!form) return new Response(html, { status: response.status, headers: response.headers });
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1] ?? "";
    const body = new URLSearchParams({ prompt });
    if (prompt === "login") {
      body.set("login", options.login ?? "alice");
      body.set("password", "any");
    }
    next = {
      url: new URL(form[1].replaceAll("&amp;", "&"), next.url).href,
      init: {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body,
      },
    };
  }
  throw new Error(`browse: more than 20 hops from ${url}`);
}
