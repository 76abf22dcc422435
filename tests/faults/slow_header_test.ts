/**
 * Slow request headers against the real daemon (issue 7, issue 17): 300
 * connections that trickle their headers a byte a second, and one that
 * sends nothing, hold the daemon only until `--header-timeout`: each is
 * answered 408 and closed; while they trickle, WebSocket and HTTP clients
 * are served, a connection past `--max-header-connections` makes the
 * longest-sending one give way with 503 at once, and the daemon's memory stays bounded (RSS read with `ps`). A
 * keep-alive connection whose second request trickles is closed too.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startOllamaDouble } from "../ollama_double.ts";
import { rssBytes, writeAll } from "../transports/raw_http.ts";
import { generateCall, resultText } from "../mcp_calls.ts";
import { INITIALIZED, initializeRequest, openSocket, spawnDaemon, within } from "./support.ts";

const SLOW = 300;
/** The header deadline given to the daemon, in seconds. */
const HEADER_TIMEOUT_S = 4;
const STEP_MS = 60_000;
const MiB = 1024 * 1024;
/**
 * RSS the slow connections may add to the daemon: the guard keeps a 4 KiB
 * read buffer and a few objects per connection and nothing per received
 * byte, and Deno's HTTP server never sees them.
 */
const RSS_BOUND_BYTES = 32 * MiB;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A raw client that trickles request headers until the daemon closes it. */
interface SlowClient {
  /** Everything the daemon sent, once it closed the connection. */
  closed: Promise<string>;
  /** Sends one more header byte (ignored once closed). */
  tick(): void;
  close(): void;
}

async function slowClient(port: number, start: string): Promise<SlowClient> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let open = true;
  if (start) await writeAll(conn, encoder.encode(start));
  const closed = (async () => {
    let text = "";
    const buffer = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += decoder.decode(buffer.subarray(0, n));
      }
    } catch {
      // A reset ends the connection too.
    }
    open = false;
    return text;
  })();
  return {
    closed,
    tick() {
      if (open) conn.write(encoder.encode("x")).catch(() => (open = false));
    },
    close() {
      open = false;
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  };
}

const statusOf = (text: string) => Number(text.split(" ")[1]);

Deno.test("300 trickling request headers get 408 at the header deadline, one over the cap makes the oldest give way with 503, others are served, memory stays bounded", async () => {
  const double = await startOllamaDouble();
  const daemon = await spawnDaemon(double.host, {
    args: [
      "--header-timeout",
      String(HEADER_TIMEOUT_S),
      "--max-header-connections",
      String(SLOW + 2),
    ],
  });
  const clients: SlowClient[] = [];
  let ticker: ReturnType<typeof setInterval> | undefined;
  const ws = await openSocket(daemon.wsUrl);
  try {
    ws.send(initializeRequest("init"));
    assert.equal((await ws.next()).id, "init");
    ws.send(INITIALIZED);
    const baseline = await rssBytes(daemon.child.pid);

    const head = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${daemon.port}\r\nX-Slow: `;
    const opened = performance.now();
    for (let i = 0; i < SLOW; i++) clients.push(await slowClient(daemon.port, head));
    // One that connects and says nothing at all.
    clients.push(await slowClient(daemon.port, ""));
    ticker = setInterval(() => clients.forEach((c) => c.tick()), 1000);

    // Meanwhile (one slot is left) a WebSocket call and an HTTP request are served.
    ws.send(generateCall("during", { prompt: "still served" }));
    let reply = await within(STEP_MS, "the call's result", ws.next());
    while (reply.id !== "during") reply = await ws.next();
    assert.equal(resultText(reply.result as { content: unknown }), "Echo: still served");
    const health = await fetch(`${daemon.url}/healthz`);
    assert.equal(health.status, 200, "the free slot serves other clients");
    await health.body?.cancel();
    const during = await rssBytes(daemon.child.pid);

    // Two more: one takes the last slot, the next makes the longest-sending one (a second
    // old at least, which the cap lets through before that) give way with 503 at once.
    const age = performance.now() - opened;
    if (age < 1100) await new Promise((resolve) => setTimeout(resolve, 1100 - age));
    clients.push(await slowClient(daemon.port, head), await slowClient(daemon.port, head));
    const refused = await within(STEP_MS, "a refusal", Promise.race(clients.map((c) => c.closed)));
    assert.equal(statusOf(refused), 503);
    assert.match(
      refused,
      new RegExp(`Too many connections still sending request headers \\(limit ${SLOW + 2}\\)`),
    );
    assert.ok(
      performance.now() - opened < HEADER_TIMEOUT_S * 1000,
      "refused before any deadline passed (else the test proves nothing)",
    );

    const answers = await within(
      STEP_MS,
      "every slow client to be closed",
      Promise.all(clients.map((c) => c.closed)),
    );
    const elapsed = (performance.now() - opened) / 1000;
    const statuses = answers.map(statusOf);
    assert.equal(statuses.filter((s) => s === 503).length, 1);
    assert.equal(statuses.filter((s) => s === 408).length, SLOW + 2, "the rest got 408");
    assert.ok(elapsed >= HEADER_TIMEOUT_S, `closed after the deadline, not before (${elapsed} s)`);
    console.log(
      `daemon RSS: baseline ${(baseline / MiB).toFixed(1)} MiB, with ${SLOW} slow headers ${
        (during / MiB).toFixed(1)
      } MiB; all closed ${elapsed.toFixed(1)} s after opening`,
    );
    assert.ok(
      during - baseline < RSS_BOUND_BYTES,
      `${SLOW} slow headers cost ${((during - baseline) / MiB).toFixed(1)} MiB`,
    );

    // A keep-alive connection: the first request is answered, the second trickles and is closed.
    const keepAlive = await slowClient(
      daemon.port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${daemon.port}\r\n\r\nGET /healthz HTTP/1.1\r\n`,
    );
    clients.push(keepAlive);
    const both = await within(STEP_MS, "the keep-alive connection closed", keepAlive.closed);
    assert.equal(statusOf(both), 200, "the first request was served");
    assert.doesNotMatch(both, /HTTP\/1\.1 408/, "no answer is injected after a response");

    // The daemon serves HTTP as before.
    const later = await fetch(`${daemon.url}/healthz`);
    assert.equal(later.status, 200);
    await later.body?.cancel();
  } finally {
    clearInterval(ticker);
    for (const client of clients) client.close();
    await ws.close();
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0);
  }
  assert.doesNotMatch(daemon.stderr(), /request failed|^rune error:|^\s+at /m);
  assert.match(
    daemon.stderr(),
    /closed connections: \d+ whose request headers took longer than 4 s \(--header-timeout\)|closed connections: 1 over the limit/,
  );
});
