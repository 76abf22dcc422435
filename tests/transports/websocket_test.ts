/**
 * MCP over WebSocket end to end: the real daemon on port 0 driven by the
 * SDK's `WebSocketClientTransport` and by raw sockets, against the Ollama
 * double.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startDaemon } from "../daemon.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { type CallToolResult, Client, WebSocketClientTransport } from "../sdk_client.ts";
import { maskedTextFrame, rawWebSocket, rssBytes } from "./raw_http.ts";
import { assertCancelAbortsUpstream, resultText, tapProgress } from "../mcp_calls.ts";

async function wsClient(url: string): Promise<Client> {
  const client = new Client({ name: "ws-test", version: "1.0.0" });
  await client.connect(new WebSocketClientTransport(new URL(url)));
  return client;
}

const INIT = JSON.stringify({
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "raw", version: "1" },
  },
});

/** A browser-style socket with a queue of received messages. */
function openSocket(url: string, protocols: string[] = ["mcp"]) {
  const socket = new WebSocket(url, protocols);
  const messages: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  socket.onmessage = (event) => {
    messages.push(JSON.parse(event.data));
    waiters.splice(0).forEach((wake) => wake());
  };
  const opened = new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error("socket error"));
  });
  const closed = new Promise<CloseEvent>((resolve) => (socket.onclose = resolve));
  async function next(): Promise<Record<string, unknown>> {
    while (messages.length === 0) await new Promise<void>((resolve) => waiters.push(resolve));
    return messages.shift()!;
  }
  return { socket, opened, closed, next };
}

async function withDaemon(
  fn: (daemon: Awaited<ReturnType<typeof startDaemon>>, double: OllamaDouble) => Promise<void>,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<void> {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host, ["--log-level", "info", ...args], { env });
  try {
    await fn(daemon, double);
  } finally {
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0, daemon.stderr());
  }
}

Deno.test("a WebSocket client lists models, streams progress and gets the result", async () => {
  await withDaemon(async (daemon) => {
    const client = await wsClient(daemon.wsUrl);
    try {
      const list = await client.callTool({
        name: "ai_ollama_list_models",
        arguments: {},
      }) as CallToolResult;
      assert.match(resultText(list), /llama3\.2:latest/);
      const wire = tapProgress(client);
      const result = await client.callTool(
        { name: "ai_ollama_generate", arguments: { model: "llama3.2", prompt: "over the wire" } },
        undefined,
        { onprogress: () => {} },
      ) as CallToolResult;
      assert.equal(resultText(result), "Echo: over the wire");
      // Every delta reached the client before the result, in order.
      assert.ok(wire.received.length > 0, "progress notifications on the wire");
      assert.equal(wire.text(), "Echo: over the wire");
    } finally {
      await client.close();
    }
  });
});

Deno.test("many concurrent WebSocket sessions each get their own answers", async () => {
  await withDaemon(async (daemon, double) => {
    double.tokenDelayMs = 1;
    const clients = await Promise.all(Array.from({ length: 25 }, () => wsClient(daemon.wsUrl)));
    try {
      // One client leaving mid-stream must not disturb the others.
      const leaver = clients.pop()!;
      const leaving = leaver.callTool({
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "bye", options: { num_predict: 10_000 } },
      }).catch(() => "closed");
      const results = clients.map((client, i) =>
        client.callTool({
          name: "ai_ollama_generate",
          arguments: { model: "llama3.2", prompt: `client number ${i}` },
        }) as Promise<CallToolResult>
      );
      await leaver.close();
      const texts = (await Promise.all(results)).map(resultText);
      texts.forEach((t, i) => assert.equal(t, `Echo: client number ${i}`));
      assert.equal(await leaving, "closed");
      await double.waitForOpenStreams(0);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });
});

