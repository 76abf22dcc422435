/**
 * The MCP authorization flow end to end, as a hosted client runs it: the
 * v2 SDK client, given nothing but Rune's URL, gets the 401 challenge,
 * discovers the protected resource metadata and the authorization server
 * (a real OpenID provider, oidc-provider), registers itself dynamically,
 * sends the user to sign in with PKCE and the resource indicator, redeems
 * the code, and then sees exactly the tools the token's scopes allow. Rune
 * is the real daemon, serving HTTPS with a certificate made in the test.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  Client,
  type OAuthClientMetadata,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  type StoredOAuthClientInformation,
  type StoredOAuthTokens,
  StreamableHTTPClientTransport,
  UnauthorizedError,
} from "@modelcontextprotocol/client";
import * as jose from "jose";
import { startDaemon } from "../daemon.ts";
import { resultText } from "../mcp_calls.ts";
import { startOllamaDouble } from "../ollama_double.ts";
import { browse, startOidcTestProvider } from "./oidc_test_provider.ts";
import { makeTestCertificate } from "./test_cert.ts";

/** An MCP client's OAuth state, in memory, as the SDK asks a host to keep it. */
class MemoryOAuthProvider implements OAuthClientProvider {
  authorizationUrl?: URL;
  #client?: StoredOAuthClientInformation;
  #tokens?: StoredOAuthTokens;
  #verifier = "";
  #discovery?: OAuthDiscoveryState;

  constructor(readonly redirect: string) {}

  get redirectUrl(): string {
    return this.redirect;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: "Rune flow test",
      redirect_uris: [this.redirect],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }

  clientInformation(): StoredOAuthClientInformation | undefined {
    return this.#client;
  }

  saveClientInformation(info: StoredOAuthClientInformation): void {
    this.#client = info;
  }

  tokens(): StoredOAuthTokens | undefined {
    return this.#tokens;
  }

  saveTokens(tokens: StoredOAuthTokens): void {
    this.#tokens = tokens;
  }

  redirectToAuthorization(url: URL): void {
    this.authorizationUrl = url;
  }

  saveCodeVerifier(verifier: string): void {
    this.#verifier = verifier;
  }

  codeVerifier(): string {
    return this.#verifier;
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.#discovery = state;
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.#discovery;
  }
}

/** The redirect target: records the query of the authorization response. */
function startCallback(): {
  url: string;
  received: Promise<URLSearchParams>;
  close(): Promise<void>;
} {
  let resolve!: (params: URLSearchParams) => void;
  const received = new Promise<URLSearchParams>((r) => (resolve = r));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    resolve(new URL(request.url).searchParams);
    return new Response("signed in", { headers: { "content-type": "text/plain" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/callback`,
    received,
    close: () => server.shutdown(),
  };
}

Deno.test("the SDK client's own OAuth flow (discovery, registration, PKCE, token) completes against Rune over HTTPS", async () => {
  const cert = await makeTestCertificate();
  const op = await startOidcTestProvider();
  const double = await startOllamaDouble();
  const callback = startCallback();
  const daemon = await startDaemon(double.host, [
    "--tls-cert",
    cert.certFile,
    "--tls-key",
    cert.keyFile,
    "--oauth-issuer",
    op.issuer,
  ]);
  const trusted: typeof fetch = (input, init) => fetch(input, { ...init, client: cert.httpClient });
  const provider = new MemoryOAuthProvider(callback.url);
  const transport = () =>
    new StreamableHTTPClientTransport(new URL(daemon.mcpUrl), {
      authProvider: provider,
      fetch: trusted,
    });
  try {
    // Nothing configured but the URL: the first connect ends at the sign-in page.
    const first = transport();
    await assert.rejects(
      new Client({ name: "flow-test", version: "1" }).connect(first),
      UnauthorizedError,
    );
    const authorization = provider.authorizationUrl!;
    assert.equal(new URL(authorization).origin, op.issuer);
    assert.equal(authorization.searchParams.get("resource"), `${daemon.url}/mcp`);
    // The challenge's scopes (the SDK adds offline_access for a refresh token).
    assert.deepEqual(
      authorization.searchParams.get("scope")!.split(" ").filter((s) => s.startsWith("rune:")),
      ["rune:models", "rune:generate"],
    );
    assert.equal(authorization.searchParams.get("code_challenge_method"), "S256");
    assert.equal(op.registrations, 1, "the client registered itself");

    // The user signs in and consents; the provider redirects back with the code.
    const landed = await browse(authorization.href, { login: "carol" });
    assert.equal(await landed.text(), "signed in");
    await first.finishAuth(await callback.received);
    const token = jose.decodeJwt(provider.tokens()!.access_token);
    assert.equal(token.aud, `${daemon.url}/mcp`);
    assert.equal(token.sub, "carol");
    assert.equal(token.scope, "rune:models rune:generate");

    const client = new Client({ name: "flow-test", version: "1" });
    await client.connect(transport());
    try {
      const tools = (await client.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(tools, [
        "ai_chat",
        "ai_compare",
        "ai_embed",
        "ai_generate",
        "ai_list_models",
        "ai_ollama_chat",
        "ai_ollama_embed",
        "ai_ollama_generate",
        "ai_ollama_list_models",
        "ai_ollama_ps",
        "ai_ollama_show",
      ], "no pull or delete without rune:manage");
      const result = await client.callTool({
        name: "ai_generate",
        arguments: { model: "ollama/llama3.2", prompt: "signed in" },
      });
      assert.equal(resultText(result), "Echo: signed in");
    } finally {
      await client.close();
    }
    assert.ok(!daemon.stderr().includes("carol"), "the subject is not logged");
  } finally {
    assert.equal((await daemon.stop()).code, 0);
    await callback.close();
    await double.close();
    await op.close();
    await cert.remove();
  }
});
