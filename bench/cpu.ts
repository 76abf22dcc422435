/**
 * Measures the daemon's CPU time per `tools/call` under load, for working
 * on it: starts the Ollama double and a network daemon, runs the 100
 * session WebSocket throughput section a few times and prints calls/s and
 * CPU per call of each run. With `--profile DIR` the daemon runs under
 * `--cpu-prof` and writes its profile to DIR when it stops.
 *
 * ```sh
 * deno run --allow-net --allow-run --allow-env --allow-read --allow-write --allow-sys \
 *   bench/cpu.ts [--runs 3] [--seconds 5] [--sessions 100] [--profile DIR]
 * ```
 *
 * @module
 */

import { startRuneDaemon, startService } from "./procs.ts";
import { measureThroughput } from "./scenarios.ts";
import { median } from "./stats.ts";

/** Reads `--name value` from the arguments. */
function flag(name: string): string | undefined {
  const at = Deno.args.indexOf(`--${name}`);
  return at === -1 ? undefined : Deno.args[at + 1];
}

if (import.meta.main) {
  const runs = Number(flag("runs") ?? 3);
  const seconds = Number(flag("seconds") ?? 5);
  const sessions = Number(flag("sessions") ?? 100);
  const profile = flag("profile");
  const double = await startService("tests/ollama_double.ts", ["--allow-net=127.0.0.1"], [
    "--port",
    "0",
  ]);
  const denoFlags = profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`];
  const daemon = await startRuneDaemon(double.host, [], denoFlags);
  try {
    // Warm-up run (JIT), not reported.
    await measureThroughput(daemon, double, sessions, 1_000);
    const cpu: number[] = [];
    for (let i = 0; i < runs; i++) {
      const run = await measureThroughput(daemon, double, sessions, seconds * 1_000);
      cpu.push(run.daemonCpuPerCall);
      console.log(
        `run ${i + 1}: ${run.callsPerSecond.toFixed(0)} calls/s, daemon ${
          (run.daemonCpuPerCall * 1000).toFixed(1)
        } µs/call, double ${(run.doubleCpuPerCall * 1000).toFixed(1)} µs/call, client ${
          (run.clientCpuPerCall * 1000).toFixed(1)
        } µs/call, machine ${(run.machineBusy * 100).toFixed(0)} % busy`,
      );
    }
    console.log(`median daemon CPU per call: ${(median(cpu) * 1000).toFixed(1)} µs`);
  } finally {
    await daemon.stop();
    await double.stop();
  }
}
