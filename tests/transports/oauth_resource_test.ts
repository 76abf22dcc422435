/**
 * Rune as an OAuth resource server, end to end on 127.0.0.1 and port 0:
 * the handler serving MCP over a fake provider, with tokens from a real
 * issuer (a JWKS issuer signing with `jose`, and oidc-provider for
 * introspection and its own JWTs). Checks the metadata documents, the 401
 * and 403 challenges, every refusal a bad token must get, key rotation,
 * scope filtering over both HTTP eras and WebSocket, identity by subject,
 * the shared token beside OAuth, and the failed-auth limiter.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  Client,
  InsufficientScopeError,
  ProtocolError,
  StreamableHTTPClientTransport,
} from "@modelcontextprotocol/client";
import { createServerFactory } from "../../src/mcp/server.ts";
import { createHandler, type NetworkLimits } from "../../src/transports/http.ts";
import {
  createResourceServer,
  type IntrospectionSettings,
  oauthIdentityId,
  type ResourceServer,
} from "../../src/transports/oauth_resource.ts";
import { createFakeProvider } from "../fake_provider.ts";
import { WebSocketTransport } from "../ws_client_transport.ts";
import {
  INTROSPECTOR,
  MACHINE,
  OPAQUE_MACHINE,
  startOidcTestProvider,
} from "./oidc_test_provider.ts";
import { readHead, writeAll } from "./raw_http.ts";
import { startTokenIssuer, type TokenIssuer } from "./token_issuer.ts";

/** Tools of one fake provider "fake" with the router and compare tools, by scope. */
const MODEL_TOOLS = ["ai_fake_list_models", "ai_list_models"];
const GENERATE_TOOLS = [
  "ai_chat",
  "ai_compare",
  "ai_embed",
  "ai_fake_chat",
  "ai_fake_embed",
  "ai_fake_generate",
  "ai_generate",
];

interface Rune {
  origin: string;
  port: number;
  mcpUrl: string;
  wsUrl: string;
  oauth: ResourceServer;
  logs: string[];
  close(): Promise<void>;
}

interface RuneOptions {
  tokens?: string[];
  jwksCooldownMs?: number;
  discoveryRetryMs?: number;
  introspection?: IntrospectionSettings;
  limits?: NetworkLimits;
}

/** Serves Rune in this process with OAuth trusting `issuers`. */
function startRune(issuers: string[], options: RuneOptions = {}): Rune {
  const logs: string[] = [];
  const log = (level: string, message: string) => void logs.push(`${level}: ${message}`);
  const provider = createFakeProvider();
  const oauth = createResourceServer({
    issuers,
    jwksCooldownMs: options.jwksCooldownMs,
    discoveryRetryMs: options.discoveryRetryMs,
    introspection: options.introspection,
    log,
  });
  const handler = createHandler({
    factory: createServerFactory({ providers: [provider], log }),
    providers: [provider],
    security: { hostname: "127.0.0.1", tokens: options.tokens, oauth },
    limits: options.limits,
    log,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  const origin = `http://127.0.0.1:${server.addr.port}`;
  oauth.listening(origin);
  return {
    origin,
    port: server.addr.port,
    mcpUrl: `${origin}/mcp`,
    wsUrl: `ws://127.0.0.1:${server.addr.port}/ws`,
    oauth,
    logs,
    close: async () => {
      await handler.closeAll();
      await server.shutdown();
    },
  };
}

const MODERN = { versionNegotiation: { mode: { pin: "2026-07-28" } } } as const;

/** A v2 SDK client over Streamable HTTP sending `token`. */
async function httpClient(rune: Rune, token: string, modern = false): Promise<Client> {
  const client = new Client({ name: "oauth-test", version: "1" }, modern ? MODERN : undefined);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(rune.mcpUrl), {
      authProvider: { token: () => Promise.resolve(token) },
      onInsufficientScope: "throw",
    }),
  );
  return client;
}

/** A v2 SDK client over WebSocket with the token as `bearer.` subprotocol. */
async function wsClient(rune: Rune, token: string): Promise<Client> {
  const client = new Client({ name: "oauth-test", version: "1" });
  await client.connect(new WebSocketTransport(rune.wsUrl, { protocols: [`bearer.${token}`] }));
  return client;
}

