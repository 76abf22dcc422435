/**
 * Memory under churn and hostile clients, run by hand (the long versions
 * of the fault tests):
 *
 * - `ws-churn` (issue 7): waves of WebSocket clients that start a long
 *   generate with progress and drop their TCP connection mid-stream; RSS
 *   after each wave and after 15 s idle, and upstream streams left open.
 * - `http-rounds` (issue 17): rounds of Streamable HTTP sessions
 *   (initialize, a call, DELETE); RSS after each round.
 * - `stalled-http`: 50 legacy sessions and 50 2026-07-28 requests that
 *   start an endless generate and never read; RSS while held back, and
 *   whether all are cut off after the grace period.
 * - `slow-clients`: 300 connections that trickle their headers, then 300
 *   that trickle a body; RSS of each.
 *
 * Usage: `deno run --allow-net --allow-run --allow-env --allow-read
 * --allow-write --allow-sys bench/churn.ts [SCENARIO...] [--waves N]
 * [--clients N] [--rounds N] [--sessions N] [--no-release]` (all scenarios
 * by default). Every daemon is the real `rune serve` on port 0 against the
 * Ollama double, started as the launchers start it (`DENO_USR2_MEMORY_TRIM`);
 * after each wave or round RSS is read once the daemon released memory
 * (`--no-release`: `--release-memory-after 0`, the figures without it).
 * Numbers are printed, nothing is written.
 *
 * Figures on the 2-core machine (Deno 2.9.6): ws-churn, 8 waves of 500:
 * 102.3 MiB after wave 1, 108.0 after wave 8, 106.5 after 15 s idle, no
 * upstream open (before the release: 253 after wave 1, 389 after wave 8,
 * 153 after idle). http-rounds, 7 rounds of 1,000: 95.6 MiB after round 1,
 * 96.8 after round 7 (before: 234 and 278).
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type FaultDaemon,
  INITIALIZED,
  initializeRequest,
  type Message,
  spawnDaemon,
  within,
} from "../tests/faults/support.ts";
import { generateCall } from "../tests/mcp_calls.ts";
import { type OllamaDouble, startOllamaDouble } from "../tests/ollama_double.ts";
import { maskedTextFrame, rawWebSocket, rssBytes, writeAll } from "../tests/transports/raw_http.ts";

const MiB = 1024 * 1024;
const STEP_MS = 180_000;
const encoder = new TextEncoder();

const mb = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `task` over `items` with at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]);
  }));
}

/** RSS once it stopped falling for `quietMs` (V8 returns memory lazily; no event says when). */
async function settledRss(pid: number, quietMs = 3000): Promise<number> {
  let low = await rssBytes(pid);
  let since = performance.now();
  while (performance.now() - since < quietMs) {
    await sleep(500);
    const now = await rssBytes(pid);
    if (now < low - MiB) {
      low = now;
      since = performance.now();
    }
  }
  return Math.min(low, await rssBytes(pid));
}

const RELEASE = /releasing memory: \d+ sessions ended \((\d+) in all\)/;

/**
 * Waits for the daemon's memory release after `ended` sessions in all (see
 * `src/transports/memory_release.ts`): RSS is read after it, as an idle
 * daemon would be. Says so when none came (a release without
 * `DENO_USR2_MEMORY_TRIM`, or `--release-memory-after 0`).
 */
async function afterRelease(daemon: FaultDaemon, ended: number): Promise<string> {
  if (releaseArgs.length > 0) return " (release off)";
  try {
    await within(
      30_000,
      "the memory release",
      daemon.waitForLine(RELEASE, (match) => Number(match[1]) >= ended),
    );
    return "";
  } catch {
    return " (no memory release)";
  }
}

/** A raw WebSocket client that initialized, started a long generate and never reads. */
async function streamingRawSocket(port: number, id: number): Promise<Deno.Conn> {
  const conn = await rawWebSocket(port);
  for (
    const message of [
      initializeRequest("init"),
      INITIALIZED,
      generateCall(id, { numPredict: 5_000 }),
    ]
  ) {
    await writeAll(conn, maskedTextFrame(JSON.stringify(message)));
  }
  return conn;
}

/** `--release-memory-after 0` with `--no-release`. */
let releaseArgs: string[] = [];

