/**
 * The network endpoints end to end: Streamable HTTP with the SDK's client,
 * `/healthz`, Origin/Host/token refusals, body limits, and one process
 * serving stdio, WebSocket and HTTP clients at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TOOLS } from "../interop/generation_checks.ts";
import { startDaemon } from "../daemon.ts";
import { startOllamaDouble } from "../ollama_double.ts";
import {
  type CallToolResult,
  Client,
  StreamableHTTPClientTransport,
  WebSocketClientTransport,
} from "../sdk_client.ts";
import { childEnv, connectStdio, MAIN, SERVE_PERMISSIONS } from "../stdio_client.ts";
import { rawRequest } from "./raw_http.ts";
import { assertCancelAbortsUpstream, resultText, tapProgress } from "../mcp_calls.ts";

async function httpClient(url: string, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: "http-test", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }),
  );
  return client;
}

const INIT_BODY = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "raw", version: "1" },
  },
});

function postInit(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers,
    },
    body: INIT_BODY,
  });
}

Deno.test("a Streamable HTTP client lists models, streams, chats and embeds", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host);
  const client = await httpClient(daemon.mcpUrl);
  try {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
    const wire = tapProgress(client);
    const generated = await client.callTool(
      { name: "ai_ollama_generate", arguments: { model: "llama3.2", prompt: "via http" } },
      undefined,
      { onprogress: () => {} },
    ) as CallToolResult;
    assert.equal(resultText(generated), "Echo: via http");
    // Read on the wire: the SDK client's onprogress drops what shares a read with the result.
    assert.equal(wire.text(), "Echo: via http");
    const chat = await client.callTool({
      name: "ai_ollama_chat",
      arguments: { model: "llama3.2", messages: [{ role: "user", content: "hey" }] },
    }) as CallToolResult;
    assert.equal(resultText(chat), "Echo: hey");
    const embed = await client.callTool({
      name: "ai_ollama_embed",
      arguments: { model: "all-minilm", input: ["a", "b", "c"] },
    }) as CallToolResult;
    assert.equal((embed.structuredContent as { embeddings: unknown[] }).embeddings.length, 3);
  } finally {
    await client.close();
    assert.equal((await daemon.stop()).code, 0);
    await double.close();
  }
});

Deno.test("cancelling over Streamable HTTP aborts the upstream call", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 10 });
  const daemon = await startDaemon(double.host);
  const client = await httpClient(daemon.mcpUrl);
  try {
    await assertCancelAbortsUpstream(client, double);
  } finally {
    await client.close();
    await daemon.stop();
    await double.close();
  }
});

Deno.test("HTTP sessions are isolated and an unknown session gets 404", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host);
  const a = await httpClient(daemon.mcpUrl);
  const b = await httpClient(daemon.mcpUrl);
  try {
    await a.close();
    const still = await b.callTool({ name: "ai_ollama_list_models", arguments: {} });
    assert.equal(still.isError, undefined);
    const response = await fetch(daemon.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": "no-such-session",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }),
    });
    await response.body?.cancel();
    assert.equal(response.status, 404);
  } finally {
    await b.close();
    await daemon.stop();
    await double.close();
  }
});

Deno.test("a malformed body gets -32700 and an oversized one 413", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host, ["--max-message-bytes", "4096"]);
  try {
    const bad = await fetch(daemon.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: "{nope",
    });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, -32700);
    const big = await fetch(daemon.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "ping",
        params: { x: "y".repeat(8000) },
      }),
    });
    await big.body?.cancel();
    assert.equal(big.status, 413);
  } finally {
    await daemon.stop();
    await double.close();
  }
});

Deno.test("/healthz reports version, uptime, sessions and provider reachability", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host);
  const ws = new Client({ name: "h", version: "1" });
  await ws.connect(new WebSocketClientTransport(new URL(daemon.wsUrl)));
  try {
    const health = await (await fetch(`${daemon.url}/healthz`)).json();
    assert.equal(health.status, "ok");
    assert.match(health.version, /^\d+\.\d+\.\d+/);
    assert.equal(typeof health.uptime_seconds, "number");
    assert.equal(health.sessions.websocket, 1);
    assert.deepEqual(health.providers.map((p: { id: string }) => p.id), ["ollama"]);
    assert.equal(health.providers[0].reachable, true);
    await double.close();
    const down = await (await fetch(`${daemon.url}/healthz`)).json();
    assert.equal(down.providers[0].reachable, false);
    assert.match(down.providers[0].error, /ollama serve/);
  } finally {
    await ws.close();
    await daemon.stop();
    await double.close();
  }
});

Deno.test("foreign Origins are refused with 403 unless allowed, localhost ones accepted", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host, ["--allow-origin", "https://app.example"]);
  try {
    for (
      const [origin, status] of [
        ["https://evil.example", 403],
        ["null", 403],
        ["http://localhost:3000", 200],
        ["http://127.0.0.1:5173", 200],
        ["https://app.example", 200],
      ] as const
    ) {
      const response = await postInit(daemon.mcpUrl, { origin });
      await response.body?.cancel();
      assert.equal(response.status, status, `Origin ${origin}`);
      const ws = await fetch(`${daemon.url}/ws`, { headers: { origin } });
      await ws.body?.cancel();
      assert.equal(ws.status, status === 403 ? 403 : 426, `Origin ${origin} on /ws`);
    }
  } finally {
    await daemon.stop();
    await double.close();
  }
});

Deno.test("a foreign Host header is refused with 403 (DNS rebinding)", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host);
  try {
    const lines = (host: string) => [
      "POST /mcp HTTP/1.1",
      `Host: ${host}`,
      "Content-Type: application/json",
      "Accept: application/json, text/event-stream",
    ];
    assert.equal(
      (await rawRequest(daemon.port, lines("attacker.example:80"), INIT_BODY)).status,
      403,
    );
    assert.equal(
      (await rawRequest(daemon.port, lines(`localhost:${daemon.port}`), INIT_BODY)).status,
      200,
    );
    const ws = await rawRequest(daemon.port, ["GET /ws HTTP/1.1", "Host: attacker.example"]);
    assert.equal(ws.status, 403);
    for (const path of ["/healthz", "/"]) {
      const page = await rawRequest(daemon.port, [
        `GET ${path} HTTP/1.1`,
        "Host: attacker.example",
      ]);
      assert.equal(page.status, 403, `${path} with a foreign Host`);
    }
  } finally {
    await daemon.stop();
    await double.close();
  }
});

Deno.test("with RUNE_TOKEN every /mcp and /ws request needs the bearer token", async () => {
  const token = "s3cret-token_value";
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host, [], { env: { RUNE_TOKEN: token } });
  try {
    const attempts: Record<string, string>[] = [{}, { authorization: "Bearer wrong" }, {
      authorization: token,
    }];
    for (const headers of attempts) {
      const response = await postInit(daemon.mcpUrl, headers);
      await response.body?.cancel();
      assert.equal(response.status, 401);
    }
    const client = await httpClient(daemon.mcpUrl, { authorization: `Bearer ${token}` });
    assert.equal(
      (await client.callTool({ name: "ai_ollama_list_models", arguments: {} })).isError,
      undefined,
    );
    await client.close();
    // Browsers send the token as a second subprotocol; the server answers with "mcp" only.
    const socket = new WebSocket(daemon.wsUrl, ["mcp", `bearer.${token}`]);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = reject;
    });
    assert.equal(socket.protocol, "mcp");
    const closed = new Promise((resolve) => (socket.onclose = resolve));
    socket.close();
    await closed;
    const refused = new WebSocket(daemon.wsUrl, ["mcp", "bearer.wrong"]);
    const outcome = await new Promise<string>((resolve) => {
      refused.onopen = () => resolve("open");
      refused.onerror = () => resolve("error");
    });
    assert.equal(outcome, "error");
    await new Promise((resolve) =>
      refused.readyState === WebSocket.CLOSED ? resolve(0) : (refused.onclose = resolve)
    );
    const health = await fetch(`${daemon.url}/healthz`);
    assert.equal(health.status, 200, "health needs no token");
    const limited = await health.json();
    assert.equal(limited.status, "ok");
    assert.equal(limited.providers, undefined, "details are for token holders");
    const full = await (await fetch(`${daemon.url}/healthz`, {
      headers: { authorization: `Bearer ${token}` },
    })).json();
    assert.equal(full.providers[0].reachable, true);
  } finally {
    await daemon.stop();
    await double.close();
  }
  assert.ok(!daemon.stderr().includes(token), "the token is never logged");
});

Deno.test("binding a non-loopback address without a token refuses to start", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...SERVE_PERMISSIONS, MAIN, "serve", "--host", "0.0.0.0", "--port", "0"],
    clearEnv: true,
    env: childEnv(),
  }).output();
  assert.equal(output.code, 2);
  assert.match(
    new TextDecoder().decode(output.stderr),
    /Refusing to listen on 0\.0\.0\.0 without a token/,
  );
});

Deno.test("one process serves stdio, WebSocket and Streamable HTTP clients at once", async () => {
  const double = await startOllamaDouble();
  const session = await connectStdio(double.host, { args: ["--port", "0"] });
  try {
    let port = 0;
    while (port === 0) {
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(session.stderr());
      if (match) port = Number(match[1]);
      else await new Promise((resolve) => session.transport.stderr?.once("data", resolve));
    }
    const ws = new Client({ name: "ws", version: "1" });
    await ws.connect(new WebSocketClientTransport(new URL(`ws://127.0.0.1:${port}/ws`)));
    const http = await httpClient(`http://127.0.0.1:${port}/mcp`);
    const calls = [session.client, ws, http].map((client, i) =>
      client.callTool({
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: `transport ${i}` },
      }) as Promise<CallToolResult>
    );
    const texts = (await Promise.all(calls)).map(resultText);
    assert.deepEqual(texts, ["Echo: transport 0", "Echo: transport 1", "Echo: transport 2"]);
    const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
    assert.deepEqual(health.sessions, { websocket: 1, http: 1, stdio: 1 });
    await ws.close();
    await http.close();
  } finally {
    await session.close();
    await double.close();
  }
});

Deno.test("a streaming HTTP call counts as in flight until its reply", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 10 });
  const daemon = await startDaemon(double.host, ["--max-in-flight", "1"]);
  const client = await httpClient(daemon.mcpUrl);
  try {
    let first!: () => void;
    const streaming = new Promise<void>((resolve) => (first = resolve));
    const controller = new AbortController();
    const long = client.callTool(
      {
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "x", options: { num_predict: 100_000 } },
      },
      undefined,
      { signal: controller.signal, onprogress: () => first() },
    );
    await streaming;
    await assert.rejects(
      client.callTool({ name: "ai_ollama_list_models", arguments: {} }),
      /429|Too many requests/,
    );
    controller.abort();
    await assert.rejects(long);
    await double.waitForOpenStreams(0);
  } finally {
    await client.close();
    await daemon.stop();
    await double.close();
  }
});

Deno.test("/healthz answers GET and HEAD; other methods get 405 with Allow", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host);
  try {
    const post = await fetch(`${daemon.url}/healthz`, { method: "POST", body: "{}" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    assert.equal(await post.text(), "Method not allowed: use GET /healthz\n");
    const get = await fetch(`${daemon.url}/healthz`);
    assert.equal(get.status, 200);
    assert.equal((await get.json()).status, "ok");
  } finally {
    await daemon.stop();
    await double.close();
  }
});
