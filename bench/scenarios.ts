/**
 * The benchmark's measurements, one function per section of the issue:
 * per-call overhead, throughput and session capacity, streaming relay,
 * cancellation, memory with a client that stops reading, and cold start.
 * Each returns plain numbers; `bench.ts` turns them into the table.
 *
 * @module
 */

import {
  cpuMs,
  machineCpu,
  type PeerCommand,
  rssBytes,
  type RuneDaemon,
  runeStdioArgs,
  sampleRss,
  type Service,
  startRuneDaemon,
} from "./procs.ts";
import {
  connectWebSocket,
  initialize,
  type RpcClient,
  spawnStdio,
  type StdioClient,
  type WsClient,
} from "./rpc.ts";
import { connectStalled } from "./stalled_client.ts";
import { median, sleep, summarize, type Summary, wallNow } from "./stats.ts";

/** The model the Ollama double serves and the benchmark asks for. */
export const MODEL = "llama3.2";
/** The short prompt of the overhead calls (the double answers "Echo: Say hi"). */
export const PROMPT = "Say hi";

/** Tool names of one MCP server. */
export interface ToolNames {
  /** The generate tool. */
  generate: string;
  /** The list-models tool. */
  list: string;
}

/** Rune's tool names. */
export const RUNE_TOOLS: ToolNames = {
  generate: "ai_ollama_generate",
  list: "ai_ollama_list_models",
};

/**
 * Starts the network daemon against `ollamaHost` with extra flags (at log
 * level info, which prints the bound port and nothing per successful call).
 */
export function startRune(ollamaHost: string, extra: string[] = []): Promise<RuneDaemon> {
  return startRuneDaemon(ollamaHost, extra);
}

/** Spawns `rune serve --stdio` (not yet initialized). */
export function spawnRuneStdio(ollamaHost: string): StdioClient {
  return spawnStdio(Deno.execPath(), runeStdioArgs(ollamaHost));
}

/** Spawns the peer MCP server against the double (not yet initialized). */
export function spawnPeer(peer: PeerCommand, ollamaUrl: string): StdioClient {
  return spawnStdio(peer.command, peer.args, {
    OLLAMA_HOST: ollamaUrl,
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "/tmp",
  });
}

/** The WebSocket URL of a daemon. */
export function wsUrl(daemon: RuneDaemon): string {
  return `${daemon.url.replace(/^http/, "ws")}/ws`;
}

/** Opens and initializes a WebSocket session. */
export async function openWs(daemon: RuneDaemon): Promise<WsClient> {
  const client = await connectWebSocket(wsUrl(daemon));
  await initialize(client);
  return client;
}

/** Finds the peer's generate and list tools in its `tools/list`. */
export async function peerTools(client: RpcClient): Promise<ToolNames> {
  const { tools } = await client.request("tools/list") as { tools: { name: string }[] };
  const names = tools.map((t) => t.name);
  const generate = names.find((n) => /generate/.test(n));
  const list = names.find((n) => /(^|_)list($|_)/.test(n));
  if (!generate || !list) throw new Error(`peer tools not recognised: ${names.join(", ")}`);
  return { generate, list };
}

/** One `tools/call` of the generate tool; checks the echo came back. */
export async function callGenerate(client: RpcClient, tools: ToolNames): Promise<void> {
  const result = await client.request("tools/call", {
    name: tools.generate,
    arguments: { model: MODEL, prompt: PROMPT },
  }) as { content?: { text?: string }[]; isError?: boolean };
  const text = result.content?.[0]?.text ?? "";
  if (result.isError || !text.includes("Echo: Say hi")) {
    throw new Error(`unexpected generate result: ${JSON.stringify(result).slice(0, 300)}`);
  }
}

/** One `tools/call` of the list tool. */
export async function callList(client: RpcClient, tools: ToolNames): Promise<void> {
  const result = await client.request("tools/call", { name: tools.list, arguments: {} }) as {
    isError?: boolean;
  };
  if (result.isError) throw new Error(`list failed: ${JSON.stringify(result).slice(0, 300)}`);
}

