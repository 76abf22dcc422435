/**
 * The fleet figures of the benchmark (issue: running a fleet):
 *
 * - a cache hit over stdio next to a `ping` round trip (target: p50 within
 *   0.2 ms of it);
 * - routing overhead: generate through a pool of three hosts next to the
 *   plain provider on one (target: p50 at most 0.1 ms more);
 * - failover cost: a generate whose preferred host refuses the connection
 *   next to one it answers (target: at most 20 ms more);
 * - throughput at 100 WebSocket sessions with metrics and a per-client rate
 *   limit on, next to both off (target: within 5 %).
 *
 * Routing and failover are measured in this process, on the pool itself
 * (the Ollama doubles run as their own processes); the others against real
 * daemons. Rounds interleave the two sides, so drift hits both alike.
 *
 * @module
 */

import { createOllamaProvider } from "../src/providers/ollama/mod.ts";
import { normalizeModelName } from "../src/providers/ollama/convert.ts";
import { createPool, type PoolProvider } from "../src/providers/pool.ts";
import { collect, type Provider } from "../src/providers/types.ts";
import { type RuneDaemon, runeStdioArgs, type Service, startService } from "./procs.ts";
import { initialize, spawnStdio, type StdioClient } from "./rpc.ts";
import { measureThroughput, MODEL, PROMPT, type Throughput } from "./scenarios.ts";
import { ms, summarize, type Summary } from "./stats.ts";

/** Counts of the fleet section. */
export interface FleetPlan {
  /** Interleaved rounds of each latency comparison. */
  rounds: number;
  /** Failover rounds (each builds a fresh pool). */
  failovers: number;
  /** Milliseconds per throughput run. */
  throughputMs: number;
}

/** Two latency distributions side by side. */
export interface Pair {
  /** The subject. */
  subject: Summary;
  /** What it is compared with. */
  baseline: Summary;
}

/** The fleet figures. */
export interface FleetResults {
  /** Cached embed over stdio vs ping over stdio. */
  cacheHit: Pair;
  /** Generate through a three-host pool vs the plain one-host provider. */
  routing: Pair;
  /** Generate whose first host refuses vs one it answers (pool of two). */
  failover: Pair;
  /** Calls per second at 100 sessions, three runs each: on (metrics + limit) and off. */
  throughput: { on: Throughput[]; off: Throughput[] };
}

/** What the section needs from the benchmark. */
export interface FleetDeps {
  /** The Ollama double service. */
  double: Service;
  /** Starts a daemon with extra flags (stopped by the caller's cleanup). */
  daemon: (extra: string[]) => Promise<RuneDaemon>;
  /** Registers a stop step. */
  cleanup: (step: () => Promise<unknown>) => void;
  /** Progress lines. */
  log: (message: string) => void;
}

/**
 * Times `rounds` interleaved runs of `subject` and `baseline`, after `warm`
 * unmeasured rounds (default 50).
 */
async function interleave(
  rounds: number,
  sides: { subject: () => Promise<unknown>; baseline: () => Promise<unknown>; warm?: number },
): Promise<Pair> {
  const warm = sides.warm ?? 50;
  const a = sides.subject;
  const b = sides.baseline;
  const times: [number[], number[]] = [[], []];
  for (let i = 0; i < warm + rounds; i++) {
    const order = i % 2 === 0 ? [0, 1] : [1, 0];
    for (const side of order) {
      const t = performance.now();
      await (side === 0 ? a() : b());
      if (i >= warm) times[side].push(performance.now() - t);
    }
  }
  return { subject: summarize(times[0]), baseline: summarize(times[1]) };
}

function generate(provider: Provider): Promise<unknown> {
  return collect(provider.generate({ model: MODEL, prompt: PROMPT }));
}

