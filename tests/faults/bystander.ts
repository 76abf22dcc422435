/**
 * A bystander client in its own process, so that the test's own work
 * (building and sending megabytes of hostile JSON) cannot delay it: it
 * sends one request at a time and records each round trip, until told to
 * stop. Run as `deno run --allow-net bystander.ts KIND URL`:
 *
 * - `ws`: a WebSocket session (2025 handshake) sending `ping`;
 * - `discover`: 2026-07-28 `server/discover` POSTs on Streamable HTTP.
 *
 * Commands are lines on stdin: `mark` ends a phase, `stop` stops. Replies
 * are JSON lines on stdout: `"ready"` after the first round trip, a
 * {@linkcode BystanderReport} of the phase for each `mark`, and one of the
 * whole run after `stop` (or `{ "error": ... }`).
 *
 * {@linkcode startBystander} runs it from a test.
 *
 * @module
 */

import { splitLines } from "../../src/providers/ndjson.ts";

/** The figures of a run or a phase. */
export interface BystanderReport {
  /** Round trips completed. */
  rounds: number;
  /** The slowest round trip in milliseconds. */
  maxMs: number;
  /** The 99th percentile in milliseconds. */
  p99Ms: number;
}

let stopped = false;

async function pingOverWebSocket(url: string, round: (fn: () => Promise<void>) => Promise<void>) {
  const socket = new WebSocket(url, "mcp");
  const replies: ((data: string) => void)[] = [];
  socket.onmessage = (event) => replies.shift()?.(event.data);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error("bystander: cannot open the WebSocket"));
  });
  const request = (message: Record<string, unknown>) =>
    new Promise<string>((resolve) => {
      replies.push(resolve);
      socket.send(JSON.stringify(message));
    });
  await request({
    jsonrpc: "2.0",
    id: 0,
    method: "initialize",
    params: {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "bystander", version: "1" },
    },
  });
  socket.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
  let id = 0;
  while (!stopped) {
    await round(async () => {
      const reply = JSON.parse(await request({ jsonrpc: "2.0", id: ++id, method: "ping" }));
      if (reply.id !== id) throw new Error(`bystander: reply ${reply.id} to ping ${id}`);
    });
  }
  await new Promise((resolve) => {
    socket.onclose = resolve;
    socket.close();
  });
}

async function discoverOverHttp(url: string, round: (fn: () => Promise<void>) => Promise<void>) {
  const body = JSON.stringify({
    jsonrpc: "2.0",
    id: "discover",
    method: "server/discover",
    params: {
      _meta: {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { name: "bystander", version: "1" },
        "io.modelcontextprotocol/clientCapabilities": {},
      },
    },
  });
  while (!stopped) {
    await round(async () => {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-method": "server/discover",
          "mcp-protocol-version": "2026-07-28",
        },
        body,
      });
      const reply = await response.json();
      if (!reply.result?.supportedVersions) throw new Error(`bystander: ${JSON.stringify(reply)}`);
    });
  }
}

/** Round trips since the last `"mark"`: the figures of one phase of the test. */
let phase: number[] = [];

/** The figures of `times` (the slowest and the 99th percentile). */
function report(times: number[]): BystanderReport {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    rounds: sorted.length,
    maxMs: sorted.at(-1) ?? 0,
    p99Ms: sorted[Math.floor(sorted.length * 0.99)] ?? 0,
  };
}

/** Writes one JSON line on stdout. */
function say(message: unknown): void {
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(message) + "\n"));
}

async function main(kind: string, url: string): Promise<void> {
  const times: number[] = [];
  const round = async (fn: () => Promise<void>) => {
    const started = performance.now();
    await fn();
    const ms = performance.now() - started;
    times.push(ms);
    phase.push(ms);
    if (times.length === 1) {
      phase = [];
      say("ready");
    }
  };
  const running = kind === "ws" ? pingOverWebSocket(url, round) : discoverOverHttp(url, round);
  running.catch(() => {});
  const commands = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
    splitLines(),
  );
  for await (const command of commands) {
    if (command === "mark") {
      say(report(phase));
      phase = [];
    } else if (command === "stop") {
      break;
    }
  }
  stopped = true;
  try {
    await running;
    // The first round trip warms code paths up; it is no bystander figure.
    say(report(times.slice(1)));
  } catch (error) {
    say({ error: String(error) });
  }
}

/** A running bystander process. */
export interface Bystander {
  /** The figures since the previous mark (or since it was ready). */
  mark(): Promise<BystanderReport>;
  /** Stops it; the figures of the whole run. */
  stop(): Promise<BystanderReport>;
  /** Kills it (cleanup after a failure). */
  kill(): Promise<void>;
}

/** Starts a bystander of `kind` against `url` and resolves once its first round trip is done. */
export async function startBystander(kind: "ws" | "discover", url: string): Promise<Bystander> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", new URL(import.meta.url).pathname, kind, url],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines())
    .getReader();
  const input = child.stdin.getWriter();
  const next = async (): Promise<unknown> => {
    const { value, done } = await lines.read();
    if (done) throw new Error(`bystander ${kind} exited`);
    const message = JSON.parse(value);
    if (typeof message === "object" && message !== null && "error" in message) {
      throw new Error(String(message.error));
    }
    return message;
  };
  const send = (command: string) => input.write(new TextEncoder().encode(command + "\n"));
  let ended: Promise<void> | undefined;
  const end = () =>
    ended ??= (async () => {
      await input.close().catch(() => {});
      while (!(await lines.read().catch(() => ({ done: true }))).done) {
        // Drain what is left so the process can exit.
      }
      await child.status;
    })();
  const kill = async () => {
    try {
      child.kill();
    } catch {
      // Already gone.
    }
    await end();
  };
  let ready: unknown;
  try {
    ready = await next();
    if (ready !== "ready") throw new Error(`bystander ${kind}: ${JSON.stringify(ready)}`);
  } catch (error) {
    await kill();
    throw error;
  }
  return {
    async mark() {
      await send("mark");
      return await next() as BystanderReport;
    },
    async stop() {
      await send("stop");
      const report = await next() as BystanderReport;
      await end();
      return report;
    },
    kill,
  };
}

if (import.meta.main) await main(Deno.args[0], Deno.args[1]);
