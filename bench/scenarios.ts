/**
 * The benchmark's measurements, one function per section: per-call
 * overhead (both protocol eras, the no-op floor, the cloud providers),
 * daemon CPU per sequential call against one streamed fetch, throughput and
 * session capacity, streaming relay and cancellation (Ollama NDJSON,
 * Anthropic and OpenAI SSE), memory with a client that stops reading, and
 * cold start. Each returns plain numbers; `bench.ts` turns them into the
 * table.
 *
 * @module
 */

import {
  cleanEnv,
  cpuMs,
  type FloorProcess,
  type Limit,
  machineCpu,
  openFilesLimit,
  type PeerCommand,
  ROOT,
  rssBytes,
  type RuneDaemon,
  runeEnv,
  type RuneOptions,
  runeStdioArgs,
  sampleRss,
  type Service,
  startRuneDaemon,
} from "./procs.ts";
import {
  type CancellingClient,
  connectHttp,
  connectWebSocket,
  type Era,
  ERA_VERSION,
  type HttpClient,
  open,
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
 * The no-op server's one tool (`NOOP_TOOL` of `bench/noop_server.ts`, not
 * imported: that module loads the SDK, which the clients' process must not).
 */
export const NOOP_TOOLS: ToolNames = { generate: "noop", list: "noop" };

/**
 * Starts the network daemon against `ollamaHost` (at log level info, which
 * prints the bound port and nothing per successful call).
 */
export function startRune(ollamaHost: string, options: RuneOptions = {}): Promise<RuneDaemon> {
  return startRuneDaemon(ollamaHost, options);
}

/** Options of {@linkcode spawnRuneStdio}. */
export interface StdioRuneOptions extends Pick<RuneOptions, "denoFlags" | "env"> {
  /**
   * The era the client speaks.
   * @default "legacy"
   */
  era?: Era;
}

/** Spawns `rune serve --stdio` (not yet opened). */
export function spawnRuneStdio(ollamaHost: string, options: StdioRuneOptions = {}): StdioClient {
  return spawnStdio(Deno.execPath(), runeStdioArgs(ollamaHost, options), {
    env: runeEnv(options.env),
    era: options.era ?? "legacy",
  });
}

/**
 * Spawns the no-op MCP server (`bench/noop_server.ts`, not yet opened) on
 * the SDK's stdio transport (the floor) or a minimal Deno one.
 */
export function spawnNoop(era: Era, transport: "sdk" | "deno" = "sdk"): StdioClient {
  return spawnStdio(Deno.execPath(), [
    "run",
    "--config",
    `${ROOT}deno.json`,
    "--allow-env",
    `${ROOT}bench/noop_server.ts`,
    "--transport",
    transport,
  ], { env: cleanEnv(), era });
}

/** Spawns the peer MCP server against the double (not yet initialized). */
export function spawnPeer(peer: PeerCommand, ollamaUrl: string): StdioClient {
  return spawnStdio(peer.command, peer.args, {
    env: cleanEnv({ OLLAMA_HOST: ollamaUrl, HOME: Deno.env.get("HOME") ?? "/tmp" }),
  });
}

/** The WebSocket URL of a daemon. */
export function wsUrl(daemon: RuneDaemon): string {
  return `${daemon.url.replace(/^http/, "ws")}/ws`;
}

/** Opens a WebSocket session in `era` (initialize, or server/discover). */
export async function openWs(daemon: RuneDaemon, era: Era = "legacy"): Promise<WsClient> {
  const client = await connectWebSocket(wsUrl(daemon), { era });
  try {
    await open(client);
  } catch (error) {
    await client.close();
    throw error;
  }
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

/** Rune's clients on every transport in one era. */
export interface EraClients {
  /** Rune over stdio (its own process). */
  stdio: StdioClient;
  /** Rune over WebSocket. */
  ws: WsClient;
  /** Rune over Streamable HTTP. */
  http: HttpClient;
  /** The no-op SDK v2 server over stdio (the floor). */
  noop: StdioClient;
}

/** The transports of {@linkcode EraClients} that carry Rune's calls. */
export type RuneTransport = "stdio" | "ws" | "http";

/** Clients used by the latency sections. */
export interface LatencyClients {
  /** Rune (and the no-op server) in each era. */
  eras: Record<Era, EraClients>;
  /** The no-op server on a minimal Deno stdio transport (2025 era). */
  noopDeno: StdioClient;
  /** The peer over stdio. */
  peer: StdioClient;
  /** The peer's tool names. */
  peerTools: ToolNames;
}

/**
 * The name of a client in the overhead results: the transport for the
 * legacy era (`stdio`, as in earlier results), with ` 2026` for the modern.
 */
export function probeName(transport: keyof EraClients, era: Era): string {
  return era === "legacy" ? transport : `${transport} 2026`;
}

/**
 * Round-trip latencies of generate through Rune on every transport in both
 * eras, the no-op floor in both eras, the peer, and the direct baselines.
 */
export function measureOverhead(
  clients: LatencyClients,
  ollamaUrl: string,
  iterations: number,
): Promise<Record<string, Summary>> {
  const probes: Probe[] = [
    { name: "direct-stream", run: () => directGenerate(ollamaUrl, true) },
    { name: "direct-nostream", run: () => directGenerate(ollamaUrl, false) },
  ];
  for (const era of ["legacy", "modern"] as const) {
    const set = clients.eras[era];
    for (const transport of ["stdio", "ws", "http"] as const) {
      probes.push({
        name: probeName(transport, era),
        run: () => callGenerate(set[transport], RUNE_TOOLS),
      });
    }
    probes.push({ name: probeName("noop", era), run: () => callGenerate(set.noop, NOOP_TOOLS) });
  }
  probes.push(
    { name: "noop deno-stdio", run: () => callGenerate(clients.noopDeno, NOOP_TOOLS) },
    { name: "peer", run: () => callGenerate(clients.peer, clients.peerTools) },
  );
  return interleaved(probes, iterations, 200, 150_000);
}

/** A cloud double the provider section talks to, and how to reach it directly. */
export interface CloudDouble {
  /** The double's process (its URL includes `/v1` for OpenAI). */
  service: Service;
  /** The key it accepts. */
  apiKey: string;
}

/** The cloud doubles and the Rune stdio daemon configured with them. */
export interface ProviderClients {
  /** Rune over stdio with `ANTHROPIC_*` and `OPENAI_*` pointing at the doubles. */
  stdio: StdioClient;
  /** The Anthropic double. */
  anthropic: CloudDouble;
  /** The OpenAI double. */
  openai: CloudDouble;
}

/** The cloud providers the benchmark covers. */
export type Cloud = "anthropic" | "openai";

/** The model each cloud double serves and the benchmark asks for. */
export const CLOUD_MODELS: Readonly<Record<Cloud, string>> = {
  anthropic: "claude-sonnet-4-6",
  openai: "gpt-4o-mini",
};

/** The `anthropic-version` Rune sends. */
const ANTHROPIC_VERSION = "2023-06-01";
/** The `max_tokens` Rune sends to Anthropic when a call gives none. */
const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/** The streamed request Rune sends for a generate call, sent directly and read to the end. */
export async function directCloud(provider: Cloud, double: CloudDouble): Promise<void> {
  const request: { url: string; headers: Record<string, string>; body: unknown } =
    provider === "anthropic"
      ? {
        url: `${double.service.url}/v1/messages`,
        headers: { "x-api-key": double.apiKey, "anthropic-version": ANTHROPIC_VERSION },
        body: {
          model: CLOUD_MODELS.anthropic,
          max_tokens: ANTHROPIC_DEFAULT_MAX_TOKENS,
          messages: [{ role: "user", content: PROMPT }],
          stream: true,
        },
      }
      : {
        url: `${double.service.url}/chat/completions`,
        headers: { authorization: `Bearer ${double.apiKey}` },
        body: {
          model: CLOUD_MODELS.openai,
          messages: [{ role: "user", content: PROMPT }],
          stream: true,
          stream_options: { include_usage: true },
        },
      };
  const response = await fetch(request.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "text/event-stream",
      ...request.headers,
    },
    body: JSON.stringify(request.body),
  });
  const text = await response.text();
  if (!response.ok || !text.includes("Echo")) {
    throw new Error(`direct ${provider} request failed: ${response.status} ${text.slice(0, 300)}`);
  }
}

