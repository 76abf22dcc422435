/**
 * Shared helpers of the fault tests: a daemon process that can speak stdio
 * and the network at once, raw line and WebSocket drivers that see every
 * message on the wire, a seeded PRNG and an overall bound for awaited
 * events.
 *
 * The daemon is spawned here rather than through `tests/daemon.ts` so the
 * fault tests can hold its stdin/stdout (stdio fuzzing) and its network
 * endpoints in one process.
 *
 * @module
 */

import assert from "node:assert/strict";
import { splitLines } from "../../src/providers/ndjson.ts";
import { LAUNCH_ENV } from "../../scripts/permissions.ts";
import { resultText } from "../mcp_calls.ts";
import { serveArgs } from "../stdio_client.ts";

/** A JSON-RPC message as read from the wire. */
export type Message = Record<string, unknown> & {
  id?: unknown;
  method?: string;
  error?: { code: number; message: string };
  result?: unknown;
};

/** The newline-delimited JSON-RPC channel on the daemon's stdin/stdout. */
export interface LineChannel {
  /** Writes `message` as one JSON line. */
  send(message: unknown): Promise<void>;
  /** Writes `text` as is (callers add the newline). */
  sendRaw(text: string): Promise<void>;
  /** The next stdout message; every stdout line must be JSON. */
  next(): Promise<Message>;
}

/** A running daemon process. */
export interface FaultDaemon {
  /** The process. */
  readonly child: Deno.ChildProcess;
  /** `http://127.0.0.1:PORT` when the network endpoints are on. */
  readonly url: string;
  /** The port of {@linkcode FaultDaemon.url}. */
  readonly port: number;
  /** `ws://127.0.0.1:PORT/ws`. */
  readonly wsUrl: string;
  /** `http://127.0.0.1:PORT/mcp`. */
  readonly mcpUrl: string;
  /** The stdio channel when started with `stdio: true`. */
  readonly stdio: LineChannel | undefined;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** Everything written to stderr so far. */
  stderr(): string;
  /**
   * Resolves once stderr has a line matching `pattern` for which `accept`
   * (given the match) is true; rejects if the daemon exits first.
   */
  waitForLine(pattern: RegExp, accept?: (match: RegExpExecArray) => boolean): Promise<void>;
  /** Sends SIGTERM, drains the pipes, closes stdin and resolves to the exit status. */
  stop(): Promise<Deno.CommandStatus>;
}

/** Options of {@linkcode spawnDaemon}. */
export interface SpawnOptions {
  /** Serve MCP on stdin/stdout too. */
  stdio?: boolean;
  /** Serve the network endpoints on port 0 (default true). */
  network?: boolean;
  /**
   * Further `serve` flags. With the network on, keep `--log-level` at
   * `info` or `debug`: the port is learnt from the `listening on` line.
   */
  args?: string[];
}

const LISTENING = /listening on (http:\/\/\S+)/;

/**
 * Starts `src/main.ts serve` against `ollamaHost` and resolves once it
 * listens (network) or has started (stdio only).
 */
