/**
 * Process helpers for the benchmark: starting the Ollama double and the
 * token emitter as their own processes, reading a process's RSS and CPU
 * time from `/proc`, describing the machine, and installing the peer MCP
 * server (`ollama-mcp`) for the side-by-side comparison.
 *
 * @module
 */

import { DEV_PERMISSIONS, LAUNCH_ENV } from "../scripts/permissions.ts";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A helper service running in its own process. */
export interface Service {
  /** Base URL, `http://127.0.0.1:PORT`. */
  url: string;
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Process id. */
  pid: number;
  /** Sends SIGTERM (SIGKILL after 3 s) and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Runs `deno run <flags> <script> ...args` and waits for the
 * `listening http://...` line it prints on stdout.
 */
export async function startService(
  script: string,
  flags: string[],
  args: string[] = [],
): Promise<Service> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...flags, script, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let url: string | undefined;
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    while (url === undefined) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`${script} exited before listening`);
      buffer += value;
      url = /listening (http:\/\/\S+)/.exec(buffer)?.[1];
    }
  } finally {
    clearTimeout(timer);
  }
  // Keep draining stdout so the pipe never fills.
  const drained = (async () => {
    try {
      while (!(await lines.read()).done) { /* discard */ }
    } catch {
      // Closed.
    }
  })();
  let stopping: Promise<void> | undefined;
  return {
    url,
    host: new URL(url).host,
    pid: child.pid,
    stop() {
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Already gone.
          }
        }, 3_000);
        await child.status;
        clearTimeout(timer);
        await drained;
      })();
      return stopping;
    },
  };
}

/**
 * Reads a file under /proc. Deno grants /proc only with --allow-all, which
 * the benchmark does not take, so it asks `cat` (under --allow-run).
 */
export async function readProc(path: string): Promise<string> {
  try {
    const { stdout, success } = await new Deno.Command("cat", {
      args: [path],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return success ? new TextDecoder().decode(stdout) : "";
  } catch {
    return "";
  }
}

/** Resident set size of process `pid` in bytes (VmRSS), or NaN when unreadable. */
export async function rssBytes(pid: number): Promise<number> {
  const kb = /VmRSS:\s+(\d+) kB/.exec(await readProc(`/proc/${pid}/status`))?.[1];
  return kb === undefined ? NaN : Number(kb) * 1024;
}

/** Clock ticks per second of /proc times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU times from a /proc/PID/stat line, in milliseconds. */
export interface StatCpu {
  /** User plus system time of the process (all its threads). */
  self: number;
  /** User plus system time of its children that exited and were waited for. */
  children: number;
}

/**
 * Parses the CPU times of a /proc/PID/stat line (utime, stime, cutime and
 * cstime, fields 14 to 17); undefined when the line is not one.
 */
export function parseStatCpu(stat: string): StatCpu | undefined {
  // The command name (field 2) is parenthesised and may hold spaces or parentheses itself.
  const close = stat.lastIndexOf(")");
  if (close === -1) return undefined;
  const fields = stat.slice(close + 2).trim().split(" ");
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
  if (![utime, stime, cutime, cstime].every(Number.isFinite)) return undefined;
  return {
    self: ((utime + stime) * 1000) / USER_HZ,
    children: ((cutime + cstime) * 1000) / USER_HZ,
  };
}

/** CPU time (user + system) process `pid` has used, in milliseconds, or NaN. */
export async function cpuMs(pid: number): Promise<number> {
  return parseStatCpu(await readProc(`/proc/${pid}/stat`))?.self ?? NaN;
}

/**
 * CPU time of this process plus its exited children, in milliseconds: at
 * the end of a run, when every process the benchmark started was waited
 * for, all the benchmark's processes together.
 */
export async function ownTreeCpuMs(): Promise<number> {
  const cpu = parseStatCpu(await readProc(`/proc/${Deno.pid}/stat`));
  return cpu === undefined ? NaN : cpu.self + cpu.children;
}

/** The soft and hard limits of one line of /proc/PID/limits. */
export interface Limit {
  /** The soft limit (what the process gets), Infinity for unlimited. */
  soft: number;
  /** The hard limit (how far the soft one may be raised), Infinity for unlimited. */
  hard: number;
}

/** Parses the "Max open files" line of a /proc/PID/limits text; undefined if absent. */
export function parseOpenFilesLimit(limits: string): Limit | undefined {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!match) return undefined;
  const value = (text: string) => text === "unlimited" ? Infinity : Number(text);
  return { soft: value(match[1]), hard: value(match[2]) };
}

/** The open-files limit of process `pid`, or undefined when unreadable. */
export async function openFilesLimit(pid: number): Promise<Limit | undefined> {
  return parseOpenFilesLimit(await readProc(`/proc/${pid}/limits`));
}

/** Whole-machine CPU jiffies from /proc/stat: busy and total. */
export async function machineCpu(): Promise<{ busy: number; total: number }> {
  const line = (await readProc("/proc/stat")).split("\n")[0] ?? "";
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
}

/** The 1-minute load average (runnable processes), or NaN. */
export async function loadAverage(): Promise<number> {
  return Number((await readProc("/proc/loadavg")).split(" ")[0] || NaN);
}

/** The machine's load over a stretch of time. */
export interface LoadReport {
  /** 1-minute load averages sampled during it. */
  samples: number[];
  /** Share of the machine's CPU time that was busy (0..1). */
  busy: number;
  /** Busy CPU time of the whole machine, ms (all cores). */
  busyMs: number;
  /** Wall time, ms. */
  elapsedMs: number;
}

/**
 * Samples the load average every `intervalMs` and reads the machine's busy
 * CPU time from /proc/stat at the start and at `stop()`.
 */
export async function sampleLoad(intervalMs: number): Promise<{ stop(): Promise<LoadReport> }> {
  const samples: number[] = [];
  const start = performance.now();
  const cpu0 = await machineCpu();
  let running = true;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (running) {
      const load = await loadAverage();
      if (Number.isFinite(load)) samples.push(load);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, intervalMs);
      });
    }
  })();
  return {
    async stop() {
      running = false;
      wake?.();
      await loop;
      const cpu1 = await machineCpu();
      const jiffies = cpu1.total - cpu0.total;
      return {
        samples,
        busy: (cpu1.busy - cpu0.busy) / jiffies,
        busyMs: ((cpu1.busy - cpu0.busy) * 1000) / USER_HZ,
        elapsedMs: performance.now() - start,
      };
    },
  };
}