Deno.test("cancelling over WebSocket aborts the upstream call", async () => {
  await withDaemon(async (daemon, double) => {
    double.tokenDelayMs = 10;
    const client = await wsClient(daemon.wsUrl);
    try {
      await assertCancelAbortsUpstream(client, double);
    } finally {
      await client.close();
    }
  });
});

Deno.test("a malformed frame gets -32700 and the socket stays open", async () => {
  await withDaemon(async (daemon) => {
    const ws = openSocket(daemon.wsUrl);
    await ws.opened;
    assert.equal(ws.socket.protocol, "mcp");
    ws.socket.send("{oops");
    const error = await ws.next();
    assert.equal((error.error as { code: number }).code, -32700);
    assert.equal(error.id, null);
    ws.socket.send(JSON.stringify({ jsonrpc: "2.0", id: 5, method: 7 }));
    assert.equal(((await ws.next()).error as { code: number }).code, -32600);
    ws.socket.send(INIT);
    const reply = await ws.next();
    assert.equal(reply.id, 0);
    assert.ok(reply.result);
    ws.socket.close();
    await ws.closed;
  });
});

Deno.test("an oversized frame closes the socket with 1009", async () => {
  await withDaemon(async (daemon) => {
    const ws = openSocket(daemon.wsUrl);
    await ws.opened;
    ws.socket.send("x".repeat(5_000));
    const event = await ws.closed;
    assert.equal(event.code, 1009);
  }, ["--max-message-bytes", "4096"]);
});

Deno.test("a socket without the mcp subprotocol is refused", async () => {
  await withDaemon(async (daemon) => {
    const response = await fetch(`${daemon.url}/ws`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    await response.body?.cancel();
    assert.equal(response.status, 400);
  });
});

Deno.test("requests beyond the per-session in-flight limit are refused", async () => {
  await withDaemon(async (daemon, double) => {
    double.tokenDelayMs = 5;
    const ws = openSocket(daemon.wsUrl);
    await ws.opened;
    ws.socket.send(INIT);
    await ws.next();
    for (const id of [1, 2, 3]) {
      ws.socket.send(JSON.stringify({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: {
          name: "ai_ollama_generate",
          arguments: { model: "llama3.2", prompt: "x", options: { num_predict: 40 } },
        },
      }));
    }
    const seen: Record<string, unknown>[] = [];
    while (seen.filter((m) => "id" in m).length < 3) seen.push(await ws.next());
    const refused = seen.find((m) => m.id === 3)!;
    assert.equal((refused.error as { code: number }).code, -32000);
    assert.ok(seen.find((m) => m.id === 1)?.result);
    ws.socket.close();
    await ws.closed;
  }, ["--max-in-flight", "2"]);
});

Deno.test("sessions beyond --max-sessions are refused with 503", async () => {
  await withDaemon(async (daemon) => {
    const a = openSocket(daemon.wsUrl);
    const b = openSocket(daemon.wsUrl);
    await Promise.all([a.opened, b.opened]);
    const third = await fetch(`${daemon.url}/ws`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "mcp",
      },
    });
    await third.body?.cancel();
    assert.equal(third.status, 503);
    a.socket.close();
    b.socket.close();
    await Promise.all([a.closed, b.closed]);
  }, ["--max-sessions", "2"]);
});

Deno.test("a client that stops reading is closed with 1008, its call aborted, memory bounded", async () => {
  const highWater = 256 * 1024;
  await withDaemon(async (daemon, double) => {
    const baseline = await rssBytes(daemon.child.pid);
    const conn = await rawWebSocket(daemon.port);
    try {
      await conn.write(maskedTextFrame(INIT));
      // A long, fast stream with progress: the daemon must not buffer it all.
      await conn.write(maskedTextFrame(JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: "ai_ollama_generate",
          arguments: {
            model: "llama3.2",
            prompt: "x ".repeat(2000),
            options: { num_predict: 2e6 },
          },
          _meta: { progressToken: 1 },
        },
      })));
      await double.waitForOpenStreams(1);
      // Never read: the daemon gives up on us after the grace period and aborts upstream.
      await daemon.waitForLog(/client is not reading|did not read/);
      await double.waitForOpenStreams(0);
      // Streaming alone warms the V8 heap by ~100 MB (a reading client shows the same); buffering
      // the whole 2M-token reply for this client would take gigabytes.
      const grown = await rssBytes(daemon.child.pid) - baseline;
      assert.ok(grown < 256 * 1024 * 1024, `RSS grew by ${grown} bytes`);
    } finally {
      conn.close();
    }
  }, [
    "--high-water-mark",
    String(highWater),
    "--hard-cap",
    String(2 * highWater),
    "--slow-client-grace",
    "0.5",
  ]);
});