export async function spawnDaemon(
  ollamaHost: string,
  options: SpawnOptions = {},
): Promise<FaultDaemon> {
  const network = options.network ?? true;
  const stdio = options.stdio ?? false;
  const child = new Deno.Command(Deno.execPath(), {
    args: serveArgs(ollamaHost, [
      ...(stdio ? ["--stdio"] : []),
      ...(network ? ["--port", "0"] : []),
      ...(options.args ?? []),
    ]),
    stdin: stdio ? "piped" : "null",
    stdout: stdio ? "piped" : "null",
    stderr: "piped",
    // As the launchers start it (DENO_USR2_MEMORY_TRIM: memory is released after load).
    env: { ...LAUNCH_ENV, NO_COLOR: "1" },
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  let text = "";
  const seen = Promise.withResolvers<string>();
  type LineWaiter = { test: (line: string) => boolean; done: PromiseWithResolvers<void> };
  const waiters = new Set<LineWaiter>();
  let partial = "";
  const drained = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const match = LISTENING.exec(text);
      if (match) seen.resolve(match[1]);
      const lines = (partial + chunk).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        for (const waiter of waiters) {
          if (waiter.test(line)) {
            waiters.delete(waiter);
            waiter.done.resolve();
          }
        }
      }
    }
    seen.reject(new Error(`the daemon exited before listening; stderr:\n${text}`));
    for (const waiter of waiters) waiter.done.reject(new Error("the daemon exited"));
    waiters.clear();
  })();
  function waitForLine(
    pattern: RegExp,
    accept: (match: RegExpExecArray) => boolean = () => true,
  ): Promise<void> {
    const done = Promise.withResolvers<void>();
    const test = (line: string) => {
      const match = pattern.exec(line);
      return match !== null && accept(match);
    };
    // Lines already read count too.
    if (text.split("\n").slice(0, -1).some(test)) done.resolve();
    else if (exited) done.reject(new Error("the daemon exited"));
    else waiters.add({ test, done });
    return done.promise;
  }

  let channel: LineChannel | undefined;
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  let lines: ReadableStreamDefaultReader<string> | undefined;
  if (stdio) {
    const encoder = new TextEncoder();
    const out = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines());
    const input = child.stdin.getWriter();
    const reader = out.getReader();
    writer = input;
    lines = reader;
    channel = {
      send: (message) => input.write(encoder.encode(JSON.stringify(message) + "\n")),
      sendRaw: (raw) => input.write(encoder.encode(raw)),
      async next() {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stdout ended; stderr:\n${text}`);
        return JSON.parse(value);
      },
    };
  }

  let stopping: Promise<Deno.CommandStatus> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      if (lines) {
        // Drain stdout so the process is never blocked on a full pipe.
        while (!(await lines.read().catch(() => ({ done: true }))).done) {
          // discard
        }
      }
      const result = await status;
      // Closing stdin earlier would race EOF against SIGTERM; now it only releases the pipe.
      await writer?.close().catch(() => {});
      await drained;
      return result;
    })();

  let url = "";
  if (network) {
    try {
      url = new URL(await within(30_000, "the daemon's listening line", seen.promise)).origin;
    } catch (error) {
      await stop();
      throw error;
    }
  } else {
    seen.promise.catch(() => {});
  }
  return {
    child,
    url,
    port: url ? Number(new URL(url).port) : 0,
    wsUrl: url.replace(/^http/, "ws") + "/ws",
    mcpUrl: url + "/mcp",
    stdio: channel,
    get exited() {
      return exited;
    },
    stderr: () => text,
    waitForLine,
    stop,
  };
}

/** A raw browser-style WebSocket with a queue of parsed messages. */
export interface RawSocket {
  /** The socket. */
  readonly socket: WebSocket;
  /** Resolves with the close event. */
  readonly closed: Promise<CloseEvent>;
  /** Sends a message as one JSON text frame. */
  send(message: unknown): void;
  /** The next received message; rejects once the socket closed with nothing queued. */
  next(): Promise<Message>;
  /** Closes the socket and waits for the close event. */
  close(): Promise<CloseEvent>;
}

/** Opens a WebSocket with subprotocol `mcp` and resolves once it is open. */
export async function openSocket(url: string): Promise<RawSocket> {
  const socket = new WebSocket(url, "mcp");
  const queue: Message[] = [];
  let wake: (() => void) | undefined;
  let isClosed = false;
  const closed = new Promise<CloseEvent>((resolve) => {
    socket.onclose = (event) => {
      isClosed = true;
      wake?.();
      resolve(event);
    };
  });
  socket.onmessage = (event) => {
    queue.push(JSON.parse(event.data));
    wake?.();
  };
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`cannot open ${url}`));
  });
  socket.onerror = () => {};
  return {
    socket,
    closed,
    send: (message) => socket.send(JSON.stringify(message)),
    async next() {
      while (queue.length === 0) {
        if (isClosed) throw new Error("socket closed");
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      return queue.shift()!;
    },
    close() {
      if (socket.readyState < WebSocket.CLOSING) socket.close();
      return closed;
    },
  };
}

/** The `initialize` request every raw session starts with. */
export function initializeRequest(id: string | number): Message {
  return {
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: {
      protocolVersion: "2025-06-18",
      capabilities: {},
      clientInfo: { name: "rune-faults", version: "1" },
    },
  };
}

/** The notification that completes the handshake. */
export const INITIALIZED: Message = { jsonrpc: "2.0", method: "notifications/initialized" };

/**
 * Awaits `promise`, failing with `what` if it is still pending after `ms`.
 * This bounds a test that waits for an event; it asserts no timing.
 */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The resident set size of process `pid` in bytes: `VmRSS` of
 * `/proc/PID/status`, read through `cat` because Deno only lets a process
 * with every permission read another process's `/proc` entries.
 */
export async function rssBytes(pid: number): Promise<number> {
  const output = await new Deno.Command("cat", {
    args: [`/proc/${pid}/status`],
    stderr: "null",
  }).output();
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(new TextDecoder().decode(output.stdout));
  if (!output.success || !match) throw new Error(`cannot read VmRSS of process ${pid}`);
  return Number(match[1]) * 1024;
}

/**
 * Calls tool `name` on `socket` and samples the resident memory of process
 * `pid` until the reply arrives (within `stepMs`); returns the tool result
 * and the peak RSS seen.
 */
export async function callSampled(
  socket: RawSocket,
  pid: number,
  id: number,
  name: string,
  args: Record<string, unknown>,
  stepMs = 60_000,
): Promise<{ isError: boolean; text: string; peakRss: number }> {
  socket.send({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
  let done = false;
  let peakRss = 0;
  const sampling = (async () => {
    // Sampling measures; the test waits for the reply, not for a number of samples.
    while (!done) peakRss = Math.max(peakRss, await rssBytes(pid));
  })();
  let reply: { isError: boolean; text: string };
  try {
    for (;;) {
      const message = await within(stepMs, `reply to ${name}`, socket.next());
      if (message.id !== id) continue;
      const result = message.result as { isError?: boolean; content?: unknown };
      assert.ok(result, `a tool result, not ${JSON.stringify(message.error)}`);
      reply = { isError: result.isError === true, text: resultText(result) };
      break;
    }
  } finally {
    done = true;
    await sampling;
  }
  // The peak includes the sample in flight when the reply came and one taken after it (a
  // reply returned from inside the loop would miss both: it was read before they finished).
  return { ...reply, peakRss: Math.max(peakRss, await rssBytes(pid)) };
}

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
