/**
 * Streamable HTTP clients that never read, against the real daemon: a
 * legacy session and a 2026-07-28 request start an endless generate with a
 * progress token on raw TCP connections they never read from. The daemon
 * must stop reading the model (the Ollama double's chunk counter stops
 * while both upstream streams are still open), keep its memory within a
 * stated bound, cut both clients off after `--slow-client-grace`, close
 * their upstream streams, and go on serving others.
 *
 * Before the daemon holds the model back, the kernel buffers what the
 * client does not read (about 4 MB per connection here) and what Rune no
 * longer reads from the model (the receive buffer grows up to 32 MB while
 * Rune reads fast): 15 to 20 MB per stream flow before the double stops,
 * which takes seconds on the 2-core machine. So the suite runs one stream
 * per era; `bench/churn.ts stalled-http` runs 50 of each.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startOllamaDouble } from "../ollama_double.ts";
import { resultText, rpcReply } from "../mcp_calls.ts";
import { rssBytes, writeAll } from "../transports/raw_http.ts";
import { INITIALIZED, initializeRequest, spawnDaemon, within } from "./support.ts";

const LEGACY = 1;
const MODERN = 1;
const STEP_MS = 60_000;
const GRACE_S = 5;
const HIGH_WATER_MARK = 16_384;
const HARD_CAP = 65_536;
/**
 * RSS the stalled streams may add. Rune's queue holds at most the
 * high-water mark plus one coalesced progress message per stream; the rest
 * of the growth is V8's heap grown by the megabytes that flowed before the
 * pause (and kept: V8 returns pages lazily). Measured on the 2-core
 * machine: +45 to +95 MiB for two streams, +150 MiB for ten. Issue 17
 * measured +7 MiB a second without bound.
 */
const RSS_BOUND_BYTES = 160 * 1024 * 1024;
const MiB = 1024 * 1024;
/** A long word: every generated token carries about 2 KB. */
const PROMPT = "w".repeat(2000);
const encoder = new TextEncoder();

const MODERN_META = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientInfo": { name: "stalled", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

function endlessGenerate(id: number, modern: boolean): Record<string, unknown> {
  return {
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: PROMPT, options: { num_predict: 100_000 } },
      _meta: { progressToken: `p-${id}`, ...(modern ? MODERN_META : {}) },
    },
  };
}

/** POSTs `body` on a raw connection that is never read from. */
async function postWithoutReading(
  port: number,
  headers: Record<string, string>,
  body: unknown,
): Promise<Deno.Conn> {
  const text = JSON.stringify(body);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    "POST /mcp HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "Content-Type: application/json",
    "Accept: application/json, text/event-stream",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${encoder.encode(text).length}`,
  ];
  await writeAll(conn, encoder.encode(lines.join("\r\n") + "\r\n\r\n" + text));
  return conn;
}

/** Opens a legacy session over fetch; returns its id. */
async function openSession(url: string): Promise<string> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify(initializeRequest(1)),
  });
  await response.body?.cancel();
  const id = response.headers.get("mcp-session-id")!;
  const initialized = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": id,
      "mcp-protocol-version": "2025-06-18",
    },
    body: JSON.stringify(INITIALIZED),
  });
  await initialized.body?.cancel();
  assert.equal(initialized.status, 202);
  return id;
}

/** Reads `conn` until the daemon closes it (whatever was queued is discarded). */
async function closedByDaemon(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(65536);
  try {
    while ((await conn.read(buffer)) !== null) {
      // Drain what the daemon sent before it gave up on this client.
    }
  } catch {
    // A reset is a close too.
  }
}

/**
 * Resolves to the double's chunk count once it stayed the same for `quietMs`
 * (polled: the double emits no event for chunks it does not send).
 */
async function chunksSettled(read: () => number, quietMs: number): Promise<number> {
  let last = read();
  let since = performance.now();
  while (performance.now() - since < quietMs) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = read();
    if (now !== last) {
      last = now;
      since = performance.now();
    }
  }
  return last;
}

Deno.test("HTTP clients that never read (both eras) hold the model back, stay within a memory bound and are cut off after the grace period", async () => {
  const double = await startOllamaDouble();
  const daemon = await spawnDaemon(double.host, {
    args: [
      "--high-water-mark",
      String(HIGH_WATER_MARK),
      "--hard-cap",
      String(HARD_CAP),
      "--slow-client-grace",
      String(GRACE_S),
      "--max-sessions",
      "200",
    ],
  });
  const conns: Deno.Conn[] = [];
  try {
    // Load the session machinery before the baseline.
    await openSession(daemon.mcpUrl);
    const baseline = await rssBytes(daemon.child.pid);

    for (let i = 0; i < LEGACY; i++) {
      const session = await openSession(daemon.mcpUrl);
      conns.push(
        await postWithoutReading(daemon.port, {
          "mcp-session-id": session,
          "mcp-protocol-version": "2025-06-18",
        }, endlessGenerate(i, false)),
      );
    }
    for (let i = 0; i < MODERN; i++) {
      conns.push(
        await postWithoutReading(daemon.port, {
          "mcp-method": "tools/call",
          "mcp-name": "ai_ollama_generate",
          "mcp-protocol-version": "2026-07-28",
        }, endlessGenerate(1000 + i, true)),
      );
    }
    await within(STEP_MS, "the upstream streams", double.waitForOpenStreams(LEGACY + MODERN));

    // The clients' socket buffers fill, then Rune's queues, then Rune stops reading the model.
    const paused = await within(
      STEP_MS,
      "the model to be held back",
      chunksSettled(() => double.chunksSent, 1000),
    );
    assert.equal(double.openStreams, LEGACY + MODERN, "held back, not cut off yet");
    const held = await rssBytes(daemon.child.pid);
    console.log(
      `daemon RSS: baseline ${(baseline / MiB).toFixed(1)} MiB, with ${
        LEGACY + MODERN
      } stalled streams ${(held / MiB).toFixed(1)} MiB; the double sent ${paused} chunks (${
        (paused / (LEGACY + MODERN)).toFixed(0)
      } per stream)`,
    );
    assert.ok(held - baseline < RSS_BOUND_BYTES, `+${((held - baseline) / MiB).toFixed(1)} MiB`);

    // After the grace period every stalled client is cut off and its upstream stream closed.
    await within(STEP_MS, "every upstream stream to close", double.waitForOpenStreams(0));
    await within(
      STEP_MS,
      "every stalled connection to be closed",
      Promise.all(conns.map(closedByDaemon)),
    );
    assert.equal(
      daemon.stderr().match(/HTTP client did not read \d+ queued bytes in time; closing/g)?.length,
      LEGACY + MODERN,
    );

    // Others are served as before.
    const response = await fetch(daemon.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-method": "tools/call",
        "mcp-name": "ai_ollama_generate",
        "mcp-protocol-version": "2026-07-28",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: {
          name: "ai_ollama_generate",
          arguments: { model: "llama3.2", prompt: "after the storm" },
          _meta: MODERN_META,
        },
      }),
    });
    const reply = rpcReply(response.headers.get("content-type"), await response.text());
    assert.equal(resultText(reply.result), "Echo: after the storm");
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed by the daemon.
      }
    }
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0);
  }
  assert.doesNotMatch(daemon.stderr(), /request failed|^rune error:|^\s+at /m);
});
