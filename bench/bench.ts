/**
 * `deno task bench`: measures Rune against an instantly answering Ollama
 * double (and a stamping token emitter for the streaming sections), side
 * by side with the npm MCP server `ollama-mcp`, and writes the results
 * table to `--out FILE` (default `bench/out/RESULTS.md`, an ignored
 * folder; `--out bench/RESULTS.md` updates the tracked results on purpose).
 *
 * Processes: the Ollama double and the emitter run as their own Deno
 * processes, each daemon under test as its own process, and the clients in
 * this process; all on loopback, all stopped at the end. `--quick` runs
 * every section with small counts (for trying the benchmark itself) and
 * only prints its table unless `--out` is given.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  describeMachine,
  loadAverage,
  preparePeer,
  rssBytes,
  type RuneDaemon,
  type Service,
  startService,
} from "./procs.ts";
import { connectHttp, initialize, type StdioClient } from "./rpc.ts";
import {
  bareDenoRss,
  clockOffset,
  idleRss,
  type LatencyClients,
  measureCancel,
  measureCapacity,
  measureColdStart,
  measureDisconnect,
  measureDisconnectStorm,
  measureList,
  measureOverhead,
  measureRelay,
  measureStalled,
  measureThroughput,
  openWs,
  peerTools,
  spawnPeer,
  spawnRuneStdio,
  startRune,
} from "./scenarios.ts";
import { type FleetPlan, fleetSection, renderFleet } from "./fleet.ts";
import { renderResults, type Results } from "./report.ts";
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
}

const FULL: Plan = {
  overheadCalls: 2_000,
  listCalls: 1_000,
  throughputMs: 5_000,
  sessions: 2_000,
  relayTokens: 20_000,
  pacedRate: 2_000,
  pacedTokens: 6_000,
  cancels: 20,
  stalledMs: 8_000,
  coldStarts: 20,
  stormClients: 200,
  stormSettleMs: 5_000,
  fleet: { rounds: 1_000, failovers: 200, throughputMs: 5_000 },
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

async function daemon(cleanup: Cleanup, host: string, extra: string[] = []): Promise<RuneDaemon> {
  const started = await startRune(host, extra);
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
  log("latency: starting Rune (stdio, network) and the peer");
  const net = await daemon(cleanup, double.host);
  const runeStdio = stdio(cleanup, spawnRuneStdio(double.host));
  const peer = stdio(cleanup, spawnPeer(peerCommand, double.url));
  results.idleRss = {
    runeStdio: await idleRss(runeStdio, 1_000),
    peer: await idleRss(peer, 0),
    runeNetwork: await rssBytes(net.pid),
  };
  const ws = await openWs(net);
  cleanup.add(() => ws.close());
  const http = await connectHttp(`${net.url}/mcp`);
  cleanup.add(() => http.close());
  const clients: LatencyClients = {
    stdio: runeStdio,
    ws,
    http,
    peer,
    peerTools: await peerTools(peer),
  };
  results.peerTools = clients.peerTools;
  log(`overhead: ${plan.overheadCalls} interleaved rounds of generate`);
  results.overhead = await measureOverhead(clients, double.url, plan.overheadCalls);
  log(`list: ${plan.listCalls} interleaved rounds of list`);
  results.list = await measureList(clients, double.url, plan.listCalls);

  log("throughput: 1, 10, 100 WebSocket sessions, three runs each");
  results.throughput = [];
  results.throughputRuns = {};
  for (const sessions of [1, 10, 100]) {
    const runs = [];
    for (let i = 0; i < 3; i++) {
      runs.push(await measureThroughput(net, double, sessions, plan.throughputMs));
    }
    runs.sort((a, b) => a.callsPerSecond - b.callsPerSecond);
    results.throughput.push(runs[1]);
    results.throughputRuns[sessions] = runs.map((r) => r.callsPerSecond);
  }
}

async function capacitySection(
  plan: Plan,
  double: Service,
  cleanup: Cleanup,
  results: Results,
): Promise<void> {
  log(`capacity: up to ${plan.sessions} idle WebSocket sessions on a fresh daemon`);
  const fresh = await daemon(cleanup, double.host, [
    "--max-sessions",
    String(plan.sessions + 100),
  ]);
  await sleep(1_000);
  results.idleRss.runeNetworkFresh = await rssBytes(fresh.pid);
  results.idleRss.bareDeno = await bareDenoRss();
  results.capacity = await measureCapacity(fresh, plan.sessions);
  await fresh.stop();
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
  const stormDaemon = await daemon(cleanup, stalling.host, [
    "--max-sessions",
    String(plan.stormClients * 2),
  ]);
  results.disconnectStorm = await measureDisconnectStorm(
    stormDaemon,
    plan.stormClients,
    plan.stormSettleMs,
  );
  await stormDaemon.stop();
  await stalling.stop();
}

async function streamingSections(
  plan: Plan,
  emitter: Service,
  cleanup: Cleanup,
  results: Results,
): Promise<void> {
  const relayDaemon = await daemon(cleanup, emitter.host);
  const clock = await clockOffset(emitter);
  results.clock = clock;
  log(`relay: ${plan.relayTokens} tokens as fast as possible, progress on`);
  // Two warm-up streams (JIT), then three measured ones; the median run is reported.
  for (let i = 0; i < 2; i++) {
    await measureRelay(relayDaemon, clock.offset, `relay-warm${i}`, plan.relayTokens, 0);
  }
  const runs = [];
  for (let i = 0; i < 3; i++) {
    runs.push(
      await measureRelay(relayDaemon, clock.offset, `relay-fast${i}`, plan.relayTokens, 0),
    );
  }
  runs.sort((a, b) => a.tokensPerSecond - b.tokensPerSecond);
  results.relayFast = runs[1];
  results.relayFastRuns = runs.map((r) => r.tokensPerSecond);
  log(`relay: ${plan.pacedTokens} tokens at ${plan.pacedRate}/s`);
  // Three paced runs; the one with the median p99 is reported, all three are listed.
  const paced = [];
  for (let i = 0; i < 3; i++) {
    paced.push(
      await measureRelay(
        relayDaemon,
        clock.offset,
        `relay-paced${i}`,
        plan.pacedTokens,
        plan.pacedRate,
      ),
    );
  }
  paced.sort((a, b) => a.delay.p99 - b.delay.p99);
  results.relayPaced = paced[1];
  results.relayPacedP99s = paced.map((r) => r.delay.p99);
  results.pacedRate = plan.pacedRate;
  log(`cancel: ${plan.cancels} cancellations`);
  results.cancel = await measureCancel(relayDaemon, emitter, clock.offset, plan.cancels);
  log("disconnect: dropping the WebSocket mid-stream");
  results.disconnect = await measureDisconnect(relayDaemon, emitter, clock.offset, 5);
  await relayDaemon.stop();

  results.stalledRuns = [];
  for (const hwm of [HIGH_WATER_MARK, SMALL_HIGH_WATER_MARK]) {
    log(`stalled client: observing ${plan.stalledMs} ms, --high-water-mark ${hwm}`);
    const stalledDaemon = await daemon(cleanup, emitter.host, ["--high-water-mark", String(hwm)]);
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
      daemon: (extra) => daemon(cleanup, double.host, extra),
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
    await capacitySection(plan, double, cleanup, results);
    await stormSection(plan, cleanup, results);
    await streamingSections(plan, emitter, cleanup, results);
    await coldStartSection(plan, double, peerCommand, results);
    fleet = await fleetSection(plan.fleet, {
      double,
      daemon: (extra) => daemon(cleanup, double.host, extra),
      cleanup: (step) => cleanup.add(step),
      log,
    });
  } finally {
    await cleanup.run();
  }
  results.durationSeconds = (performance.now() - started) / 1000;
  results.loadAverage = [loadBefore, await loadAverage()];
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