/** A short description of the machine for the results file. */
export async function describeMachine(): Promise<string[]> {
  const info = await readProc("/proc/cpuinfo");
  const cpu = /model name\s*:\s*(.+)/.exec(info)?.[1]?.trim() ?? "unknown CPU";
  const memory = Deno.systemMemoryInfo();
  return [
    `CPU: ${navigator.hardwareConcurrency} cores (${cpu})`,
    `Memory: ${(memory.total / 2 ** 30).toFixed(1)} GiB`,
    `OS: ${Deno.build.os} ${Deno.osRelease()} (${Deno.build.arch})`,
    `Deno: ${Deno.version.deno} (V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript})`,
    `Date: ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`,
  ];
}

/** How to start the peer MCP server over stdio. */
export interface PeerCommand {
  /** Executable. */
  command: string;
  /** Its arguments. */
  args: string[];
  /** How it is run, for the results file. */
  label: string;
}

/** The version of the npm package `ollama-mcp` the benchmark compares with. */
export const PEER_VERSION = "2.1.0";

async function run(command: string, args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Installs `ollama-mcp` into a cache directory under the system's temp dir
 * (once) and returns how to run it with Node; falls back to running it with
 * Deno (`-A`, for the peer only) when Node or npm are missing.
 */
export async function preparePeer(): Promise<PeerCommand> {
  const dir = `${Deno.env.get("TMPDIR") ?? "/tmp"}/rune-bench-peer-${PEER_VERSION}`;
  const entry = `${dir}/node_modules/ollama-mcp/dist/index.js`;
  const hasNode = await run("node", ["--version"]);
  if (hasNode) {
    let installed = false;
    try {
      installed = Deno.statSync(entry).isFile;
    } catch {
      installed = false;
    }
    if (!installed) {
      await Deno.mkdir(dir, { recursive: true });
      installed = await run("npm", [
        "install",
        "--prefix",
        dir,
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        `ollama-mcp@${PEER_VERSION}`,
      ]);
    }
    if (installed) {
      const version = new TextDecoder().decode(
        (await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output()).stdout,
      ).trim();
      return { command: "node", args: [entry], label: `Node ${version}, npm install` };
    }
  }
  return {
    command: Deno.execPath(),
    args: ["run", "-A", "--quiet", `npm:ollama-mcp@${PEER_VERSION}`],
    label: `Deno ${Deno.version.deno} (npm: specifier)`,
  };
}

/**
 * A clean environment for the processes under test: what Deno needs to
 * find its cache, plus `extra`. A developer's `OLLAMA_HOST`, cloud keys or
 * `~/.config/rune/config.json` must not change what is measured.
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    NO_COLOR: "1",
    XDG_CONFIG_HOME: "/nonexistent/rune-bench",
  };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/**
 * {@linkcode cleanEnv} plus what the launchers (`deno task serve`, the
 * installed `rune`) put in the daemon's environment, so Rune is measured as
 * users run it.
 */
export function runeEnv(extra: Record<string, string> = {}): Record<string, string> {
  return cleanEnv({ ...LAUNCH_ENV, ...extra });
}

/** The permissions `deno task serve` grants the daemon. */
export const RUNE_PERMISSIONS: readonly string[] = DEV_PERMISSIONS;

/** The daemon's entry point and config. */
export const RUNE_MAIN = `${ROOT}src/main.ts`;
const RUNE_CONFIG = `${ROOT}deno.json`;

/** A running network daemon. */
export interface RuneDaemon {
  /** Base URL, `http://127.0.0.1:PORT`. */
  url: string;
  /** The bound port. */
  port: number;
  /** Process id. */
  pid: number;
  /** What the daemon wrote to stderr (capped). */
  stderr(): string;
  /** SIGTERM (SIGKILL after 15 s), then waits for the exit. Idempotent. */
  stop(): Promise<void>;
}

/** Options of the functions that start Rune. */
export interface RuneOptions {
  /** More `rune serve` arguments. Default none. */
  extra?: string[];
  /** Flags for `deno run` (e.g. `--cpu-prof` in `bench/cpu.ts`). Default none. */
  denoFlags?: string[];
  /** Environment variables beyond {@linkcode cleanEnv}'s (e.g. cloud keys). Default none. */
  env?: Record<string, string>;
}

/**
 * Starts `rune serve --port 0 --ollama-host HOST --log-level info ...extra`
 * with the daemon's own permissions and waits for its `listening on` line.
 */
export async function startRuneDaemon(
  ollamaHost: string,
  options: RuneOptions = {},
): Promise<RuneDaemon> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      RUNE_CONFIG,
      ...RUNE_PERMISSIONS,
      ...(options.denoFlags ?? []),
      RUNE_MAIN,
      "serve",
      "--port",
      "0",
      "--ollama-host",
      ollamaHost,
      "--log-level",
      "info",
      ...(options.extra ?? []),
    ],
    cwd: ROOT,
    env: runeEnv(options.env),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const listening = Promise.withResolvers<string>();
  const drained = (async () => {
    try {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        if (text.length < 50_000) text += chunk;
        const url = /listening on (http:\/\/[\d.]+:\d+)/.exec(text)?.[1];
        if (url) listening.resolve(url);
      }
    } catch {
      // Closed.
    }
    listening.reject(new Error(`rune exited before listening:\n${text}`));
  })();
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  let url: string;
  try {
    url = await listening.promise;
  } finally {
    clearTimeout(timer);
  }
  let stopping: Promise<void> | undefined;
  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid,
    stderr: () => text,
    stop() {
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already gone.
        }
        const kill = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Already gone.
          }
        }, 15_000);
        await child.status;
        clearTimeout(kill);
        await drained;
      })();
      return stopping;
    },
  };
}