/** Runs the fleet section. */
export async function fleetSection(plan: FleetPlan, deps: FleetDeps): Promise<FleetResults> {
  const { double, log } = deps;

  log(`fleet: cache hit over stdio vs ping, ${plan.rounds} rounds`);
  const stdio: StdioClient = spawnStdio(Deno.execPath(), runeStdioArgs(double.host));
  deps.cleanup(() => stdio.close());
  await initialize(stdio);
  // A deterministic generation (temperature 0 with a seed) is cached; its reply is small.
  const cachedCall = {
    name: "ai_ollama_generate",
    arguments: { model: MODEL, prompt: PROMPT, options: { temperature: 0, seed: 1 } },
  };
  await stdio.request("tools/call", cachedCall);
  const cacheHit = await interleave(plan.rounds, {
    subject: async () => {
      const result = await stdio.request("tools/call", cachedCall) as {
        structuredContent?: { cached?: boolean };
      };
      if (result.structuredContent?.cached !== true) throw new Error("expected a cache hit");
    },
    baseline: () => stdio.request("ping"),
  });
  await stdio.close();

  log(`fleet: routing over three hosts vs one, ${plan.rounds} rounds`);
  const hosts = await Promise.all(
    [0, 1].map(() =>
      startService("tests/ollama_double.ts", ["--allow-net=127.0.0.1"], ["--port", "0"])
    ),
  );
  for (const h of hosts) deps.cleanup(() => h.stop());
  const three = [double, ...hosts];
  const pool = createPool(
    three.map((s) => ({ address: s.host, provider: createOllamaProvider({ baseUrl: s.url }) })),
    { modelKey: normalizeModelName },
  );
  deps.cleanup(() => Promise.resolve(pool.close()));
  await pool.refresh();
  const single = createOllamaProvider({ baseUrl: double.url });
  const routing = await interleave(plan.rounds, {
    subject: () => generate(pool),
    baseline: () => generate(single),
  });
  pool.close();

  log(`fleet: failover from a host that refuses connections, ${plan.failovers} rounds`);
  const dead = await startService("tests/ollama_double.ts", ["--allow-net=127.0.0.1"], [
    "--port",
    "0",
  ]);
  const deadUrl = dead.url;
  await dead.stop();
  const live = createOllamaProvider({ baseUrl: double.url });
  /** A pool whose first host looks up, with the model loaded, until a call finds it gone. */
  const fresh = async (refusing: boolean): Promise<PoolProvider> => {
    const first = createOllamaProvider({ baseUrl: refusing ? deadUrl : double.url });
    const seemsUp: Provider = {
      ...first,
      ping: (o) => live.ping(o),
      listModels: async (o) =>
        (await live.listModels(o)).map((m) => ({
          ...m,
          loaded: m.name.startsWith(MODEL) ? {} : undefined,
        })),
    };
    const p = createPool([
      { address: "first", provider: seemsUp },
      { address: hosts[0].host, provider: createOllamaProvider({ baseUrl: hosts[0].url }) },
    ], { modelKey: normalizeModelName });
    await p.refresh();
    return p;
  };
  const failoverTimes: [number[], number[]] = [[], []];
  for (let i = 0; i < 10 + plan.failovers; i++) {
    for (const refusing of i % 2 ? [true, false] : [false, true]) {
      const p = await fresh(refusing);
      const t = performance.now();
      await generate(p);
      if (i >= 10) failoverTimes[refusing ? 0 : 1].push(performance.now() - t);
      p.close();
    }
  }
  const failover = { subject: summarize(failoverTimes[0]), baseline: summarize(failoverTimes[1]) };

  log("fleet: throughput at 100 sessions, metrics and rate limit on vs off, three runs each");
  const on = await deps.daemon(["--rate-limit", "1000000/s"]);
  const off = await deps.daemon(["--metrics", "off"]);
  const throughput: FleetResults["throughput"] = { on: [], off: [] };
  for (let i = 0; i < 3; i++) {
    throughput.on.push(
      await measureThroughput(on, double, { sessions: 100, durationMs: plan.throughputMs }),
    );
    throughput.off.push(
      await measureThroughput(off, double, { sessions: 100, durationMs: plan.throughputMs }),
    );
  }
  await Promise.all([on.stop(), off.stop()]);
  return { cacheHit, routing, failover, throughput };
}

function medianRate(runs: Throughput[]): number {
  const sorted = runs.map((r) => r.callsPerSecond).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The section's Markdown. */
export function renderFleet(r: FleetResults): string {
  const row = (name: string, pair: Pair, target: string, met: boolean) =>
    `| ${name} | ${ms(pair.subject.p50)} | ${ms(pair.baseline.p50)} | ${
      ms(pair.subject.p50 - pair.baseline.p50)
    } | ${ms(pair.subject.p99)} | ${target} | ${met ? "met" : "**missed**"} |`;
  const on = medianRate(r.throughput.on);
  const off = medianRate(r.throughput.off);
  const ratio = on / off;
  return [
    "## Fleet",
    "",
    "| Figure | p50 | baseline p50 | added | p99 | target | |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    row(
      "cache hit over stdio (baseline: ping)",
      r.cacheHit,
      "≤ 0.2 ms",
      r.cacheHit.subject.p50 - r.cacheHit.baseline.p50 <= 0.2,
    ),
    row(
      "generate via a pool of 3 hosts (baseline: 1 host, no pool)",
      r.routing,
      "≤ 0.1 ms",
      r.routing.subject.p50 - r.routing.baseline.p50 <= 0.1,
    ),
    row(
      "generate whose first host refuses (baseline: it answers)",
      r.failover,
      "≤ 20 ms",
      r.failover.subject.p50 - r.failover.baseline.p50 <= 20,
    ),
    "",
    `Throughput at 100 WebSocket sessions: ${on.toFixed(0)} calls/s with metrics and ` +
    `--rate-limit on, ${off.toFixed(0)} with both off (${(ratio * 100).toFixed(1)} %; target ` +
    `≥ 95 %: ${ratio >= 0.95 ? "met" : "**missed**"}). Runs: on ${
      r.throughput.on.map((t) => t.callsPerSecond.toFixed(0)).join(", ")
    }; off ${r.throughput.off.map((t) => t.callsPerSecond.toFixed(0)).join(", ")}.`,
    "",
  ].join("\n");
}
