/**
 * Measures the daemon's CPU time per `tools/call`, for working on it:
 * starts the Ollama double and Rune, drives generate calls for a few runs
 * and prints calls/s and CPU per call of each run (daemon, double, client).
 * With `--profile DIR` the daemon runs under `--cpu-prof` and writes its
 * profile to DIR when it stops.
 *
 * - `--transport ws` (default): a network daemon and `--sessions`
 *   WebSocket sessions (default 100), one call in flight each: the
 *   throughput section's load.
 * - `--transport stdio`: `rune serve --stdio` and `--concurrency` calls in
 *   flight on its one connection (default 1: sequential calls, as the
 *   "daemon CPU per sequential call" row measures).
 * - `--era legacy|modern`: the protocol era the clients speak (default
 *   legacy: 2025 sessions; modern: 2026-07-28, enveloped requests).
 *
 * ```sh
 * deno run --allow-net --allow-run --allow-env --allow-read --allow-write --allow-sys \
 *   bench/cpu.ts [--transport ws|stdio] [--era legacy|modern] [--runs 3] [--seconds 5] \
 *   [--sessions 100] [--concurrency 1] [--profile DIR]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startRuneDaemon, startService } from "./procs.ts";
import { type Era, open, type RpcClient } from "./rpc.ts";
import { driveLoad, type Load, openWs, spawnRuneStdio } from "./scenarios.ts";
import { median } from "./stats.ts";

/** What to drive, from the command line. */
interface Options {
  transport: "ws" | "stdio";
  era: Era;
  runs: number;
  seconds: number;
  /** WebSocket sessions, or calls in flight on the stdio connection. */
  parallel: number;
  profile?: string;
}

function options(): Options {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      transport: { type: "string", default: "ws" },
      era: { type: "string", default: "legacy" },
      runs: { type: "string", default: "3" },
      seconds: { type: "string", default: "5" },
      sessions: { type: "string", default: "100" },
      concurrency: { type: "string", default: "1" },
      profile: { type: "string" },
    },
  });
  const { transport, era } = values;
  if (transport !== "ws" && transport !== "stdio") {
    throw new Error(`--transport must be ws or stdio, got ${transport}`);
  }
  if (era !== "legacy" && era !== "modern") {
    throw new Error(`--era must be legacy or modern, got ${era}`);
  }
  const positive = (name: string, text: string) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be 1 or more`);
    return value;
  };
  return {
    transport,
    era,
    runs: positive("runs", values.runs),
    seconds: positive("seconds", values.seconds),
    parallel: transport === "ws"
      ? positive("sessions", values.sessions)
      : positive("concurrency", values.concurrency),
    ...(values.profile !== undefined && { profile: values.profile }),
  };
}

function report(index: number, run: Load): void {
  const us = (value: number) => `${(value * 1000).toFixed(1)} µs/call`;
  console.log(
    `run ${index}: ${run.callsPerSecond.toFixed(0)} calls/s, daemon ${us(run.daemonCpuPerCall)}, ` +
      `double ${us(run.doubleCpuPerCall)}, client ${us(run.clientCpuPerCall)}, machine ` +
      `${(run.machineBusy * 100).toFixed(0)} % busy`,
  );
}

if (import.meta.main) {
  const o = options();
  const double = await startService("tests/ollama_double.ts", ["--allow-net=127.0.0.1"], [
    "--port",
    "0",
  ]);
  const denoFlags = o.profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${o.profile}`];
  let loops: RpcClient[];
  let daemonPid: number;
  let stop: () => Promise<void>;
  if (o.transport === "stdio") {
    const client = spawnRuneStdio(double.host, { era: o.era, denoFlags });
    await open(client);
    loops = Array.from({ length: o.parallel }, () => client);
    daemonPid = client.pid;
    // Closing stdin ends the daemon normally, which writes the profile.
    stop = () => client.close();
  } else {
    const daemon = await startRuneDaemon(double.host, { denoFlags });
    const sessions: RpcClient[] = [];
    for (let i = 0; i < o.parallel; i++) sessions.push(await openWs(daemon, o.era));
    loops = sessions;
    daemonPid = daemon.pid;
    stop = async () => {
      await Promise.all(sessions.map((s) => s.close()));
      await daemon.stop();
    };
  }
  try {
    console.log(
      `${o.transport}, ${o.era} era, ${o.parallel} ${
        o.transport === "ws" ? "session(s)" : "call(s) in flight"
      }, ${o.runs} run(s) of ${o.seconds} s`,
    );
    // Warm-up run (JIT), not reported.
    await driveLoad(loops, { daemonPid, double, durationMs: 1_000 });
    const cpu: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      const run = await driveLoad(loops, { daemonPid, double, durationMs: o.seconds * 1_000 });
      cpu.push(run.daemonCpuPerCall);
      report(i + 1, run);
    }
    console.log(`median daemon CPU per call: ${(median(cpu) * 1000).toFixed(1)} µs`);
    if (o.profile !== undefined) console.log(`profile: written to ${o.profile} when Rune exits`);
  } finally {
    await stop();
    await double.stop();
  }
}