/** One `tools/call` of a cloud provider's generate tool; checks the echo came back. */
export async function callCloud(client: RpcClient, provider: Cloud): Promise<void> {
  const result = await client.request("tools/call", {
    name: `ai_${provider}_generate`,
    arguments: { model: CLOUD_MODELS[provider], prompt: PROMPT },
  }) as { content?: { text?: string }[]; isError?: boolean };
  const text = result.content?.[0]?.text ?? "";
  if (result.isError || !text.includes("Echo: Say hi")) {
    throw new Error(`unexpected ${provider} result: ${JSON.stringify(result).slice(0, 300)}`);
  }
}

/**
 * Round trips of `ai_anthropic_generate` and `ai_openai_generate` over
 * stdio, interleaved with the same streamed request sent directly to each
 * double (`<provider> direct`, `<provider> stdio`).
 */
export function measureProviderOverhead(
  clients: ProviderClients,
  iterations: number,
): Promise<Record<string, Summary>> {
  const probes: Probe[] = [];
  for (const provider of ["anthropic", "openai"] as const) {
    probes.push(
      { name: `${provider} direct`, run: () => directCloud(provider, clients[provider]) },
      { name: `${provider} stdio`, run: () => callCloud(clients.stdio, provider) },
    );
  }
  return interleaved(probes, iterations, 100, 90_000);
}