Deno.test("SIGTERM lets calls finish within the grace period, then exits 0", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 5 });
  const daemon = await startDaemon(double.host, ["--shutdown-grace", "20"]);
  const client = await wsClient(daemon.wsUrl);
  try {
    let first!: () => void;
    const streaming = new Promise<void>((resolve) => (first = resolve));
    const call = client.callTool(
      {
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "x", options: { num_predict: 60 } },
      },
      undefined,
      { onprogress: () => first() },
    ) as Promise<CallToolResult>;
    await streaming;
    // One SIGTERM only: a second one during shutdown would kill the process outright.
    const stopping = daemon.stop();
    const result = await call;
    assert.equal(result.isError, undefined);
    assert.equal((result.structuredContent as { done_reason: string }).done_reason, "length");
    assert.equal((await stopping).code, 0);
  } finally {
    await client.close();
    await daemon.stop();
    await double.close();
  }
});

Deno.test("SIGTERM aborts calls still running after the grace period and closes with 1001", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 10 });
  const daemon = await startDaemon(double.host, ["--shutdown-grace", "0.2"]);
  const ws = openSocket(daemon.wsUrl);
  try {
    await ws.opened;
    ws.socket.send(INIT);
    await ws.next();
    ws.socket.send(JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: {
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "x", options: { num_predict: 100_000 } },
      },
    }));
    await double.waitForOpenStreams(1);
    const stopping = daemon.stop();
    const event = await ws.closed;
    assert.equal(event.code, 1001);
    assert.equal((await stopping).code, 0);
    await double.waitForOpenStreams(0);
  } finally {
    await daemon.stop();
    await double.close();
  }
});

Deno.test("a session that never sends initialize is closed after --init-timeout", async () => {
  await withDaemon(async (daemon) => {
    const ws = openSocket(daemon.wsUrl);
    await ws.opened;
    const event = await ws.closed;
    assert.equal(event.code, 1008);
    assert.equal(event.reason, "no initialize request");
  }, ["--init-timeout", "0.2"]);
});

Deno.test("during the shutdown grace, existing sessions get no new calls but finish theirs", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 5 });
  const daemon = await startDaemon(double.host, ["--shutdown-grace", "20"]);
  const ws = openSocket(daemon.wsUrl);
  try {
    await ws.opened;
    ws.socket.send(INIT);
    await ws.next();
    const call = (id: number, numPredict: number) =>
      JSON.stringify({
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: {
          name: "ai_ollama_generate",
          arguments: { model: "llama3.2", prompt: "x", options: { num_predict: numPredict } },
        },
      });
    ws.socket.send(call(1, 80));
    await double.waitForOpenStreams(1);
    const stopping = daemon.stop();
    await daemon.waitForLog(/shutting down/);
    ws.socket.send(call(2, 1));
    const replies = [await ws.next(), await ws.next()];
    const refused = replies.find((m) => m.id === 2)!;
    assert.equal((refused.error as { code: number }).code, -32000);
    assert.ok(replies.find((m) => m.id === 1)?.result, "the call in flight finished");
    assert.equal((await stopping).code, 0);
    await ws.closed;
  } finally {
    await daemon.stop();
    await double.close();
  }
});
