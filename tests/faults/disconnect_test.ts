/**
 * Clients that vanish in the middle of a streamed call: 200 WebSocket
 * clients start a long generate with progress and disconnect without
 * cancelling, some with a close handshake, some by dropping the TCP
 * connection. Every upstream request must be aborted, no session may
 * outlive its client, and a second wave must not grow the daemon's memory
 * beyond what the first one left (a bound on RSS, not a timing).
 *
 * @module
 */

import { maskedTextFrame, rawWebSocket, writeAll } from "../transports/raw_http.ts";
import { generateCall } from "../mcp_calls.ts";
import assert from "node:assert/strict";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import {
  type FaultDaemon,
  INITIALIZED,
  initializeRequest,
  type Message,
  openSocket,
  type RawSocket,
  rssBytes,
  spawnDaemon,
  within,
} from "./support.ts";

/** Clients using the WebSocket API, which close with a close handshake. */
const HANDSHAKE_CLIENTS = 140;
/** Clients on raw TCP, which drop the connection without a close frame. */
const DROPPING_CLIENTS = 60;
const CLIENTS = HANDSHAKE_CLIENTS + DROPPING_CLIENTS;
/**
 * How far above its baseline the daemon's RSS may stay once the clients are gone. V8 returns
 * memory lazily and GC timing depends on the machine's load, so the bound is generous; a leak
 * of what 200 streaming sessions hold would exceed it.
 */
const RSS_SLACK_BYTES = 64 * 1024 * 1024;
/** Tokens of each generate: at 100 ms a token the streams outlast the test by far. */
const LONG = 5_000;
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
async function streamingSocket(wsUrl: string, n: number): Promise<RawSocket> {
  const ws = await openSocket(wsUrl);
  try {
    ws.send(initializeRequest("init"));
    const reply = await ws.next();
    assert.equal(reply.id, "init");
    ws.send(INITIALIZED);
    ws.send(generateCall(n, { numPredict: LONG }));
    return ws;
  } catch (error) {
    await ws.close();
    throw error;
  }
}

/** Resolves once RSS is within `bound`, or returns the last reading after `ms`. */
async function settledRss(pid: number, bound: number, ms: number): Promise<number> {
  const deadline = performance.now() + ms;
  let rss = await rssBytes(pid);
  // V8 gives freed heap back to the OS when its memory reducer runs, some
  // seconds after the allocation rate drops; there is no event for that, so
  // the reading is polled until it is within the bound or the time is up.
  while (rss > bound && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    rss = await rssBytes(pid);
  }
  return rss;
}

async function openSessions(url: string): Promise<number> {
  const health = await (await fetch(`${url}/healthz`)).json();
  return health.sessions.websocket + health.sessions.http;
}

/**
 * Connects {@linkcode CLIENTS} clients that each stream a long generate,
 * waits until all their upstream streams are open, then disconnects them
 * all without cancelling and waits until every upstream stream is aborted.
 */
async function disconnectingWave(
  daemon: FaultDaemon,
  double: OllamaDouble,
): Promise<{ peak: number }> {
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
    const peak = await rssBytes(daemon.child.pid);

    for (const ws of sockets) ws.socket.close();
    for (const conn of conns.splice(0)) conn.close();
    await within(STEP_MS, "every upstream stream to be aborted", double.waitForOpenStreams(0));
    await Promise.all(sockets.splice(0).map((ws) => ws.closed));
    assert.equal(await openSessions(daemon.url), 0, "no session outlives its client");
    return { peak };
  } finally {
    for (const conn of conns) conn.close();
    await Promise.all(sockets.map((ws) => ws.close()));
  }
}

Deno.test("200 clients that disconnect mid-stream abort every upstream request and free their memory", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 100 });
  const daemon = await spawnDaemon(double.host, {
    args: ["--max-sessions", String(CLIENTS * 2), "--log-level", "info"],
  });
  try {
    // A first wave brings compiled code, heap and allocator pools to their
    // working size; the second must not grow the process beyond that.
    await disconnectingWave(daemon, double);
    const baseline = await rssBytes(daemon.child.pid);
    const { peak } = await disconnectingWave(daemon, double);

    const bound = baseline + RSS_SLACK_BYTES;
    const settled = await settledRss(daemon.child.pid, bound, 60_000);
    const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
    console.log(`daemon RSS: baseline ${mb(baseline)}, peak ${mb(peak)}, after ${mb(settled)}`);
    assert.ok(settled <= bound, `RSS ${mb(settled)} stays above ${mb(bound)}`);

    // The daemon still serves new clients.
    const after = await streamingSocket(daemon.wsUrl, 9_999);
    await within(STEP_MS, "a stream after the storm", double.waitForOpenStreams(1));
    await after.close();
    await within(STEP_MS, "its upstream to be aborted", double.waitForOpenStreams(0));
    assert.equal(daemon.exited, false);
  } finally {
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0, daemon.stderr());
  }
});