/** Arguments of `deno` for `rune serve --stdio` against `ollamaHost`. */
export function runeStdioArgs(
  ollamaHost: string,
  options: Pick<RuneOptions, "denoFlags"> = {},
): string[] {
  return [
    "run",
    "--config",
    RUNE_CONFIG,
    ...RUNE_PERMISSIONS,
    ...(options.denoFlags ?? []),
    RUNE_MAIN,
    "serve",
    "--stdio",
    "--ollama-host",
    ollamaHost,
    "--log-level",
    "warning",
  ];
}

/** Samples a process's RSS in the background; `stop()` resolves to the peak seen. */
export function sampleRss(pid: number, intervalMs: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const rss = await rssBytes(pid);
      if (Number.isFinite(rss)) peak = Math.max(peak, rss);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/** The fetch-floor process (`bench/fetch_floor.ts`). */
export interface FloorProcess {
  /** Process id. */
  pid: number;
  /** Makes `count` streamed requests one after another; resolves when they are done. */
  run(count: number): Promise<void>;
  /** Ends its input and waits for the exit. */
  stop(): Promise<void>;
}

/** Starts `bench/fetch_floor.ts` against the Ollama double at `ollamaUrl`. */
export function startFetchFloor(ollamaUrl: string): FloorProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-net=127.0.0.1", `${ROOT}bench/fetch_floor.ts`, ollamaUrl],
    cwd: ROOT,
    env: cleanEnv(),
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const encoder = new TextEncoder();
  let buffer = "";
  async function nextLine(): Promise<string> {
    while (!buffer.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("fetch_floor.ts exited");
      buffer += value;
    }
    const at = buffer.indexOf("\n");
    const line = buffer.slice(0, at);
    buffer = buffer.slice(at + 1);
    return line;
  }
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid,
    async run(count) {
      await writer.write(encoder.encode(`${count}\n`));
      const line = await nextLine();
      if (line !== `done ${count}`) throw new Error(`fetch_floor.ts answered ${line}`);
    },
    stop() {
      stopping ??= (async () => {
        await writer.close().catch(() => {});
        const kill = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Already gone.
          }
        }, 5_000);
        await child.status;
        clearTimeout(kill);
        await lines.cancel().catch(() => {});
      })();
      return stopping;
    },
  };
}