async function wsChurn(double: OllamaDouble, waves: number, clients: number): Promise<void> {
  double.tokenDelayMs = 100;
  const daemon = await spawnDaemon(double.host, {
    args: ["--max-sessions", String(clients * 2), ...releaseArgs],
  });
  try {
    const baseline = await rssBytes(daemon.child.pid);
    console.log(`ws-churn: ${waves} waves of ${clients} clients dropping mid-generation`);
    console.log(`  baseline ${mb(baseline)}`);
    const after: number[] = [];
    for (let wave = 1; wave <= waves; wave++) {
      const conns: Deno.Conn[] = [];
      await pool(Array.from({ length: clients }, (_, i) => i), 50, async (i) => {
        conns.push(await streamingRawSocket(daemon.port, i + 1));
      });
      await within(STEP_MS, "every upstream stream", double.waitForOpenStreams(clients));
      const peak = await rssBytes(daemon.child.pid);
      for (const conn of conns) conn.close();
      await within(STEP_MS, "every upstream abort", double.waitForOpenStreams(0));
      const note = await afterRelease(daemon, wave * clients);
      const settled = await settledRss(daemon.child.pid);
      after.push(settled);
      console.log(
        `  wave ${wave}: peak ${mb(peak)}, after ${
          mb(settled)
        }${note}, open upstream ${double.openStreams}`,
      );
    }
    await sleep(15_000);
    const idle = await rssBytes(daemon.child.pid);
    console.log(
      `  after 15 s idle: ${mb(idle)} (${idle - after[0] >= 0 ? "+" : ""}${
        mb(idle - after[0])
      } from wave 1; target: within 30 MiB), open upstream ${double.openStreams} (target 0)`,
    );
  } finally {
    await daemon.stop();
  }
}

async function postJson(url: string, headers: Record<string, string>, body: unknown) {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers,
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { response, text };
}

async function httpSession(url: string): Promise<void> {
  const { response } = await postJson(url, {}, initializeRequest(1));
  const id = response.headers.get("mcp-session-id");
  if (response.status !== 200 || !id) throw new Error(`initialize: ${response.status}`);
  const session = { "mcp-session-id": id, "mcp-protocol-version": "2025-06-18" };
  await postJson(url, session, INITIALIZED);
  const call = await postJson(url, session, generateCall(2, { numPredict: 5 }));
  if (!call.text.includes('"result"')) throw new Error(`call: ${call.text.slice(0, 200)}`);
  const closed = await fetch(url, { method: "DELETE", headers: session });
  await closed.body?.cancel();
}

async function httpRounds(double: OllamaDouble, rounds: number, sessions: number): Promise<void> {
  double.tokenDelayMs = 0;
  const daemon = await spawnDaemon(double.host, {
    args: ["--max-sessions", "2048", ...releaseArgs],
  });
  try {
    console.log(`http-rounds: ${rounds} rounds of ${sessions} sessions (initialize, call, DELETE)`);
    console.log(`  baseline ${mb(await rssBytes(daemon.child.pid))}`);
    const after: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const started = performance.now();
      await pool(Array.from({ length: sessions }), 100, () => httpSession(daemon.mcpUrl));
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const health = await (await fetch(`${daemon.url}/healthz`)).json();
      const note = await afterRelease(daemon, round * sessions);
      const settled = await settledRss(daemon.child.pid);
      after.push(settled);
      console.log(
        `  round ${round}: ${seconds} s, after ${
          mb(settled)
        }${note}, open sessions ${health.sessions.http}, open upstream ${double.openStreams}`,
      );
    }
    console.log(`  last round vs first: ${mb(after.at(-1)! - after[0])}`);
  } finally {
    await daemon.stop();
  }
}

