/**
 * Process helpers for the benchmark: starting the Ollama double and the
 * token emitter as their own processes, reading a process's RSS and CPU
 * time from `/proc`, describing the machine, and installing the peer MCP
 * server (`ollama-mcp`) for the side-by-side comparison.
 *
 * @module
 */

import { DEV_PERMISSIONS } from "../scripts/permissions.ts";
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

/** CPU time (user + system) process `pid` has used, in milliseconds, or NaN. */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await readProc(`/proc/${pid}/stat`);
  if (stat === "") return NaN;
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux.
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

/**
 * Starts `rune serve --port 0 --ollama-host HOST --log-level info ...extra`
 * with the daemon's own permissions and waits for its `listening on` line.
 * `denoFlags` go to `deno run` (e.g. `--cpu-prof` in `bench/cpu.ts`).
 */
export async function startRuneDaemon(
  ollamaHost: string,
  extra: string[] = [],
  denoFlags: string[] = [],
): Promise<RuneDaemon> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      RUNE_CONFIG,
      ...RUNE_PERMISSIONS,
      ...denoFlags,
      RUNE_MAIN,
      "serve",
      "--port",
      "0",
      "--ollama-host",
      ollamaHost,
      "--log-level",
      "info",
      ...extra,
    ],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
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
export function runeStdioArgs(ollamaHost: string): string[] {
  return [
    "run",
    "--config",
    RUNE_CONFIG,
    ...RUNE_PERMISSIONS,
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
