/**
 * `deno task bench`: measures Rune against an instantly answering Ollama
 * double (and a stamping token emitter for the streaming sections), side
 * by side with the npm MCP server `ollama-mcp`, and writes the results
 * table to `--out FILE` (default `bench/out/RESULTS.md`, an ignored
 * folder; `--out bench/RESULTS.md` updates the tracked results on purpose).
 *
 * It covers both protocol eras (2025 sessions and 2026-07-28 stateless) on
 * every transport, the cloud providers against the Anthropic and OpenAI
 * doubles (and the emitter's SSE), and the floors Rune is compared with:
 * a no-op MCP tool round trip on the same SDK, one streamed fetch in a Deno
 * process, and a bare Deno process's memory.
 *
 * Processes: the doubles and the emitter run as their own Deno processes,
 * each daemon under test as its own process, and the clients in this
 * process; all on loopback, all stopped at the end. `--quick` runs every
 * section with small counts (for trying the benchmark itself) and only
 * prints its table unless `--out` is given.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  describeMachine,
  loadAverage,
  ownTreeCpuMs,
  preparePeer,
  rssBytes,
  type RuneDaemon,
  type RuneOptions,
  sampleLoad,
  type Service,
  startFetchFloor,
  startService,
} from "./procs.ts";
import { connectHttp, type Era, initialize, open, type StdioClient } from "./rpc.ts";
import {
  bareDenoRss,
  clockOffset,
  type Cloud,
  cloudEnv,
  type EraClients,
  floorCpuTarget,
  idleRss,
  type LatencyClients,
  measureCancel,
  measureCapacity,
  measureColdStart,
  measureDisconnect,
  measureDisconnectStorm,
  measureList,
  measureOverhead,
  measureProviderOverhead,
  measureRelay,
  measureSequentialCpu,
  measureStalled,
  measureThroughput,
  openWs,
  peerTools,
  runeCpuTarget,
  spawnNoop,
  spawnPeer,
  spawnRuneStdio,
  startRune,
  STREAM_ROUTES,
  type StreamRoute,
  type Throughput,
} from "./scenarios.ts";
import { type FleetPlan, fleetSection, renderFleet } from "./fleet.ts";
import { type ProviderStreaming, renderResults, type Results } from "./report.ts";
import { sleep } from "./stats.ts";

/** Counts and durations of one run. */
export interface Plan {
  /** Calls per transport in the overhead section. */
  overheadCalls: number;
  /** Calls per client in the list section. */
  listCalls: number;
  /** Seconds per throughput run. */
  throughputMs: number;
  /** Idle WebSocket sessions to try to hold. */
  sessions: number;
  /** Tokens of the as-fast-as-possible relay stream. */
  relayTokens: number;
  /** Tokens per second and count of the paced relay stream. */
  pacedRate: number;
  /** Tokens of the paced stream. */
  pacedTokens: number;
  /** Cancellations. */
  cancels: number;
  /** How long the stalled client is observed, ms. */
  stalledMs: number;
  /** Cold starts per server. */
  coldStarts: number;
  /** Clients per wave of the disconnect storm. */
  stormClients: number;
  /** How long the storm waits after each wave before reading RSS, ms. */
  stormSettleMs: number;
  /** The fleet section's counts. */
  fleet: FleetPlan;
  /** Calls per client in the cloud provider overhead section. */
  providerCalls: number;
  /** Sequential calls per batch in the CPU-per-call section. */
  cpuCalls: number;
  /** Batches per target in the CPU-per-call section (the median is reported). */
  cpuRounds: number;
}

const FULL: Plan = {
  overheadCalls: 2_000,
  listCalls: 1_000,
  throughputMs: 5_000,
  sessions: 10_000,
  relayTokens: 20_000,
  pacedRate: 2_000,
  pacedTokens: 6_000,
  cancels: 20,
  stalledMs: 8_000,
  coldStarts: 20,
  stormClients: 200,
  stormSettleMs: 5_000,
  fleet: { rounds: 1_000, failovers: 200, throughputMs: 5_000 },
  providerCalls: 1_000,
  cpuCalls: 1_000,
  cpuRounds: 3,
};