/** Something whose CPU time is read around a batch of sequential calls. */
export interface CpuTarget {
  /** Its name in the results. */
  name: string;
  /** The process charged. */
  pid: number;
  /** Makes `count` calls one after another. */
  run(count: number): Promise<void>;
}

/** CPU per call of one target: the median of its runs, and every run. */
export interface CpuPerCall {
  /** Median over the runs, ms per call. */
  perCall: number;
  /** Each run's ms per call, in the order run. */
  runs: number[];
}

/** A target that calls Rune's generate over `client`, charged to the daemon `pid`. */
export function runeCpuTarget(
  name: string,
  { client, pid }: { client: RpcClient; pid: number },
): CpuTarget {
  return {
    name,
    pid,
    async run(count) {
      for (let i = 0; i < count; i++) await callGenerate(client, RUNE_TOOLS);
    },
  };
}

/** The fetch-floor process as a target. */
export function floorCpuTarget(name: string, floor: FloorProcess): CpuTarget {
  return { name, pid: floor.pid, run: (count) => floor.run(count) };
}

/**
 * CPU time each target's process spends per call, from /proc/PID/stat
 * around batches of `calls` sequential calls: the targets take turns, one
 * batch each per round, for `rounds` rounds (after one short warm-up batch
 * each), and the median round is reported. /proc counts in 10 ms ticks, so
 * a batch should take at least a few hundred ms of CPU.
 */
export async function measureSequentialCpu(
  targets: CpuTarget[],
  { calls, rounds }: { calls: number; rounds: number },
): Promise<Record<string, CpuPerCall>> {
  for (const target of targets) await target.run(Math.min(calls, 100));
  const runs: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) {
      const before = await cpuMs(target.pid);
      await target.run(calls);
      runs[target.name].push((await cpuMs(target.pid) - before) / calls);
    }
  }
  return Object.fromEntries(
    targets.map((t) => [t.name, { perCall: median(runs[t.name]), runs: runs[t.name] }]),
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
      { name: "stdio", run: () => callList(clients.eras.legacy.stdio, RUNE_TOOLS) },
      { name: "ws", run: () => callList(clients.eras.legacy.ws, RUNE_TOOLS) },
      { name: "peer", run: () => callList(clients.peer, clients.peerTools) },
    ],
    iterations,
    50,
    30_000,
  );
}