async function rawPost(port: number, headers: Record<string, string>, body: unknown) {
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

const MODERN_META = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientInfo": { name: "bench", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

async function stalledHttp(double: OllamaDouble, perEra: number): Promise<void> {
  double.tokenDelayMs = 0;
  const daemon = await spawnDaemon(double.host, {
    args: ["--high-water-mark", "16384", "--hard-cap", "65536", "--slow-client-grace", "10"],
  });
  const conns: Deno.Conn[] = [];
  try {
    const warm = await postJson(daemon.mcpUrl, {}, initializeRequest(1));
    void warm;
    const baseline = await rssBytes(daemon.child.pid);
    console.log(`stalled-http: ${perEra} legacy + ${perEra} 2026-07-28 clients that never read`);
    const started = performance.now();
    for (let i = 0; i < perEra; i++) {
      const opened = await postJson(daemon.mcpUrl, {}, initializeRequest(1));
      const session = {
        "mcp-session-id": opened.response.headers.get("mcp-session-id")!,
        "mcp-protocol-version": "2025-06-18",
      };
      await postJson(daemon.mcpUrl, session, INITIALIZED);
      conns.push(await rawPost(daemon.port, session, endless(i, false)));
      conns.push(
        await rawPost(daemon.port, {
          "mcp-method": "tools/call",
          "mcp-name": "ai_ollama_generate",
          "mcp-protocol-version": "2026-07-28",
        }, endless(1000 + i, true)),
      );
    }
    let last = -1;
    let since = performance.now();
    let peak = 0;
    while (performance.now() - since < 2000) {
      await sleep(250);
      peak = Math.max(peak, await rssBytes(daemon.child.pid));
      if (double.chunksSent !== last) {
        last = double.chunksSent;
        since = performance.now();
      }
    }
    console.log(
      `  held back after ${((since - started) / 1000).toFixed(1)} s: ${last} chunks sent, ${
        (last / (2 * perEra)).toFixed(0)
      } per stream, ${double.openStreams} upstream open; RSS baseline ${mb(baseline)}, peak ${
        mb(peak)
      }`,
    );
    await within(STEP_MS, "every cut-off", double.waitForOpenStreams(0));
    console.log(
      `  every client cut off, every upstream closed; RSS ${mb(await rssBytes(daemon.child.pid))}`,
    );
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed by the daemon.
      }
    }
    await daemon.stop();
  }
}

function endless(id: number, modern: boolean): Message {
  return {
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "w".repeat(2000), options: { num_predict: 100_000 } },
      _meta: { progressToken: `p-${id}`, ...(modern ? MODERN_META : {}) },
    },
  };
}

async function slowClients(double: OllamaDouble): Promise<void> {
  for (const kind of ["headers", "bodies"] as const) {
    const daemon: FaultDaemon = await spawnDaemon(double.host, {
      args: ["--max-receiving", "400", "--body-timeout", "60"],
    });
    const conns: Deno.Conn[] = [];
    try {
      const warm = await postJson(daemon.mcpUrl, {}, initializeRequest(1));
      void warm;
      await sleep(1000);
      const baseline = await rssBytes(daemon.child.pid);
      for (let i = 0; i < 300; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: daemon.port });
        const head = [`POST /mcp HTTP/1.1`, `Host: 127.0.0.1:${daemon.port}`];
        if (kind === "bodies") {
          head.push("Content-Type: application/json", "Content-Length: 1000000");
        }
        await writeAll(
          conn,
          encoder.encode(head.join("\r\n") + (kind === "bodies" ? "\r\n\r\n" : "\r\n")),
        );
        conns.push(conn);
      }
      const ticker = setInterval(() => {
        for (const conn of conns) conn.write(encoder.encode("x")).catch(() => {});
      }, 1000);
      await sleep(4000);
      const held = await rssBytes(daemon.child.pid);
      clearInterval(ticker);
      console.log(
        `slow-clients: 300 trickling ${kind}: RSS ${mb(baseline)} -> ${mb(held)} (+${
          mb(held - baseline)
        })`,
      );
    } finally {
      for (const conn of conns) conn.close();
      await daemon.stop();
    }
  }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      waves: { type: "string", default: "8" },
      clients: { type: "string", default: "500" },
      rounds: { type: "string", default: "7" },
      sessions: { type: "string", default: "1000" },
      "per-era": { type: "string", default: "50" },
      "no-release": { type: "boolean", default: false },
    },
  });
  if (values["no-release"]) releaseArgs = ["--release-memory-after", "0"];
  const scenarios = positionals.length > 0
    ? positionals
    : ["ws-churn", "http-rounds", "stalled-http", "slow-clients"];
  const double = await startOllamaDouble();
  try {
    for (const scenario of scenarios) {
      if (scenario === "ws-churn") {
        await wsChurn(double, Number(values.waves), Number(values.clients));
      } else if (scenario === "http-rounds") {
        await httpRounds(double, Number(values.rounds), Number(values.sessions));
      } else if (scenario === "stalled-http") await stalledHttp(double, Number(values["per-era"]));
      else if (scenario === "slow-clients") await slowClients(double);
      else throw new Error(`unknown scenario ${scenario}`);
    }
  } finally {
    await double.close();
  }
}