const QUICK: Plan = {
  overheadCalls: 200,
  listCalls: 100,
  throughputMs: 1_000,
  sessions: 200,
  relayTokens: 5_000,
  pacedRate: 2_000,
  pacedTokens: 1_000,
  cancels: 5,
  stalledMs: 3_000,
  coldStarts: 3,
  stormClients: 50,
  stormSettleMs: 1_000,
  fleet: { rounds: 200, failovers: 40, throughputMs: 1_000 },
  providerCalls: 100,
  cpuCalls: 150,
  cpuRounds: 3,
};

/** The daemon's default --high-water-mark, used for the target check. */
const HIGH_WATER_MARK = 1024 * 1024;
/** A small one, to tell the part of the cost that scales with it from the constant. */
const SMALL_HIGH_WATER_MARK = 64 * 1024;

function log(message: string): void {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** Everything started during the run, stopped in reverse order at the end. */
class Cleanup {
  #steps: (() => Promise<unknown>)[] = [];
  /** Registers a stop step. */
  add(step: () => Promise<unknown>): void {
    this.#steps.push(step);
  }
  /** Runs every step, last registered first, ignoring failures. */
  async run(): Promise<void> {
    for (const step of this.#steps.reverse()) await step().catch(() => {});
    this.#steps = [];
  }
}

/** Keys the cloud doubles are started with (and Rune is given). */
const KEYS: Readonly<Record<Cloud, string>> = {
  anthropic: "sk-ant-bench-0123456789",
  openai: "sk-bench-0123456789",
};

async function daemon(
  cleanup: Cleanup,
  host: string,
  options: RuneOptions = {},
): Promise<RuneDaemon> {
  const started = await startRune(host, options);
  cleanup.add(() => started.stop());
  return started;
}

function stdio(cleanup: Cleanup, client: StdioClient): StdioClient {
  cleanup.add(() => client.close());
  return client;
}

async function latencySections(
  plan: Plan,
  double: Service,
  peerCommand: Awaited<ReturnType<typeof preparePeer>>,
  cleanup: Cleanup,
  results: Results,
): Promise<void> {
  log("latency: starting Rune (stdio in both eras, network), the no-op server and the peer");
  const net = await daemon(cleanup, double.host);
  const runeStdio = stdio(cleanup, spawnRuneStdio(double.host));
  const runeStdioModern = stdio(cleanup, spawnRuneStdio(double.host, { era: "modern" }));
  const peer = stdio(cleanup, spawnPeer(peerCommand, double.url));
  results.idleRss = {
    runeStdio: await idleRss(runeStdio, 1_000),
    runeStdioModern: await idleRss(runeStdioModern, 1_000),
    peer: await idleRss(peer, 0),
    runeNetwork: await rssBytes(net.pid),
    bareDeno: await bareDenoRss(),
  };
  const eras = {} as Record<Era, EraClients>;
  for (const era of ["legacy", "modern"] as const) {
    const ws = await openWs(net, era);
    cleanup.add(() => ws.close());
    const http = await connectHttp(`${net.url}/mcp`, { era });
    cleanup.add(() => http.close());
    const noop = stdio(cleanup, spawnNoop(era));
    await open(noop);
    eras[era] = { stdio: era === "legacy" ? runeStdio : runeStdioModern, ws, http, noop };
  }
  const noopDeno = stdio(cleanup, spawnNoop("legacy", "deno"));
  await open(noopDeno);
  const clients: LatencyClients = { eras, noopDeno, peer, peerTools: await peerTools(peer) };
  results.peerTools = clients.peerTools;
  log(`overhead: ${plan.overheadCalls} interleaved rounds of generate, both eras`);
  results.overhead = await measureOverhead(clients, double.url, plan.overheadCalls);
  log(`list: ${plan.listCalls} interleaved rounds of list`);
  results.list = await measureList(clients, double.url, plan.listCalls);

  log(`CPU per sequential call: ${plan.cpuRounds} rounds of ${plan.cpuCalls} calls per target`);
  const floor = startFetchFloor(double.url);
  cleanup.add(() => floor.stop());
  results.sequentialCpu = await measureSequentialCpu([
    floorCpuTarget("floor", floor),
    runeCpuTarget("stdio", { client: runeStdio, pid: runeStdio.pid }),
    runeCpuTarget("stdio 2026", { client: runeStdioModern, pid: runeStdioModern.pid }),
    runeCpuTarget("ws", { client: eras.legacy.ws, pid: net.pid }),
    runeCpuTarget("ws 2026", { client: eras.modern.ws, pid: net.pid }),
  ], { calls: plan.cpuCalls, rounds: plan.cpuRounds });
  await floor.stop();

  log("throughput: 1, 10, 100 WebSocket sessions, both eras, three runs each");
  results.throughput = [];
  results.throughputRuns = { legacy: {}, modern: {} };
  for (const sessions of [1, 10, 100]) {
    const runs: Record<Era, Throughput[]> = { legacy: [], modern: [] };
    for (let i = 0; i < 3; i++) {
      for (const era of ["legacy", "modern"] as const) {
        runs[era].push(
          await measureThroughput(net, double, { sessions, durationMs: plan.throughputMs, era }),
        );
      }
    }
    for (const era of ["legacy", "modern"] as const) {
      const sorted = runs[era].sort((a, b) => a.callsPerSecond - b.callsPerSecond);
      results.throughput.push(sorted[1]);
      results.throughputRuns[era][sessions] = sorted.map((r) => r.callsPerSecond);
    }
  }
}

async function providerSection(plan: Plan, double: Service, cleanup: Cleanup, results: Results) {
  log("providers: starting the Anthropic and OpenAI doubles");
  const anthropic = await startService("tests/anthropic_double.ts", ["--allow-net=127.0.0.1"], [
    "--port",
    "0",
    "--api-key",
    KEYS.anthropic,
  ]);
  cleanup.add(() => anthropic.stop());
  const openai = await startService("tests/openai_double.ts", ["--allow-net=127.0.0.1"], [
    "--port",
    "0",
    "--api-key",
    KEYS.openai,
  ]);
  cleanup.add(() => openai.stop());
  const runeStdio = stdio(
    cleanup,
    spawnRuneStdio(double.host, {
      env: cloudEnv(
        { url: anthropic.url, key: KEYS.anthropic },
        { url: openai.url, key: KEYS.openai },
      ),
    }),
  );
  await initialize(runeStdio);
  log(`providers: ${plan.providerCalls} interleaved rounds of generate, direct and over stdio`);
  results.providerOverhead = await measureProviderOverhead({
    stdio: runeStdio,
    anthropic: { service: anthropic, apiKey: KEYS.anthropic },
    openai: { service: openai, apiKey: KEYS.openai },
  }, plan.providerCalls);
  await runeStdio.close();
  await anthropic.stop();
  await openai.stop();
}

async function capacitySection(
  plan: Plan,
  double: Service,
  cleanup: Cleanup,
  results: Results,
): Promise<void> {
  log(`capacity: up to ${plan.sessions} idle WebSocket sessions on a fresh daemon`);
  const fresh = await daemon(cleanup, double.host, {
    extra: ["--max-sessions", String(plan.sessions + 100)],
  });
  await sleep(1_000);
  results.idleRss.runeNetworkFresh = await rssBytes(fresh.pid);
  results.capacity = await measureCapacity(fresh, plan.sessions);
  await fresh.stop();
  log(`capacity: the same with the header guard off (--header-timeout 0)`);
  const unguarded = await daemon(cleanup, double.host, {
    extra: ["--max-sessions", String(plan.sessions + 100), "--header-timeout", "0"],
  });
  await sleep(1_000);
  results.capacityUnguarded = await measureCapacity(unguarded, plan.sessions);
  await unguarded.stop();
}

async function stormSection(plan: Plan, cleanup: Cleanup, results: Results): Promise<void> {
  log(`disconnect storm: 2 waves of ${plan.stormClients} clients dropping a stalled stream`);
  // An upstream that sends one token, then nothing for an hour: every stream stays open.
  const stalling = await startService("tests/ollama_double.ts", ["--allow-net=127.0.0.1"], [
    "--port",
    "0",
    "--token-delay-ms",
    "3600000",
  ]);
  cleanup.add(() => stalling.stop());
  const stormDaemon = await daemon(cleanup, stalling.host, {
    extra: ["--max-sessions", String(plan.stormClients * 2)],
  });
  results.disconnectStorm = await measureDisconnectStorm(
    stormDaemon,
    plan.stormClients,
    plan.stormSettleMs,
  );
  await stormDaemon.stop();
  await stalling.stop();
}

/** Two warm-up streams (JIT), then three measured ones; the median run and all three. */
async function fastRelay(
  relayDaemon: RuneDaemon,
  { offset, tokens, route }: { offset: number; tokens: number; route: StreamRoute },
) {
  for (let i = 0; i < 2; i++) {
    const id = `${route.provider}-warm${i}`;
    await measureRelay(relayDaemon, { offset, id, tokens, rate: 0, route });
  }
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const id = `${route.provider}-fast${i}`;
    runs.push(await measureRelay(relayDaemon, { offset, id, tokens, rate: 0, route }));
  }
  runs.sort((a, b) => a.tokensPerSecond - b.tokensPerSecond);
  return { median: runs[1], runs: runs.map((r) => r.tokensPerSecond) };
}

async function streamingSections(
  plan: Plan,
  emitter: Service,
  cleanup: Cleanup,
  results: Results,
): Promise<void> {
  // The emitter serves all three wire formats: Rune's cloud providers point at it too.
  const relayDaemon = await daemon(cleanup, emitter.host, {
    env: cloudEnv(
      { url: emitter.url, key: KEYS.anthropic },
      { url: `${emitter.url}/v1`, key: KEYS.openai },
    ),
  });
  const clock = await clockOffset(emitter);
  results.clock = clock;
  const offset = clock.offset;
  log(`relay: ${plan.relayTokens} tokens as fast as possible, progress on`);
  const fast = await fastRelay(relayDaemon, {
    offset,
    tokens: plan.relayTokens,
    route: STREAM_ROUTES.ollama,
  });
  results.relayFast = fast.median;
  results.relayFastRuns = fast.runs;
  log(`relay: ${plan.pacedTokens} tokens at ${plan.pacedRate}/s`);
  // Three paced runs; the one with the median p99 is reported, all three are listed.
  const paced = [];
  for (let i = 0; i < 3; i++) {
    paced.push(
      await measureRelay(relayDaemon, {
        offset,
        id: `relay-paced${i}`,
        tokens: plan.pacedTokens,
        rate: plan.pacedRate,
      }),
    );
  }
  paced.sort((a, b) => a.delay.p99 - b.delay.p99);
  results.relayPaced = paced[1];
  results.relayPacedP99s = paced.map((r) => r.delay.p99);
  results.pacedRate = plan.pacedRate;
  log(`cancel: ${plan.cancels} cancellations`);
  results.cancel = await measureCancel(relayDaemon, emitter, { offset, runs: plan.cancels });
  log(`cancel (2026-07-28, WebSocket and Streamable HTTP): ${plan.cancels} cancellations each`);
  results.modernCancel = {
    "ws 2026": await measureCancel(relayDaemon, emitter, {
      offset,
      runs: plan.cancels,
      via: "ws 2026",
    }),
    "http 2026": await measureCancel(relayDaemon, emitter, {
      offset,
      runs: plan.cancels,
      via: "http 2026",
    }),
  };
  log("disconnect: dropping the WebSocket mid-stream");
  results.disconnect = await measureDisconnect(relayDaemon, emitter, clock.offset, 5);

  results.providerStreaming = {} as Record<Cloud, ProviderStreaming>;
  for (const provider of ["anthropic", "openai"] as const) {
    const route = STREAM_ROUTES[provider];
    log(`relay (${provider} SSE): ${plan.relayTokens} tokens as fast as possible; cancel`);
    const relay = await fastRelay(relayDaemon, { offset, tokens: plan.relayTokens, route });
    const cancel = await measureCancel(relayDaemon, emitter, {
      offset,
      runs: plan.cancels,
      route,
    });
    results.providerStreaming[provider] = { relay: relay.median, relayRuns: relay.runs, cancel };
  }
  await relayDaemon.stop();

  results.stalledRuns = [];
  for (const hwm of [HIGH_WATER_MARK, SMALL_HIGH_WATER_MARK]) {
    log(`stalled client: observing ${plan.stalledMs} ms, --high-water-mark ${hwm}`);
    const stalledDaemon = await daemon(cleanup, emitter.host, {
      extra: ["--high-water-mark", String(hwm)],
    });
    results.stalledRuns.push(await measureStalled(stalledDaemon, emitter, hwm, plan.stalledMs));
    await stalledDaemon.stop();
  }
  results.stalled = results.stalledRuns[0];
}

async function coldStartSection(
  plan: Plan,
  double: Service,
  peerCommand: Awaited<ReturnType<typeof preparePeer>>,
  results: Results,
): Promise<void> {
  log(`cold start: ${plan.coldStarts} spawns each`);
  results.coldStart = {
    rune: await measureColdStart(() => spawnRuneStdio(double.host), plan.coldStarts),
    runeModern: await measureColdStart(
      () => spawnRuneStdio(double.host, { era: "modern" }),
      plan.coldStarts,
    ),
    peer: await measureColdStart(() => spawnPeer(peerCommand, double.url), plan.coldStarts),
  };
}

/** Runs only the fleet section (`--section fleet`) and returns its Markdown. */
export async function runFleetBench(plan: Plan, outFile?: string): Promise<string> {
  const cleanup = new Cleanup();
  try {
    const double = await startService("tests/ollama_double.ts", ["--allow-net=127.0.0.1"], [
      "--port",
      "0",
    ]);
    cleanup.add(() => double.stop());
    const fleet = await fleetSection(plan.fleet, {
      double,
      daemon: (extra) => daemon(cleanup, double.host, { extra }),
      cleanup: (step) => cleanup.add(step),
      log,
    });
    const markdown = [
      "# Rune benchmark: fleet section",
      "",
      ...(await describeMachine()).map((line) => `- ${line}`),
      "",
      renderFleet(fleet),
    ].join("\n");
    if (outFile !== undefined) await Deno.writeTextFile(outFile, markdown);
    return markdown;
  } finally {
    await cleanup.run();
  }
}

/** Runs the whole benchmark and returns its Markdown, also written to `outFile` if given. */
export async function runBench(plan: Plan, outFile?: string): Promise<string> {
  const cleanup = new Cleanup();
  const results = { machine: await describeMachine() } as Results;
  const started = performance.now();
  const loadBefore = await loadAverage();
  let fleet: Awaited<ReturnType<typeof fleetSection>>;
  const cpuBefore = await ownTreeCpuMs();
  const load = await sampleLoad(5_000);
  try {
    log("preparing the peer (ollama-mcp)");
    const peerCommand = await preparePeer();
    results.peerLabel = peerCommand.label;
    const double = await startService("tests/ollama_double.ts", ["--allow-net=127.0.0.1"], [
      "--port",
      "0",
    ]);
    cleanup.add(() => double.stop());
    const emitter = await startService("bench/emitter.ts", [
      "--allow-net=127.0.0.1",
      "--unstable-no-legacy-abort",
    ]);
    cleanup.add(() => emitter.stop());
    // Sanity: the double answers as Rune expects.
    await initialize(stdio(cleanup, spawnRuneStdio(double.host))).then(() => {});

    await latencySections(plan, double, peerCommand, cleanup, results);
    await providerSection(plan, double, cleanup, results);
    await capacitySection(plan, double, cleanup, results);
    await stormSection(plan, cleanup, results);
    await streamingSections(plan, emitter, cleanup, results);
    await coldStartSection(plan, double, peerCommand, results);
    fleet = await fleetSection(plan.fleet, {
      double,
      daemon: (extra) => daemon(cleanup, double.host, { extra }),
      cleanup: (step) => cleanup.add(step),
      log,
    });
  } finally {
    await cleanup.run();
  }
  results.durationSeconds = (performance.now() - started) / 1000;
  results.loadAverage = [loadBefore, await loadAverage()];
  // Every process the run started has exited and was waited for: their CPU is in ours now.
  results.load = { ...(await load.stop()), ownCpuMs: await ownTreeCpuMs() - cpuBefore };
  const markdown = `${renderResults(results)}\n${renderFleet(fleet)}`;
  if (outFile !== undefined) await Deno.writeTextFile(outFile, markdown);
  return markdown;
}

/** Where a full run writes its results unless told otherwise: an ignored folder. */
export const DEFAULT_OUT = "bench/out/RESULTS.md";

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      out: { type: "string" },
      section: { type: "string" },
    },
  });
  if (values.section !== undefined && values.section !== "fleet") {
    console.error(`--section takes "fleet" (the only section that runs alone)`);
    Deno.exit(2);
  }
  // The tracked bench/RESULTS.md changes only on purpose: --out bench/RESULTS.md.
  const out = values.out ?? (values.quick ? undefined : DEFAULT_OUT);
  if (out?.includes("/")) await Deno.mkdir(out.slice(0, out.lastIndexOf("/")), { recursive: true });
  const plan = values.quick ? QUICK : FULL;
  const markdown = values.section === "fleet"
    ? await runFleetBench(plan, out)
    : await runBench(plan, out);
  console.log(markdown);
  log(out ? `wrote ${out}` : "quick run: nothing written (--out FILE writes it)");
}
