/**
 * A minimal token issuer for the resource server tests, on 127.0.0.1 and
 * port 0: OpenID discovery and a JWKS endpoint, and JWT access tokens
 * signed with npm `jose` with whatever claims a test needs (expired, not
 * yet valid, for another audience, signed with a key it does not publish).
 * Its key can be rotated, and it counts key set fetches. The full sign-in
 * flows run against oidc-provider (`oidc_test_provider.ts`).
 *
 * @module
 */

import * as jose from "jose";

/** A running issuer. */
export interface TokenIssuer {
  /** Its issuer identifier, `http://127.0.0.1:PORT`. */
  issuer: string;
  /** Key set fetches served so far. */
  readonly jwksFetches: number;
  /** Discovery document fetches served so far. */
  readonly discoveryFetches: number;
  /**
   * Signs an access token. Defaults: `iss` this issuer, `sub` "alice",
   * `client_id` "test-client", `iat` now, `exp` in 5 minutes; `aud` and
   * `scope` come from `claims`. A `null` claim is left out.
   */
  mint(claims: Record<string, unknown>, options?: MintOptions): Promise<string>;
  /** Replaces the published key with a new one (new `kid`); older tokens no longer verify. */
  rotate(): Promise<void>;
  /** Stops the server. */
  close(): Promise<void>;
}

/** Options of {@linkcode TokenIssuer.mint}. */
export interface MintOptions {
  /** Sign with a key the issuer does not publish, under the published `kid`. */
  forged?: boolean;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: jose.JWK;
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const kid = crypto.randomUUID();
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  return { kid, privateKey, jwk };
}

/** Starts an issuer on 127.0.0.1, port 0. */
export async function startTokenIssuer(): Promise<TokenIssuer> {
  let key = await newKey();
  const stranger = await newKey();
  let jwksFetches = 0;
  let discoveryFetches = 0;
  let issuer = "";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/.well-known/openid-configuration") {
      discoveryFetches++;
      return Response.json({
        issuer,
        jwks_uri: `${issuer}/jwks`,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        response_types_supported: ["code"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["ES256"],
      });
    }
    if (path === "/jwks") {
      jwksFetches++;
      return Response.json({ keys: [key.jwk] });
    }
    return new Response("not found", { status: 404 });
  });
  issuer = `http://127.0.0.1:${server.addr.port}`;
  return {
    issuer,
    get jwksFetches() {
      return jwksFetches;
    },
    get discoveryFetches() {
      return discoveryFetches;
    },
    async mint(claims, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        iss: issuer,
        sub: "alice",
        client_id: "test-client",
        iat: now,
        exp: now + 300,
        jti: crypto.randomUUID(),
        ...claims,
      };
      for (const [name, value] of Object.entries(payload)) {
        if (value === null) delete payload[name];
      }
      return await new jose.SignJWT(payload as jose.JWTPayload)
        .setProtectedHeader({ alg: "ES256", kid: key.kid, typ: "at+jwt" })
        .sign(options.forged ? stranger.privateKey : key.privateKey);
    },
    async rotate() {
      key = await newKey();
    },
    close: () => server.shutdown(),
  };
}
