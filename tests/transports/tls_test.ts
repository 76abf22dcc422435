/**
 * TLS without a proxy: the real daemon with `--tls-cert`/`--tls-key` and
 * `--oauth-issuer`, a certificate made in the test. The v2 SDK client
 * speaks HTTPS and a WebSocket client speaks WSS, each trusting the test CA
 * through its own `Deno.HttpClient` (verification stays on: a client that
 * does not trust the CA is refused).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { checkHost } from "../../src/transports/security.ts";
import { startDaemon } from "../daemon.ts";
import { resultText } from "../mcp_calls.ts";
import { startOllamaDouble } from "../ollama_double.ts";
import { WebSocketTransport } from "../ws_client_transport.ts";
import { makeTestCertificate } from "./test_cert.ts";
import { startTokenIssuer } from "./token_issuer.ts";

Deno.test("over TLS the SDK client uses HTTPS and a WebSocket client WSS, with OAuth tokens", async () => {
  const cert = await makeTestCertificate();
  const issuer = await startTokenIssuer();
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host, [
    "--tls-cert",
    cert.certFile,
    "--tls-key",
    cert.keyFile,
    "--oauth-issuer",
    issuer.issuer,
  ]);
  const trusted: typeof fetch = (input, init) => fetch(input, { ...init, client: cert.httpClient });
  try {
    assert.match(daemon.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(daemon.stderr(), /WebSocket wss:\/\/127\.0\.0\.1:\d+\/ws/);
    assert.match(daemon.stderr(), new RegExp(`OAuth resource ${daemon.url}\\)`));
    // The default resource is the https origin the daemon listens on.
    const metadata = await (await trusted(`${daemon.url}/.well-known/oauth-protected-resource/mcp`))
      .json();
    assert.equal(metadata.resource, `${daemon.url}/mcp`);

    const token = await issuer.mint({
      aud: `${daemon.url}/mcp`,
      scope: "rune:models rune:generate",
    });
    const client = new Client({ name: "tls-test", version: "1" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(daemon.mcpUrl), {
        fetch: trusted,
        authProvider: { token: () => Promise.resolve(token) },
      }),
    );
    try {
      const result = await client.callTool({
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "over https" },
      });
      assert.equal(resultText(result), "Echo: over https");
    } finally {
      await client.close();
    }

    assert.match(daemon.wsUrl, /^wss:\/\//);
    const socket = new Client({ name: "tls-test", version: "1" });
    await socket.connect(
      new WebSocketTransport(daemon.wsUrl, {
        protocols: [`bearer.${token}`],
        client: cert.httpClient,
      }),
    );
    try {
      const result = await socket.callTool({
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "over wss" },
      });
      assert.equal(resultText(result), "Echo: over wss");
    } finally {
      await socket.close();
    }

    // Certificate verification is on: without the CA the connection is refused.
    await assert.rejects(fetch(`${daemon.url}/healthz`), TypeError);
  } finally {
    assert.equal((await daemon.stop()).code, 0);
    await double.close();
    await issuer.close();
    await cert.remove();
  }
});

Deno.test("TLS alone serves HTTPS with the shared token", async () => {
  const cert = await makeTestCertificate();
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host, [
    "--tls-cert",
    cert.certFile,
    "--tls-key",
    cert.keyFile,
  ], { env: { RUNE_TOKEN: "shared-tls-token" } });
  try {
    const health = await fetch(`${daemon.url}/healthz`, {
      client: cert.httpClient,
      headers: { authorization: "Bearer shared-tls-token" },
    });
    const body = await health.json();
    assert.equal(body.status, "ok");
    assert.equal(body.sessions.websocket, 0);
    const metadata = await fetch(`${daemon.url}/.well-known/oauth-protected-resource`, {
      client: cert.httpClient,
    });
    await metadata.body?.cancel();
    assert.equal(metadata.status, 404, "no OAuth, no metadata");
  } finally {
    await daemon.stop();
    await double.close();
    await cert.remove();
  }
});

Deno.test("without a Host header (HTTP/2) the :authority is checked against DNS rebinding", () => {
  const security = { hostname: "127.0.0.1" };
  // A Request built in JavaScript has no Host header, like an HTTP/2 request in Deno.serve.
  assert.equal(checkHost(new Request("https://127.0.0.1:8484/mcp"), security), undefined);
  assert.equal(checkHost(new Request("https://localhost:8484/mcp"), security), undefined);
  assert.equal(checkHost(new Request("https://attacker.example/mcp"), security)?.status, 403);
});