/** Result of one throughput run. */
export interface Throughput {
  /** The protocol era of the sessions. */
  era: Era;
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

/** What one throughput run does. */
export interface ThroughputPlan {
  /** Concurrent WebSocket sessions. */
  sessions: number;
  /** How long the calls run, ms. */
  durationMs: number;
  /**
   * The sessions' protocol era.
   * @default "legacy"
   */
  era?: Era;
}

/**
 * Runs `sessions` WebSocket sessions, each calling generate back to back
 * (one call in flight per session) for `durationMs`.
 */
export async function measureThroughput(
  daemon: RuneDaemon,
  double: Service,
  { sessions, durationMs, era = "legacy" }: ThroughputPlan,
): Promise<Throughput> {
  const clients = await openMany(daemon, sessions, { parallel: 50, era });
  try {
    const load = await driveLoad(clients, { daemonPid: daemon.pid, double, durationMs });
    return { era, sessions, ...load };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** What {@linkcode driveLoad} measures. */
export type Load = Omit<Throughput, "era" | "sessions">;

/**
 * Keeps one generate call in flight per entry of `loops` (an entry may
 * repeat a client: several calls in flight on one connection) for
 * `durationMs`, after three warm-up calls per entry, and reads the CPU time
 * of the daemon, the double and this process around it.
 */
export async function driveLoad(
  loops: RpcClient[],
  { daemonPid, double, durationMs }: { daemonPid: number; double: Service; durationMs: number },
): Promise<Load> {
  await Promise.all(loops.map(async (c) => {
    for (let i = 0; i < 3; i++) await callGenerate(c, RUNE_TOOLS);
  }));
  const latencies: number[] = [];
  const sampler = sampleRss(daemonPid, 250);
  const cpu0 = await cpuMs(daemonPid);
  const dcpu0 = await cpuMs(double.pid);
  const ccpu0 = await cpuMs(Deno.pid);
  const machine0 = await machineCpu();
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(loops.map(async (c) => {
    while (performance.now() < end) {
      const t = performance.now();
      await callGenerate(c, RUNE_TOOLS);
      latencies.push(performance.now() - t);
    }
  }));
  const elapsed = performance.now() - start;
  const peakRss = await sampler.stop();
  const daemonCpu = await cpuMs(daemonPid) - cpu0;
  const doubleCpu = await cpuMs(double.pid) - dcpu0;
  const clientCpu = await cpuMs(Deno.pid) - ccpu0;
  const machine1 = await machineCpu();
  const calls = latencies.length;
  return {
    calls,
    callsPerSecond: (calls * 1000) / elapsed,
    daemonCpuPerCall: daemonCpu / calls,
    doubleCpuPerCall: doubleCpu / calls,
    clientCpuPerCall: clientCpu / calls,
    machineBusy: (machine1.busy - machine0.busy) / (machine1.total - machine0.total),
    peakRss,
    latency: summarize(latencies),
  };
}

/** Opens `n` WebSocket sessions in `era`, `parallel` handshakes at a time. */
async function openMany(
  daemon: RuneDaemon,
  n: number,
  { parallel, era }: { parallel: number; era: Era },
): Promise<WsClient[]> {
  const clients: WsClient[] = [];
  try {
    while (clients.length < n) {
      const batch = Math.min(parallel, n - clients.length);
      const opened = await Promise.allSettled(
        Array.from({ length: batch }, () => openWs(daemon, era)),
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
  /** RSS of the fresh daemon, before any session, bytes. */
  rssFresh: number;
  /** RSS after a warm-up of 20 sessions (opened, used, closed), before opening them, bytes. */
  rssBefore: number;
  /** RSS with all of them open, bytes. */
  rssAfter: number;
  /** Whether one call on each of a sample of sessions still worked. */
  responsive: boolean;
  /** Why fewer sessions than asked were tried, if so. */
  capped?: string;
  /** The open-files limits of the daemon and of the benchmark (the clients). */
  fdLimits: { daemon?: Limit; bench?: Limit };
  /** Seconds it took to open them. */
  openSeconds: number;
}

/** File descriptors a process needs beyond one per session (its own files, pipes, upstream). */
const FD_MARGIN = 200;

/**
 * Opens up to `target` idle initialized WebSocket sessions and measures
 * RSS per session. Each session costs the daemon and the benchmark one
 * file descriptor each: when either's open-files limit is too low (Deno
 * raises its soft limit to the hard one at start), fewer are tried and
 * the result says why.
 */
export async function measureCapacity(daemon: RuneDaemon, target: number): Promise<Capacity> {
  const fdLimits = {
    daemon: await openFilesLimit(daemon.pid),
    bench: await openFilesLimit(Deno.pid),
  };
  const room = Math.min(fdLimits.daemon?.soft ?? Infinity, fdLimits.bench?.soft ?? Infinity) -
    FD_MARGIN;
  const capped = room < target
    ? `open-files limit ${
      Math.min(fdLimits.daemon?.soft ?? Infinity, fdLimits.bench?.soft ?? Infinity)
    }`
    : undefined;
  const tried = Math.min(target, room);
  const rssFresh = await rssBytes(daemon.pid);
  // Warm the code paths once so the delta is the sessions, not first-use compilation.
  const warm = await openMany(daemon, 20, { parallel: 20, era: "legacy" });
  for (const c of warm) await callList(c, RUNE_TOOLS);
  await Promise.all(warm.map((c) => c.close()));
  await sleep(1_000);
  const rssBefore = await rssBytes(daemon.pid);
  const clients: WsClient[] = [];
  let responsive = false;
  const start = performance.now();
  try {
    while (clients.length < tried) {
      const batch = Math.min(100, tried - clients.length);
      const opened = await Promise.allSettled(
        Array.from({ length: batch }, () => openWs(daemon)),
      );
      const ok = opened.filter((o) => o.status === "fulfilled")
        .map((o) => (o as PromiseFulfilledResult<WsClient>).value);
      clients.push(...ok);
      if (ok.length < batch) break;
    }
    const openSeconds = (performance.now() - start) / 1000;
    await sleep(1_000);
    const health = await (await fetch(`${daemon.url}/healthz`)).json() as {
      sessions: { websocket: number };
    };
    const rssAfter = await rssBytes(daemon.pid);
    const sample = clients.filter((_, i) => i % Math.max(1, Math.floor(clients.length / 50)) === 0);
    await Promise.all(sample.map((c) => callList(c, RUNE_TOOLS)));
    responsive = true;
    return {
      target,
      held: health.sessions.websocket,
      rssFresh,
      rssBefore,
      rssAfter,
      responsive,
      ...(capped && { capped }),
      fdLimits,
      openSeconds,
    };
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

/** Where a stamped stream goes: the tool, and how a call asks for a number of tokens. */
export interface StreamRoute {
  /** The provider id (`ollama`, `anthropic`, `openai`). */
  provider: string;
  /** The generate tool. */
  tool: string;
  /** The `options` of a call that asks for `tokens` tokens. */
  limit(tokens: number): Record<string, number>;
}

/** The emitter's three wire formats, each behind its provider's generate tool. */
export const STREAM_ROUTES: Readonly<Record<"ollama" | Cloud, StreamRoute>> = {
  ollama: {
    provider: "ollama",
    tool: "ai_ollama_generate",
    limit: (tokens) => ({ num_predict: tokens }),
  },
  anthropic: {
    provider: "anthropic",
    tool: "ai_anthropic_generate",
    limit: (tokens) => ({ max_tokens: tokens }),
  },
  openai: {
    provider: "openai",
    tool: "ai_openai_generate",
    limit: (tokens) => ({ max_tokens: tokens }),
  },
};

/**
 * The environment that points Rune's cloud providers at the given base URLs
 * and keys: the emitter (which serves both APIs) or the two doubles.
 */
export function cloudEnv(
  anthropic: { url: string; key: string },
  openai: { url: string; key: string },
): Record<string, string> {
  return {
    ANTHROPIC_BASE_URL: anthropic.url,
    ANTHROPIC_API_KEY: anthropic.key,
    OPENAI_BASE_URL: openai.url,
    OPENAI_API_KEY: openai.key,
  };
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

/** What one relay run streams. */
export interface RelayPlan {
  /** Emitter clock minus ours, ms. */
  offset: number;
  /** The stream's id at the emitter. */
  id: string;
  /** Tokens to stream. */
  tokens: number;
  /** Tokens per second, 0 for as fast as possible. */
  rate: number;
  /**
   * The provider tool it goes through.
   * @default STREAM_ROUTES.ollama
   */
  route?: StreamRoute;
}

/**
 * Streams `tokens` stamped tokens from the emitter through the daemon to a
 * raw WebSocket client with progress on (`rate` 0: as fast as possible).
 */
export async function measureRelay(daemon: RuneDaemon, plan: RelayPlan): Promise<Relay> {
  const { offset, id, tokens, rate } = plan;
  const route = plan.route ?? STREAM_ROUTES.ollama;
  const client = await openWs(daemon);
  try {
    const delays: number[] = [];
    let notifications = 0;
    const start = performance.now();
    await client.request("tools/call", {
      name: route.tool,
      arguments: {
        model: "bench",
        prompt: `id=${id} rate=${rate}`,
        options: route.limit(tokens),
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
 * How a client cancels: `ws` and `ws 2026` send `notifications/cancelled`
 * on a WebSocket session (2025) or connection (2026-07-28); `http 2026`
 * closes the stateless request's response stream.
 */
export type CancelPath = "ws" | "ws 2026" | "http 2026";

async function connectFor(daemon: RuneDaemon, via: CancelPath): Promise<CancellingClient> {
  if (via === "ws") return await openWs(daemon);
  if (via === "ws 2026") return await openWs(daemon, "modern");
  return await connectHttp(`${daemon.url}/mcp`, { era: "modern" });
}

/**
 * Starts `runs` endless paced streams one after another, cancels each once
 * tokens flow (by `via`), and measures until the emitter sees its stream
 * cancelled.
 */
export async function measureCancel(
  daemon: RuneDaemon,
  emitter: Service,
  { offset, runs, route = STREAM_ROUTES.ollama, via = "ws" }: {
    offset: number;
    runs: number;
    route?: StreamRoute;
    via?: CancelPath;
  },
): Promise<{ latency: Summary; missed: number }> {
  const client = await connectFor(daemon, via);
  const latencies: number[] = [];
  let missed = 0;
  try {
    for (let run = 0; run < runs; run++) {
      const id = `cancel-${route.provider}-${via.replace(" ", "-")}${run}-${Date.now()}`;
      const flowing = Promise.withResolvers<void>();
      let requestId = 0;
      client.request("tools/call", {
        name: route.tool,
        arguments: { model: "bench", prompt: `id=${id} rate=1000`, options: route.limit(1e7) },
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
  for (let i = 0; i < 3; i++) {
    await measureRelay(daemon, { offset: 0, id: `warm${i}`, tokens: 20_000, rate: 0 });
  }
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
        protocolVersion: ERA_VERSION.legacy,
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

/**
 * Cold start: spawn to the reply to the opening request (`initialize` in
 * the legacy era, `server/discover` in the modern one), `runs` times.
 */
export async function measureColdStart(
  spawn: () => StdioClient,
  runs: number,
): Promise<{ median: number; summary: Summary }> {
  const samples: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    const start = performance.now();
    const client = spawn();
    try {
      if (client.era === "legacy") {
        await client.request("initialize", {
          protocolVersion: ERA_VERSION.legacy,
          capabilities: {},
          clientInfo: { name: "cold", version: "1" },
        });
      } else {
        await client.request("server/discover");
      }
      // The first run only warms the disk cache.
      if (i > 0) samples.push(performance.now() - start);
    } finally {
      await client.close();
    }
  }
  return { median: median(samples), summary: summarize(samples) };
}

/**
 * Idle RSS of a freshly opened stdio server (initialized, or discovered in
 * the modern era) after `settleMs`.
 */
export async function idleRss(client: StdioClient, settleMs: number): Promise<number> {
  await open(client);
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
