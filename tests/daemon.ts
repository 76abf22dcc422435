/**
 * Test helper: runs the real daemon (`src/main.ts serve`) as a process on
 * port 0 with the permissions `deno task serve` uses, and learns its
 * address from the `listening on` line it prints on stderr.
 *
 * @module
 */

import { splitLines } from "../src/providers/ndjson.ts";
import { childEnv, serveArgs } from "./stdio_client.ts";

/** A running daemon. */
export interface Daemon {
  /** Base URL, e.g. `http://127.0.0.1:PORT` (`https://` with `--tls-cert`). */
  url: string;
  /** WebSocket endpoint, `ws://127.0.0.1:PORT/ws`. */
  wsUrl: string;
  /** Streamable HTTP endpoint, `http://127.0.0.1:PORT/mcp`. */
  mcpUrl: string;
  /** The bound port. */
  port: number;
  /** The process. */
  child: Deno.ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves when stderr contains a line matching `pattern`. */
  waitForLog(pattern: RegExp): Promise<void>;
  /** Sends SIGTERM and resolves to the exit status. Idempotent. */
  stop(): Promise<Deno.CommandStatus>;
}

/** Options of {@linkcode startDaemon}. */
export interface DaemonOptions {
  /** Extra environment variables (e.g. `RUNE_TOKEN`). */
  env?: Record<string, string>;
  /** Give up waiting for the listening line after this long. Default 30 000 ms. */
  startTimeoutMs?: number;
}

/**
 * Starts `rune serve --port 0 --ollama-host HOST ARGS...` and resolves once
 * it listens. Throws with the daemon's stderr if it exits first.
 */
export async function startDaemon(
  ollamaHost: string,
  args: string[] = [],
  options: DaemonOptions = {},
): Promise<Daemon> {
  const child = new Deno.Command(Deno.execPath(), {
    args: serveArgs(ollamaHost, ["--port", "0", ...args]),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    clearEnv: true,
    env: childEnv(options.env),
  }).spawn();
  let text = "";
  const watchers = new Set<{ pattern: RegExp; resolve: () => void }>();
  // Keep reading stderr for the daemon's whole life so the pipe never fills.
  const reading = (async () => {
    for await (
      const line of child.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines())
    ) {
      text += line + "\n";
      for (const watcher of watchers) {
        if (watcher.pattern.test(line)) {
          watchers.delete(watcher);
          watcher.resolve();
        }
      }
    }
  })();
  const waitForLog = (pattern: RegExp) => {
    if (text.split("\n").some((line) => pattern.test(line))) return Promise.resolve();
    return new Promise<void>((resolve) => watchers.add({ pattern, resolve }));
  };
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    waitForLog(/listening on https?:\/\//).then(() => "listening" as const),
    child.status.then(() => "exited" as const),
    new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (outcome !== "listening") {
    if (outcome === "timeout") child.kill("SIGKILL");
    await child.status;
    await reading;
    throw new Error(`daemon did not start (${outcome}):\n${text}`);
  }
  const match = /listening on (https?:\/\/[^\s]+?):(\d+)/.exec(text)!;
  const port = Number(match[2]);
  const url = `${match[1]}:${port}`;
  let stopped: Promise<Deno.CommandStatus> | undefined;
  return {
    url,
    wsUrl: `${url.replace(/^http/, "ws")}/ws`,
    mcpUrl: `${url}/mcp`,
    port,
    child,
    stderr: () => text,
    waitForLog,
    stop() {
      stopped ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // Already exited.
        }
        const status = await child.status;
        await reading;
        return status;
      })();
      return stopped;
    },
  };
}