/** The request Rune sends for a generate call, fetched directly and read to the end. */
export async function directGenerate(ollamaUrl: string, stream: boolean): Promise<void> {
  const response = await fetch(`${ollamaUrl}/api/generate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, prompt: PROMPT, stream }),
  });
  await response.text();
}

/** `GET /api/tags` directly. */
export async function directTags(ollamaUrl: string): Promise<void> {
  await (await fetch(`${ollamaUrl}/api/tags`)).text();
}

/** A named operation timed in the interleaved loop. */
interface Probe {
  name: string;
  run(): Promise<void>;
}

/**
 * Times every probe `iterations` times, interleaved (one of each per
 * round, so drift and background noise hit them alike) after `warmup`
 * untimed rounds, and stops early at `budgetMs`.
 */
async function interleaved(
  probes: Probe[],
  iterations: number,
  warmup: number,
  budgetMs: number,
): Promise<Record<string, Summary>> {
  const samples: Record<string, number[]> = Object.fromEntries(probes.map((p) => [p.name, []]));
  const deadline = performance.now() + budgetMs;
  for (let round = 0; round < warmup + iterations; round++) {
    if (performance.now() > deadline) break;
    for (const probe of probes) {
      const start = performance.now();
      await probe.run();
      if (round >= warmup) samples[probe.name].push(performance.now() - start);
    }
  }
  return Object.fromEntries(probes.map((p) => [p.name, summarize(samples[p.name])]));
}

/** Clients used by the latency sections. */
export interface LatencyClients {
  /** Rune over stdio. */
  stdio: StdioClient;
  /** Rune over WebSocket. */
  ws: WsClient;
  /** Rune over Streamable HTTP. */
  http: RpcClient;
  /** The peer over stdio. */
  peer: StdioClient;
  /** The peer's tool names. */
  peerTools: ToolNames;
}

/** Round-trip latencies of generate and the direct baselines. */
export function measureOverhead(
  clients: LatencyClients,
  ollamaUrl: string,
  iterations: number,
): Promise<Record<string, Summary>> {
  return interleaved(
    [
      { name: "direct-stream", run: () => directGenerate(ollamaUrl, true) },
      { name: "direct-nostream", run: () => directGenerate(ollamaUrl, false) },
      { name: "stdio", run: () => callGenerate(clients.stdio, RUNE_TOOLS) },
      { name: "ws", run: () => callGenerate(clients.ws, RUNE_TOOLS) },
      { name: "http", run: () => callGenerate(clients.http, RUNE_TOOLS) },
      { name: "peer", run: () => callGenerate(clients.peer, clients.peerTools) },
    ],
    iterations,
    200,
    90_000,
  );
}

/** Round-trip latencies of list_models (Rune caches /api/tags; the peer does not). */
export function measureList(
  clients: LatencyClients,
  ollamaUrl: string,
  iterations: number,
): Promise<Record<string, Summary>> {
  return interleaved(
    [
      { name: "direct-tags", run: () => directTags(ollamaUrl) },
      { name: "stdio", run: () => callList(clients.stdio, RUNE_TOOLS) },
      { name: "ws", run: () => callList(clients.ws, RUNE_TOOLS) },
      { name: "peer", run: () => callList(clients.peer, clients.peerTools) },
    ],
    iterations,
    50,
    30_000,
  );
}

/** Result of one throughput run. */
export interface Throughput {
  /** Concurrent sessions. */
  sessions: number;
  /** Completed calls per second. */
  callsPerSecond: number;
  /** Calls completed. */
  calls: number;
  /** Daemon CPU time per call, ms. */
  daemonCpuPerCall: number;
  /** Ollama double CPU time per call, ms. */
  doubleCpuPerCall: number;
  /** CPU time of the benchmark process (the clients) per call, ms. */
  clientCpuPerCall: number;
  /** Share of the whole machine's CPU time that was busy during the run (0..1). */
  machineBusy: number;
  /** Highest daemon RSS seen during the run, bytes. */
  peakRss: number;
  /** Latency of the calls. */
  latency: Summary;
}

/**
 * Runs `sessions` WebSocket sessions, each calling generate back to back
 * (one call in flight per session) for `durationMs`.
 */
export async function measureThroughput(
  daemon: RuneDaemon,
  double: Service,
  sessions: number,
  durationMs: number,
): Promise<Throughput> {
  const clients = await openMany(daemon, sessions, 50);
  try {
    // Warm-up: a few calls per session.
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < 3; i++) await callGenerate(c, RUNE_TOOLS);
    }));
    const latencies: number[] = [];
    const sampler = sampleRss(daemon.pid, 250);
    const cpu0 = await cpuMs(daemon.pid);
    const dcpu0 = await cpuMs(double.pid);
    const ccpu0 = await cpuMs(Deno.pid);
    const machine0 = await machineCpu();
    const start = performance.now();
    const end = start + durationMs;
    await Promise.all(clients.map(async (c) => {
      while (performance.now() < end) {
        const t = performance.now();
        await callGenerate(c, RUNE_TOOLS);
        latencies.push(performance.now() - t);
      }
    }));
    const elapsed = performance.now() - start;
    const peakRss = await sampler.stop();
    const daemonCpu = await cpuMs(daemon.pid) - cpu0;
    const doubleCpu = await cpuMs(double.pid) - dcpu0;
    const clientCpu = await cpuMs(Deno.pid) - ccpu0;
    const machine1 = await machineCpu();
    const calls = latencies.length;
    return {
      sessions,
      calls,
      callsPerSecond: (calls * 1000) / elapsed,
      daemonCpuPerCall: daemonCpu / calls,
      doubleCpuPerCall: doubleCpu / calls,
      clientCpuPerCall: clientCpu / calls,
      machineBusy: (machine1.busy - machine0.busy) / (machine1.total - machine0.total),
      peakRss,
      latency: summarize(latencies),
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Opens `n` initialized WebSocket sessions, `parallel` handshakes at a time. */
async function openMany(daemon: RuneDaemon, n: number, parallel: number): Promise<WsClient[]> {
  const clients: WsClient[] = [];
  try {
    while (clients.length < n) {
      const batch = Math.min(parallel, n - clients.length);
      const opened = await Promise.allSettled(
        Array.from({ length: batch }, () => openWs(daemon)),
      );
      for (const o of opened) if (o.status === "fulfilled") clients.push(o.value);
      const failed = opened.find((o) => o.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    }
  } catch (error) {
    await Promise.all(clients.map((c) => c.close()));
    throw error;
  }
  return clients;
}

/** Result of the idle-session capacity run. */
export interface Capacity {
  /** Sessions requested. */
  target: number;
  /** Sessions open and initialized at once (confirmed by /healthz). */
  held: number;
  /** RSS before opening them, bytes. */
  rssBefore: number;
  /** RSS with all of them open, bytes. */
  rssAfter: number;
  /** Whether one call on each of a sample of sessions still worked. */
  responsive: boolean;
}

/** Opens up to `target` idle WebSocket sessions and measures RSS per session. */
export async function measureCapacity(daemon: RuneDaemon, target: number): Promise<Capacity> {
  // Warm the code paths once so the delta is the sessions, not first-use compilation.
  const warm = await openMany(daemon, 20, 20);
  for (const c of warm) await callList(c, RUNE_TOOLS);
  await Promise.all(warm.map((c) => c.close()));
  await sleep(1_000);
  const rssBefore = await rssBytes(daemon.pid);
  const clients: WsClient[] = [];
  let responsive = false;
  try {
    while (clients.length < target) {
      const batch = Math.min(100, target - clients.length);
      const opened = await Promise.allSettled(
        Array.from({ length: batch }, () => openWs(daemon)),
      );
      const ok = opened.filter((o) => o.status === "fulfilled")
        .map((o) => (o as PromiseFulfilledResult<WsClient>).value);
      clients.push(...ok);
      if (ok.length < batch) break;
    }
    await sleep(1_000);
    const health = await (await fetch(`${daemon.url}/healthz`)).json() as {
      sessions: { websocket: number };
    };
    const rssAfter = await rssBytes(daemon.pid);
    const sample = clients.filter((_, i) => i % Math.max(1, Math.floor(clients.length / 50)) === 0);
    await Promise.all(sample.map((c) => callList(c, RUNE_TOOLS)));
    responsive = true;
    return { target, held: health.sessions.websocket, rssBefore, rssAfter, responsive };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Estimates `emitterClock - localClock` from the round trip with the smallest delay. */
export async function clockOffset(emitter: Service): Promise<{ offset: number; rtt: number }> {
  let best = { offset: 0, rtt: Infinity };
  for (let i = 0; i < 50; i++) {
    const t0 = wallNow();
    const { now } = await (await fetch(`${emitter.url}/bench/now`)).json() as { now: number };
    const t1 = wallNow();
    if (t1 - t0 < best.rtt) best = { offset: now - (t0 + t1) / 2, rtt: t1 - t0 };
  }
  return best;
}

/** Result of one relay run. */
export interface Relay {
  /** Tokens the emitter was asked for. */
  requested: number;
  /** Tokens whose stamp reached the client. */
  received: number;
  /** Progress notifications received. */
  notifications: number;
  /** Tokens per second, from sending the call to its result. */
  tokensPerSecond: number;
  /** Per-token delay from leaving the emitter to reaching the client. */
  delay: Summary;
}

/**
 * Streams `tokens` stamped tokens from the emitter through the daemon to a
 * raw WebSocket client with progress on (`rate` 0: as fast as possible).
 */
export async function measureRelay(
  daemon: RuneDaemon,
  offset: number,
  id: string,
  tokens: number,
  rate: number,
): Promise<Relay> {
  const client = await openWs(daemon);
  try {
    const delays: number[] = [];
    let notifications = 0;
    const start = performance.now();
    await client.request("tools/call", {
      name: RUNE_TOOLS.generate,
      arguments: {
        model: "bench",
        prompt: `id=${id} rate=${rate}`,
        options: { num_predict: tokens },
      },
    }, {
      onProgress(params, receivedAt) {
        notifications++;
        for (const part of String(params.message).split("|")) {
          if (part !== "") delays.push(receivedAt - (Number(part) - offset));
        }
      },
    });
    const elapsed = performance.now() - start;
    return {
      requested: tokens,
      received: delays.length,
      notifications,
      tokensPerSecond: (tokens * 1000) / elapsed,
      delay: summarize(delays),
    };
  } finally {
    await client.close();
  }
}

async function streamRecord(
  emitter: Service,
  id: string,
): Promise<{ tokens: number; bytes: number; cancelledAt?: number } | null> {
  return await (await fetch(`${emitter.url}/bench/stream?id=${id}`)).json();
}

/**
 * Starts `runs` endless paced streams one after another, cancels each once
 * tokens flow, and measures until the emitter sees its stream cancelled.
 */
export async function measureCancel(
  daemon: RuneDaemon,
  emitter: Service,
  offset: number,
  runs: number,
): Promise<{ latency: Summary; missed: number }> {
  const client = await openWs(daemon);
  const latencies: number[] = [];
  let missed = 0;
  try {
    for (let run = 0; run < runs; run++) {
      const id = `cancel${run}-${Date.now()}`;
      const flowing = Promise.withResolvers<void>();
      let requestId = 0;
      client.request("tools/call", {
        name: RUNE_TOOLS.generate,
        arguments: { model: "bench", prompt: `id=${id} rate=1000`, options: { num_predict: 1e7 } },
      }, {
        onSent: (sent) => (requestId = sent),
        onProgress: () => flowing.resolve(),
      }).catch(() => {});
      await flowing.promise;
      await sleep(20);
      const cancelAt = wallNow();
      client.cancel(requestId);
      const seen = await upstreamCancelledAt(emitter, id);
      if (seen === undefined) missed++;
      else latencies.push(seen - offset - cancelAt);
    }
  } finally {
    await client.close();
  }
  return { latency: summarize(latencies), missed };
}

/**
 * When the emitter saw stream `id` cancelled (its clock), or undefined if it
 * has not within 2 s. The emitter only answers when asked, hence the polling.
 */
async function upstreamCancelledAt(emitter: Service, id: string): Promise<number | undefined> {
  const deadline = performance.now() + 2_000;
  while (performance.now() < deadline) {
    await sleep(2);
    const seen = (await streamRecord(emitter, id))?.cancelledAt;
    if (seen !== undefined) return seen;
  }
  return undefined;
}

/**
 * Starts `runs` fast streams (as fast as possible) one after another, drops
 * the WebSocket (no cancel notification) once tokens flow, and measures
 * until the emitter sees its stream cancelled.
 */
export async function measureDisconnect(
  daemon: RuneDaemon,
  emitter: Service,
  offset: number,
  runs: number,
): Promise<{ latency: Summary; missed: number }> {
  const latencies: number[] = [];
  let missed = 0;
  for (let run = 0; run < runs; run++) {
    const client = await openWs(daemon);
    const id = `drop${run}-${Date.now()}`;
    let notifications = 0;
    const flowing = Promise.withResolvers<void>();
    client.request("tools/call", {
      name: RUNE_TOOLS.generate,
      arguments: { model: "bench", prompt: `id=${id} rate=0`, options: { num_predict: 1e8 } },
    }, {
      onProgress: () => {
        if (++notifications === 1000) flowing.resolve();
      },
    }).catch(() => {});
    await flowing.promise;
    const closeAt = wallNow();
    await client.close();
    const seen = await upstreamCancelledAt(emitter, id);
    if (seen === undefined) missed++;
    else latencies.push(seen - offset - closeAt);
  }
  return { latency: summarize(latencies), missed };
}

/** The daemon's memory around waves of clients that vanish mid-stream. */
export interface DisconnectStorm {
  /** Clients per wave. */
  clients: number;
  /** RSS once the first wave has gone (compiled code, heap and pools at working size), bytes. */
  baseline: number;
  /** RSS with the second wave's streams open, bytes. */
  peak: number;
  /** RSS once the second wave has gone, bytes. */
  after: number;
}

async function openSessions(daemon: RuneDaemon): Promise<number> {
  const health = await (await fetch(`${daemon.url}/healthz`)).json();
  return health.sessions.websocket + health.sessions.http;
}

/**
 * Two waves of `clients` WebSocket clients that each start a generate with
 * progress against an upstream that stalls after its first token, then
 * close without cancelling. RSS is read after each wave has gone and its
 * sessions are closed, plus `settleMs` for V8 to give memory back.
 */
export async function measureDisconnectStorm(
  daemon: RuneDaemon,
  clients: number,
  settleMs: number,
): Promise<DisconnectStorm> {
  const wave = async (): Promise<number> => {
    const sockets: WsClient[] = [];
    const streaming: Promise<void>[] = [];
    try {
      for (let i = 0; i < clients; i++) {
        const client = await openWs(daemon);
        sockets.push(client);
        const first = Promise.withResolvers<void>();
        client.request("tools/call", {
          name: RUNE_TOOLS.generate,
          // The double plans every token up front: a modest count, which the stall never reaches.
          arguments: { model: MODEL, prompt: PROMPT, options: { num_predict: 5_000 } },
        }, { onProgress: () => first.resolve() }).then(
          (result) =>
            first.reject(new Error(`a storm call ended early: ${JSON.stringify(result)}`)),
          (error) => first.reject(error),
        );
        streaming.push(first.promise);
      }
      await Promise.all(streaming);
      return await rssBytes(daemon.pid);
    } finally {
      await Promise.all(sockets.map((client) => client.close()));
      while (await openSessions(daemon) > 0) await sleep(100);
      await sleep(settleMs);
    }
  };
  await wave();
  const baseline = await rssBytes(daemon.pid);
  const peak = await wave();
  return { clients, baseline, peak, after: await rssBytes(daemon.pid) };
}

/** Result of the stalled-client run. */
export interface Stalled {
  /** The daemon's --high-water-mark, bytes. */
  highWaterMark: number;
  /** RSS before the stalled stream, bytes. */
  rssBefore: number;
  /** Highest RSS during the stalled stream, bytes. */
  rssPeak: number;
  /** RSS at the end of the observation, bytes. */
  rssEnd: number;
  /** Bytes the emitter had written at half time and at the end. */
  upstreamBytes: [number, number];
  /** Tokens the emitter had written at the end. */
  upstreamTokens: number;
  /** How long the client did not read, ms. */
  observedMs: number;
}

/**
 * Opens a raw WebSocket that requests an endless fast stream with progress
 * on and then never reads; samples the daemon's RSS meanwhile.
 */
export async function measureStalled(
  daemon: RuneDaemon,
  emitter: Service,
  highWaterMark: number,
  observeMs: number,
): Promise<Stalled> {
  // Warm the streaming path with a client that reads, then let the heap settle.
  for (let i = 0; i < 3; i++) await measureRelay(daemon, 0, `warm${i}`, 20_000, 0);
  await sleep(1_500);
  const rssBefore = await rssBytes(daemon.pid);
  const id = `stalled-${Date.now()}`;
  const stalled = await connectStalled(daemon.port);
  try {
    await stalled.send({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "stalled", version: "1" },
      },
    });
    await stalled.send({ jsonrpc: "2.0", method: "notifications/initialized" });
    await stalled.send({
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: {
        name: RUNE_TOOLS.generate,
        arguments: { model: "bench", prompt: `id=${id} rate=0`, options: { num_predict: 5e7 } },
        _meta: { progressToken: "stalled" },
      },
    });
    let rssPeak = rssBefore;
    const start = performance.now();
    let half = 0;
    while (performance.now() - start < observeMs) {
      await sleep(100);
      rssPeak = Math.max(rssPeak, await rssBytes(daemon.pid));
      if (half === 0 && performance.now() - start >= observeMs / 2) {
        half = (await streamRecord(emitter, id))?.bytes ?? 0;
      }
    }
    const end = await streamRecord(emitter, id);
    return {
      highWaterMark,
      rssBefore,
      rssPeak,
      rssEnd: await rssBytes(daemon.pid),
      upstreamBytes: [half, end?.bytes ?? 0],
      upstreamTokens: end?.tokens ?? 0,
      observedMs: performance.now() - start,
    };
  } finally {
    stalled.close();
  }
}

/** Cold start: spawn to the first `initialize` reply, `runs` times. */
export async function measureColdStart(
  spawn: () => StdioClient,
  runs: number,
): Promise<{ median: number; summary: Summary }> {
  const samples: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const start = performance.now();
    const client = spawn();
    try {
      await client.request("initialize", {
        protocolVersion: "2025-06-18",
        capabilities: {},
        clientInfo: { name: "cold", version: "1" },
      });
      // The first run only warms the disk cache.
      if (i > 0) samples.push(performance.now() - start);
    } finally {
      await client.close();
    }
  }
  return { median: median(samples), summary: summarize(samples) };
}

/** Idle RSS of a freshly initialized stdio server after `settleMs`. */
export async function idleRss(client: StdioClient, settleMs: number): Promise<number> {
  await initialize(client);
  await sleep(settleMs);
  return await rssBytes(client.pid);
}

/** RSS of a bare `deno run` process that imports nothing, for scale. */
export async function bareDenoRss(): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "setTimeout(() => {}, 5000)"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await sleep(1_500);
    return await rssBytes(child.pid);
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}
