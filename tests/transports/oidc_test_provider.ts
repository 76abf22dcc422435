/**
 * A real OpenID provider (npm `oidc-provider`) set up as an MCP client's
 * authorization server, on 127.0.0.1 and port 0: dynamic client
 * registration, Authorization Code with PKCE (its development login and
 * consent pages; `browse` in `../credentials/oidc_server.ts` plays the
 * user), RFC 8707 resource indicators issuing JWT access tokens whose
 * `aud` is the requested resource and whose scopes are Rune's, client
 * credentials for machine clients (`opaque-machine` gets opaque tokens),
 * and token introspection for Rune (`rune-introspector`).
 *
 * @module
 */

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as jose from "jose";
import Provider from "oidc-provider";
// Imported for its side effect too: it hushes oidc-provider's development-mode notices.
import { browse } from "../credentials/oidc_server.ts";

export { browse };

/** Rune's introspection client. */
export const INTROSPECTOR = { id: "rune-introspector", secret: "introspector-secret-0123456789" };
/** A machine client receiving JWT access tokens. */
export const MACHINE = { id: "machine", secret: "machine-secret-0123456789abcdef" };
/** A machine client receiving opaque access tokens. */
export const OPAQUE_MACHINE = { id: "opaque-machine", secret: "opaque-secret-0123456789abcdef" };

/** The scopes the provider grants for any resource. */
export const PROVIDER_SCOPES = "rune:models rune:generate rune:manage";

/** A running provider. */
export interface OidcTestProvider {
  /** Its issuer identifier, `http://127.0.0.1:PORT`. */
  issuer: string;
  /** Its introspection endpoint. */
  introspectionEndpoint: string;
  /** Introspection requests served so far. */
  readonly introspections: number;
  /** Clients registered dynamically so far. */
  readonly registrations: number;
  /** A client credentials token for `resource` with `scope`. */
  machineToken(
    client: { id: string; secret: string },
    resource: string,
    scope: string,
  ): Promise<string>;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Starts the provider. */
export async function startOidcTestProvider(): Promise<OidcTestProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const keys = await Promise.all(["ES256", "RS256"].map(async (alg) => {
    const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    return { ...(await jose.exportJWK(privateKey)), alg, use: "sig", kid: `${alg}-key` };
  }));
  let introspections = 0;
  let registrations = 0;
  const machine = (client: { id: string; secret: string }) => ({
    client_id: client.id,
    client_secret: client.secret,
    grant_types: ["client_credentials"],
    response_types: [],
    redirect_uris: [],
  });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: INTROSPECTOR.id,
        client_secret: INTROSPECTOR.secret,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
      machine(MACHINE),
      machine(OPAQUE_MACHINE),
    ],
    jwks: { keys },
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: (
          _ctx: unknown,
          resourceIndicator: string,
          client: { clientId: string },
        ) =>
          Promise.resolve({
            scope: PROVIDER_SCOPES,
            audience: resourceIndicator,
            accessTokenTTL: 300,
            accessTokenFormat: client.clientId === OPAQUE_MACHINE.id ? "opaque" : "jwt",
            jwt: { sign: { alg: "ES256" } },
          }),
        useGrantedResource: () => Promise.resolve(true),
      },
    },
    pkce: { required: () => true },
    // Listed here too: registration requests name the scopes clients will ask for.
    scopes: ["openid", "offline_access", ...PROVIDER_SCOPES.split(" ")],
    ttl: { AccessToken: 300, IdToken: 300, ClientCredentials: 300, Grant: 3600, Session: 3600 },
    cookies: { keys: ["a test cookie key that is long enough"] },
    findAccount: (_ctx: unknown, sub: string) =>
      Promise.resolve({ accountId: sub, claims: () => Promise.resolve({ sub }) }),
  });
  const callback = provider.callback();
  server.on("request", (req, res) => {
    if (req.url?.startsWith("/token/introspection")) introspections++;
    if (req.method === "POST" && req.url === "/reg") registrations++;
    callback(req, res);
  });
  return {
    issuer,
    introspectionEndpoint: `${issuer}/token/introspection`,
    get introspections() {
      return introspections;
    },
    get registrations() {
      return registrations;
    },
    async machineToken(client, resource, scope) {
      const response = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${btoa(`${client.id}:${client.secret}`)}`,
        },
        body: new URLSearchParams({ grant_type: "client_credentials", resource, scope }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(`token request failed: ${JSON.stringify(body)}`);
      return body.access_token;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
