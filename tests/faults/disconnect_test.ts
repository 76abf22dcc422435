/**
 * Clients that vanish in the middle of a streamed call: 200 WebSocket
 * clients start a generate with progress and disconnect without
 * cancelling, some with a close handshake, some by dropping the TCP
 * connection. Every upstream request must be aborted and no session may
 * outlive its client, wave after wave; the daemon then still serves. All
 * of it is read off the wire (the double's stream counts, `/healthz`), so
 * nothing depends on timing. The daemon's memory after such storms is
 * `churn_test.ts` (short) and `bench/churn.ts ws-churn` (full size).
 *
 * @module
 */

import { maskedTextFrame, rawWebSocket, writeAll } from "../transports/raw_http.ts";
import { generateCall, resultText } from "../mcp_calls.ts";
import assert from "node:assert/strict";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import {
  type FaultDaemon,
  INITIALIZED,
  initializeRequest,
  type Message,
  openSocket,
  type RawSocket,
  spawnDaemon,
  within,
} from "./support.ts";

/** Clients using the WebSocket API, which close with a close handshake. */
const HANDSHAKE_CLIENTS = 140;
/** Clients on raw TCP, which drop the connection without a close frame. */
const DROPPING_CLIENTS = 60;
const CLIENTS = HANDSHAKE_CLIENTS + DROPPING_CLIENTS;
/** Waves of disconnecting clients. */
const WAVES = 2;
/**
 * Tokens each generate asks for. The double sends the first token at once
 * and the next only after {@linkcode STALL_MS}, so every stream is open and
 * mid-reply when its client goes, however slow the machine.
 */
const LONG = 5_000;
const STALL_MS = 3_600_000;
/** Overall bound on each awaited step. */
const STEP_MS = 60_000;

/**
 * Upgrades a raw TCP connection to `/ws` (subprotocol `mcp`) and sends
 * `messages` as frames; the server's frames are never read.
 */
async function rawWebSocketSending(port: number, messages: Message[]): Promise<Deno.Conn> {
  const conn = await rawWebSocket(port);
  try {
    for (const message of messages) await writeAll(conn, maskedTextFrame(JSON.stringify(message)));
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** A WebSocket client that has initialized and started a long generate. */
async function streamingSocket(wsUrl: string, n: number, numPredict = LONG): Promise<RawSocket> {
  const ws = await openSocket(wsUrl);
  try {
    ws.send(initializeRequest("init"));
    const reply = await ws.next();
    assert.equal(reply.id, "init");
    ws.send(INITIALIZED);
    ws.send(generateCall(n, { numPredict }));
    return ws;
  } catch (error) {
    await ws.close();
    throw error;
  }
}

/** Reads past progress notifications to the call's result. */
async function nextResult(ws: RawSocket): Promise<Record<string, unknown>> {
  for (;;) {
    const message = await ws.next();
    if (message.method === "notifications/progress") continue;
    assert.equal(message.error, undefined, JSON.stringify(message));
    return message.result as Record<string, unknown>;
  }
}

async function openSessions(url: string): Promise<unknown> {
  const health = await (await fetch(`${url}/healthz`)).json();
  return health.sessions;
}

/**
 * Connects {@linkcode CLIENTS} clients that each stream a long generate,
 * waits until all their upstream streams are open, then disconnects them
 * all without cancelling and waits until every upstream stream is aborted.
 */
async function disconnectingWave(
  daemon: FaultDaemon,
  double: OllamaDouble,
): Promise<void> {
  const sockets: RawSocket[] = [];
  const conns: Deno.Conn[] = [];
  try {
    const startedBefore = double.streamsStarted;
    for (let i = 0; i < HANDSHAKE_CLIENTS; i++) {
      sockets.push(await streamingSocket(daemon.wsUrl, i + 1));
    }
    for (let i = 0; i < DROPPING_CLIENTS; i++) {
      conns.push(
        await rawWebSocketSending(daemon.port, [
          initializeRequest("init"),
          INITIALIZED,
          generateCall(i + 1, { numPredict: LONG }),
        ]),
      );
    }
    await within(STEP_MS, `${CLIENTS} open upstream streams`, double.waitForOpenStreams(CLIENTS));
    assert.equal(double.streamsStarted - startedBefore, CLIENTS, "one upstream stream per call");
    assert.deepEqual(await openSessions(daemon.url), { websocket: CLIENTS, http: 0, stdio: 0 });

    for (const ws of sockets) ws.socket.close();
    for (const conn of conns.splice(0)) conn.close();
    await within(STEP_MS, "every upstream stream to be aborted", double.waitForOpenStreams(0));
    await Promise.all(sockets.splice(0).map((ws) => ws.closed));
    assert.deepEqual(
      await openSessions(daemon.url),
      { websocket: 0, http: 0, stdio: 0 },
      "no session outlives its client",
    );
    assert.equal(double.streamsStarted - startedBefore, CLIENTS, "no call was retried upstream");
  } finally {
    for (const conn of conns) conn.close();
    await Promise.all(sockets.map((ws) => ws.close()));
  }
}

Deno.test("200 clients that disconnect mid-stream abort every upstream request, wave after wave", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: STALL_MS });
  const daemon = await spawnDaemon(double.host, {
    args: ["--max-sessions", String(CLIENTS * 2), "--log-level", "info"],
  });
  try {
    for (let wave = 0; wave < WAVES; wave++) await disconnectingWave(daemon, double);
    assert.equal(double.streamsStarted, CLIENTS * WAVES);

    // The daemon still serves new clients, and a stream that ends normally is not aborted.
    double.tokenDelayMs = 0;
    const after = await streamingSocket(daemon.wsUrl, 9_999, 3);
    const reply = await within(STEP_MS, "the reply after the storm", nextResult(after));
    assert.equal(resultText(reply), "Echo: tell me");
    const structured = reply.structuredContent as Record<string, unknown>;
    assert.equal(structured.response, "Echo: tell me");
    assert.equal(structured.done_reason, "length");
    await after.close();
    assert.equal(double.openStreams, 0);
    assert.equal(daemon.exited, false);
  } finally {
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0, daemon.stderr());
  }
});