async function toolNames(client: Client): Promise<string[]> {
  return (await client.listTools()).tools.map((t) => t.name).sort();
}

const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "raw", version: "1" },
  },
};

/** POSTs a JSON-RPC body to /mcp (2025 era) with `headers`. */
function post(rune: Rune, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(rune.mcpUrl, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2025-06-18",
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

/** Sends a WebSocket upgrade for /ws offering `protocols`; the response head (a `WebSocket` hides it). */
async function upgradeRequest(
  port: number,
  protocols: string,
): Promise<{ status: number; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const lines = [
      "GET /ws HTTP/1.1",
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
      `Sec-WebSocket-Protocol: ${protocols}`,
    ];
    await writeAll(conn, new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
    return await readHead(conn);
  } finally {
    conn.close();
  }
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

async function withRune(
  issuers: (issuer: TokenIssuer) => string[],
  options: RuneOptions,
  fn: (rune: Rune, issuer: TokenIssuer) => Promise<void>,
): Promise<void> {
  const issuer = await startTokenIssuer();
  const rune = startRune(issuers(issuer), options);
  try {
    await fn(rune, issuer);
  } finally {
    await rune.close();
    await issuer.close();
  }
}

const ours = (issuer: TokenIssuer) => [issuer.issuer];

Deno.test("the protected resource metadata names the resource, its issuers, scopes and bearer method", async () => {
  await withRune(ours, {}, async (rune, issuer) => {
    for (
      const [path, resource] of [
        ["/.well-known/oauth-protected-resource", rune.origin],
        ["/.well-known/oauth-protected-resource/mcp", `${rune.origin}/mcp`],
      ]
    ) {
      const response = await fetch(`${rune.origin}${path}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "application/json");
      assert.equal(response.headers.get("access-control-allow-origin"), "*");
      assert.deepEqual(await response.json(), {
        resource,
        authorization_servers: [issuer.issuer],
        scopes_supported: ["rune:models", "rune:generate", "rune:manage"],
        bearer_methods_supported: ["header"],
        resource_name: "Rune",
      });
    }
    const head = await fetch(`${rune.origin}/.well-known/oauth-protected-resource`, {
      method: "HEAD",
    });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    const post = await fetch(`${rune.origin}/.well-known/oauth-protected-resource`, {
      method: "POST",
    });
    await post.body?.cancel();
    assert.equal(post.status, 405);
    const other = await fetch(`${rune.origin}/.well-known/oauth-protected-resource/ws`);
    await other.body?.cancel();
    assert.equal(other.status, 404);
  });
});

Deno.test("without a token /mcp and /ws answer 401 with a challenge that leads to the metadata", async () => {
  await withRune(ours, {}, async (rune, issuer) => {
    const response = await post(rune, INIT);
    assert.equal(response.status, 401);
    assert.equal((await response.json()).error.code, -32600);
    const challenge = response.headers.get("www-authenticate")!;
    assert.equal(
      challenge,
      `Bearer resource_metadata="${rune.origin}/.well-known/oauth-protected-resource/mcp", ` +
        `scope="rune:models rune:generate"`,
    );
    // A client follows resource_metadata to the authorization server.
    const url = /resource_metadata="([^"]+)"/.exec(challenge)![1];
    const metadata = await (await fetch(url)).json();
    assert.equal(metadata.resource, rune.mcpUrl);
    assert.deepEqual(metadata.authorization_servers, [issuer.issuer]);

    const upgrade = await upgradeRequest(rune.port, "mcp");
    assert.equal(upgrade.status, 401);
    assert.match(
      upgrade.head,
      new RegExp(
        `www-authenticate: Bearer resource_metadata="${rune.origin}/\\.well-known/oauth-protected-resource", scope="rune:models rune:generate"\\r\\n`,
        "i",
      ),
    );
  });
});

Deno.test("a valid token works over /mcp in both eras and over /ws as a bearer. subprotocol", async () => {
  await withRune(ours, {}, async (rune, issuer) => {
    const token = await issuer.mint({
      aud: rune.mcpUrl,
      scope: "openid rune:models rune:generate",
    });
    for (const modern of [false, true]) {
      const client = await httpClient(rune, token, modern);
      try {
        assert.deepEqual(await toolNames(client), [...MODEL_TOOLS, ...GENERATE_TOOLS].sort());
        const result = await client.callTool({
          name: "ai_fake_generate",
          arguments: { model: "m1", prompt: "hello there" },
        });
        assert.equal(result.isError, undefined, JSON.stringify(result));
      } finally {
        await client.close();
      }
    }
    // A token for the origin itself is accepted too (the root metadata document names it).
    const originToken = await issuer.mint({ aud: rune.origin, scope: "rune:models" });
    const socket = await wsClient(rune, originToken);
    try {
      assert.deepEqual(await toolNames(socket), MODEL_TOOLS);
    } finally {
      await socket.close();
    }
    assert.ok(!rune.logs.some((line) => line.includes(token)), "the token is never logged");
  });
});

Deno.test("tokens that must not be accepted get 401 invalid_token saying why", async () => {
  const stranger = await startTokenIssuer();
  try {
    await withRune(ours, {}, async (rune, issuer) => {
      const aud = rune.mcpUrl;
      const scope = "rune:models";
      const now = Math.floor(Date.now() / 1000);
      const cases: [string, string, RegExp][] = [
        [
          "another resource",
          await issuer.mint({ aud: "https://other.example/mcp", scope }),
          /issued for another resource/,
        ],
        [
          "an untrusted issuer",
          await stranger.mint({ aud, scope }),
          /which this server does not trust/,
        ],
        ["expired", await issuer.mint({ aud, scope, exp: now - 120 }), /has expired/],
        ["not yet valid", await issuer.mint({ aud, scope, nbf: now + 120 }), /not valid yet/],
        ["a bad signature", await issuer.mint({ aud, scope }, { forged: true }), /signature/],
        ["no expiry", await issuer.mint({ aud, scope, exp: null }), /exp claim/],
        [
          "no subject or client",
          await issuer.mint({ aud, scope, sub: null, client_id: null }),
          /neither a subject/,
        ],
        ["opaque without introspection", "opaque-token-value", /not a JWT/],
      ];
      for (const [what, token, reason] of cases) {
        const response = await post(rune, INIT, bearer(token));
        await response.body?.cancel();
        assert.equal(response.status, 401, what);
        const challenge = response.headers.get("www-authenticate") ?? "";
        assert.match(
          challenge,
          /^Bearer error="invalid_token", scope="rune:models rune:generate", /,
        );
        assert.match(
          challenge,
          new RegExp(
            `resource_metadata="${rune.origin}/\\.well-known/oauth-protected-resource/mcp"`,
          ),
        );
        assert.match(/error_description="([^"]*)"/.exec(challenge)![1], reason, what);
      }
      // The same refusal at the WebSocket door.
      const expired = await issuer.mint({ aud, scope, exp: now - 120 });
      const upgrade = await upgradeRequest(rune.port, `mcp, bearer.${expired}`);
      assert.equal(upgrade.status, 401);
      assert.match(upgrade.head, /www-authenticate: Bearer error="invalid_token"/i);
      assert.equal(stranger.jwksFetches, 0, "an untrusted issuer is never contacted");
    });
  } finally {
    await stranger.close();
  }
});

Deno.test("after a key rotation, an unknown kid makes Rune fetch the issuer's keys again", async () => {
  await withRune(ours, { jwksCooldownMs: 0 }, async (rune, issuer) => {
    const before = await issuer.mint({ aud: rune.mcpUrl, scope: "rune:models" });
    let response = await post(rune, INIT, bearer(before));
    await response.body?.cancel();
    assert.equal(response.status, 200);
    assert.equal(issuer.jwksFetches, 1);
    await issuer.rotate();
    const after = await issuer.mint({ aud: rune.mcpUrl, scope: "rune:models" });
    response = await post(rune, INIT, bearer(after));
    await response.body?.cancel();
    assert.equal(response.status, 200);
    assert.equal(issuer.jwksFetches, 2);
    // The retired key is gone from the set: its tokens are refused.
    response = await post(rune, INIT, bearer(before));
    await response.body?.cancel();
    assert.equal(response.status, 401);
    assert.equal(issuer.discoveryFetches, 1, "the metadata is discovered once");
  });
});

Deno.test("unknown kids refetch the key set at most once per cooldown", async () => {
  await withRune(ours, { limits: { maxAuthFailures: 1000 } }, async (rune, issuer) => {
    const first = await issuer.mint({ aud: rune.mcpUrl, scope: "rune:models" });
    const response = await post(rune, INIT, bearer(first));
    await response.body?.cancel();
    assert.equal(response.status, 200);
    await issuer.rotate();
    for (let i = 0; i < 20; i++) {
      const token = await issuer.mint({ aud: rune.mcpUrl, scope: "rune:models" });
      const refused = await post(rune, INIT, bearer(token));
      await refused.body?.cancel();
      assert.equal(refused.status, 401);
    }
    assert.equal(issuer.jwksFetches, 1, "within the 30 s cooldown the keys are not refetched");
  });
});

Deno.test("scopes decide which tools a client sees, in both HTTP eras and over /ws", async () => {
  await withRune(ours, {}, async (rune, issuer) => {
    const expectations: [string, string[]][] = [
      ["rune:models", MODEL_TOOLS],
      ["rune:generate", GENERATE_TOOLS],
      ["rune:manage rune:models", MODEL_TOOLS],
      ["rune:models rune:generate rune:manage", [...MODEL_TOOLS, ...GENERATE_TOOLS].sort()],
    ];
    for (const [scope, tools] of expectations) {
      const token = await issuer.mint({ aud: rune.mcpUrl, scope });
      for (const connect of [() => httpClient(rune, token), () => httpClient(rune, token, true)]) {
        const client = await connect();
        try {
          assert.deepEqual(await toolNames(client), tools, scope);
        } finally {
          await client.close();
        }
      }
      const socket = await wsClient(rune, token);
      try {
        assert.deepEqual(await toolNames(socket), tools, `${scope} over /ws`);
      } finally {
        await socket.close();
      }
    }
  });
});

Deno.test("a call outside the token's scopes gets 403 insufficient_scope on /mcp", async () => {
  await withRune(ours, {}, async (rune, issuer) => {
    const token = await issuer.mint({ aud: rune.mcpUrl, scope: "rune:models" });
    const call = {
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: { name: "ai_fake_generate", arguments: { model: "m1", prompt: "hi" } },
    };
    const response = await post(rune, call, bearer(token));
    assert.equal(response.status, 403);
    assert.equal(
      response.headers.get("www-authenticate"),
      `Bearer error="insufficient_scope", scope="rune:generate", ` +
        `resource_metadata="${rune.origin}/.well-known/oauth-protected-resource/mcp", ` +
        `error_description="This needs the scope rune:generate: sign in again granting it."`,
    );
    assert.match((await response.json()).error.message, /rune:generate/);

    // The SDK client surfaces it as its typed error, in both eras.
    for (const modern of [false, true]) {
      const client = await httpClient(rune, token, modern);
      try {
        await assert.rejects(
          client.callTool({ name: "ai_generate", arguments: { model: "fake/m1", prompt: "x" } }),
          (error: unknown) =>
            error instanceof InsufficientScopeError && error.requiredScope === "rune:generate",
        );
      } finally {
        await client.close();
      }
    }

    // A token with none of Rune's scopes is refused at the door, pointing at the basic ones.
    const none = await issuer.mint({ aud: rune.mcpUrl, scope: "openid profile" });
    const refused = await post(rune, INIT, bearer(none));
    await refused.body?.cancel();
    assert.equal(refused.status, 403);
    assert.match(
      refused.headers.get("www-authenticate")!,
      /^Bearer error="insufficient_scope", scope="rune:models rune:generate", /,
    );
  });
});

Deno.test("over /ws a call outside the token's scopes is a JSON-RPC error carrying the challenge", async () => {
  await withRune(ours, {}, async (rune, issuer) => {
    const token = await issuer.mint({ aud: rune.mcpUrl, scope: "rune:models" });
    const client = await wsClient(rune, token);
    try {
      await assert.rejects(
        client.callTool({ name: "ai_fake_chat", arguments: { model: "m1", messages: [] } }),
        (error: unknown) => {
          assert.ok(error instanceof ProtocolError, String(error));
          assert.equal(error.code, -32003);
          assert.match(error.message, /rune:generate/);
          assert.deepEqual(error.data, {
            error: "insufficient_scope",
            scope: "rune:generate",
            resource_metadata: `${rune.origin}/.well-known/oauth-protected-resource`,
          });
          return true;
        },
      );
      // The session goes on.
      const listed = await client.callTool({ name: "ai_list_models", arguments: {} });
      assert.equal(listed.isError, undefined);
    } finally {
      await client.close();
    }
  });
});

Deno.test("the identity is issuer, subject and client: a user's new token keeps the session, another's does not", async () => {
  await withRune(ours, {}, async (rune, issuer) => {
    const mint = (claims: Record<string, unknown>) =>
      issuer.mint({ aud: rune.mcpUrl, scope: "rune:models", ...claims });
    const opened = await post(rune, INIT, bearer(await mint({})));
    await opened.body?.cancel();
    assert.equal(opened.status, 200);
    const session = opened.headers.get("mcp-session-id")!;
    const list = { jsonrpc: "2.0", id: 2, method: "tools/list" };
    const withSession = async (token: string) => {
      const response = await post(rune, list, { ...bearer(token), "mcp-session-id": session });
      await response.body?.cancel();
      return response.status;
    };
    // Refreshed: another token (new jti and expiry) of the same user and client.
    assert.equal(await withSession(await mint({ exp: Math.floor(Date.now() / 1000) + 900 })), 200);
    assert.equal(await withSession(await mint({ sub: "bob" })), 404);
    assert.equal(await withSession(await mint({ client_id: "other-app" })), 404);
    // Other scopes need a session whose tools match them (the client re-initializes on 404).
    assert.equal(await withSession(await mint({ scope: "rune:models rune:generate" })), 404);

    const base = { issuer: issuer.issuer, scopes: [], expiresAt: 0, audience: rune.mcpUrl };
    const alice = await oauthIdentityId({ ...base, subject: "alice", clientId: "app" });
    assert.match(alice, /^oauth:[0-9a-f]{32}$/);
    assert.equal(alice, await oauthIdentityId({ ...base, subject: "alice", clientId: "app" }));
    assert.notEqual(alice, await oauthIdentityId({ ...base, subject: "bob", clientId: "app" }));
    assert.notEqual(alice, await oauthIdentityId({ ...base, subject: "alice", clientId: "x" }));
    assert.ok(!rune.logs.some((line) => line.includes("alice")), "the subject is never logged");
  });
});

Deno.test("the shared RUNE_TOKEN keeps working beside OAuth, with every tool", async () => {
  await withRune(ours, { tokens: ["shared-secret-token"] }, async (rune, issuer) => {
    const shared = await httpClient(rune, "shared-secret-token");
    try {
      assert.deepEqual(await toolNames(shared), [...MODEL_TOOLS, ...GENERATE_TOOLS].sort());
    } finally {
      await shared.close();
    }
    const oauth = await httpClient(
      rune,
      await issuer.mint({ aud: rune.mcpUrl, scope: "rune:models" }),
    );
    try {
      assert.deepEqual(await toolNames(oauth), MODEL_TOOLS);
    } finally {
      await oauth.close();
    }
    const wrong = await post(rune, INIT, bearer("shared-secret-tokem"));
    await wrong.body?.cancel();
    assert.equal(wrong.status, 401);
  });
});

Deno.test("requests without a token or with an expired one are not counted as failed sign-ins; guesses are", async () => {
  await withRune(ours, { limits: { maxAuthFailures: 3 } }, async (rune, issuer) => {
    for (let i = 0; i < 6; i++) {
      const response = await post(rune, INIT);
      await response.body?.cancel();
      assert.equal(response.status, 401, "a client starting its sign-in is never throttled");
    }
    const expired = await issuer.mint({
      aud: rune.mcpUrl,
      scope: "rune:models",
      exp: Math.floor(Date.now() / 1000) - 120,
    });
    for (let i = 0; i < 6; i++) {
      const response = await post(rune, INIT, bearer(expired));
      await response.body?.cancel();
      assert.equal(response.status, 401, "a client about to refresh its token is never throttled");
    }
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await post(rune, INIT, bearer(`guess-${i}`));
      await response.body?.cancel();
      statuses.push(response.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 429]);
  });
});

Deno.test("a WebSocket closes with 1008 when its access token expires", async () => {
  await withRune(ours, {}, async (rune, issuer) => {
    // Within the clock tolerance the token is accepted; the connection still ends at its exp.
    const token = await issuer.mint({
      aud: rune.mcpUrl,
      scope: "rune:models",
      exp: Math.floor(Date.now() / 1000) + 1,
    });
    const socket = new WebSocket(rune.wsUrl, ["mcp", `bearer.${token}`]);
    const closed = new Promise<CloseEvent>((resolve) => (socket.onclose = resolve));
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    const event = await closed;
    assert.equal(event.code, 1008);
    assert.equal(event.reason, "access token expired");
  });
});

Deno.test("opaque tokens are checked by introspection; oidc-provider's JWTs by its keys", async () => {
  const op = await startOidcTestProvider();
  const rune = startRune([op.issuer], {
    introspection: {
      endpoint: op.introspectionEndpoint,
      clientId: INTROSPECTOR.id,
      clientSecret: INTROSPECTOR.secret,
    },
  });
  try {
    const opaque = await op.machineToken(OPAQUE_MACHINE, rune.mcpUrl, "rune:generate");
    assert.equal(opaque.split(".").length, 1, "an opaque token");
    const client = await httpClient(rune, opaque);
    try {
      assert.deepEqual(await toolNames(client), GENERATE_TOOLS);
      const before = op.introspections;
      assert.deepEqual(await toolNames(client), GENERATE_TOOLS);
      assert.equal(op.introspections, before, "an accepted token is remembered for a while");
    } finally {
      await client.close();
    }
    // Issued for another resource: introspection says so and Rune refuses it.
    const elsewhere = await op.machineToken(
      OPAQUE_MACHINE,
      "https://other.example/mcp",
      "rune:models",
    );
    const refused = await post(rune, INIT, bearer(elsewhere));
    await refused.body?.cancel();
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get("www-authenticate")!, /another resource/);
    // A token the provider never issued is not active.
    const unknown = await post(rune, INIT, bearer("never-issued-token-value"));
    await unknown.body?.cancel();
    assert.equal(unknown.status, 401);
    assert.match(unknown.headers.get("www-authenticate")!, /not active/);

    const jwt = await op.machineToken(MACHINE, rune.mcpUrl, "rune:models rune:manage");
    const machine = await httpClient(rune, jwt, true);
    try {
      assert.deepEqual(await toolNames(machine), MODEL_TOOLS);
    } finally {
      await machine.close();
    }
  } finally {
    await rune.close();
    await op.close();
  }
});

Deno.test("wrong introspection credentials make Rune answer 503, not 401", async () => {
  const op = await startOidcTestProvider();
  const rune = startRune([op.issuer], {
    introspection: {
      endpoint: op.introspectionEndpoint,
      clientId: INTROSPECTOR.id,
      clientSecret: "not-the-secret",
    },
  });
  try {
    const opaque = await op.machineToken(OPAQUE_MACHINE, rune.mcpUrl, "rune:models");
    const response = await post(rune, INIT, bearer(opaque));
    await response.body?.cancel();
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "5");
    assert.ok(
      rune.logs.some((line) => /^warning: .*introspection.*401.*client credentials/.test(line)),
      rune.logs.join("\n"),
    );
  } finally {
    await rune.close();
    await op.close();
  }
});

Deno.test("an issuer that cannot be reached makes Rune answer 503, and discovery is retried later", async () => {
  const issuer = await startTokenIssuer();
  // A pause far longer than the test: the second and third requests fall inside it.
  const rune = startRune([issuer.issuer], { discoveryRetryMs: 3_600_000 });
  try {
    const token = await issuer.mint({ aud: rune.mcpUrl, scope: "rune:models" });
    await issuer.close();
    for (let i = 0; i < 3; i++) {
      const response = await post(rune, INIT, bearer(token));
      await response.body?.cancel();
      assert.equal(response.status, 503);
      assert.equal(response.headers.get("www-authenticate"), null, "the token is not blamed");
    }
    const warnings = rune.logs.filter((line) => line.startsWith("warning: "));
    assert.match(warnings[0], /Cannot read the metadata of issuer http:\/\/127\.0\.0\.1:\d+/);
    // Within the retry pause the issuer is not asked again.
    assert.match(warnings[1], /did not answer a moment ago; retrying shortly/);
  } finally {
    await rune.close();
  }
});
