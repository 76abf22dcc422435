/**
 * Lean JSON-RPC clients for the benchmark: raw MCP over WebSocket, over a
 * child process's stdin/stdout, and over Streamable HTTP, in either
 * protocol era.
 *
 * They skip the SDK client on purpose: it validates every message with zod
 * and dispatches notifications a microtask late, which would put client
 * cost (and dropped progress notifications) into server measurements.
 * Every client speaks the same small interface so one scenario can drive
 * all transports and the peer alike.
 *
 * Eras: a `legacy` client opens a 2025 session with `initialize`; a
 * `modern` client (2026-07-28, stateless) never initializes and puts the
 * `_meta` envelope (protocol version, client capabilities, client info) on
 * every request, and over Streamable HTTP posts without a session, with the
 * `mcp-method` and `mcp-name` headers. Over stdio and WebSocket the first
 * message decides the era; {@linkcode open} sends `server/discover` first,
 * as the SDK v2 and Vercel AI SDK clients do.
 *
 * @module
 */

import { wallNow } from "./stats.ts";

/** The protocol eras: 2025 sessions (`initialize`) and 2026-07-28 (stateless). */
export type Era = "legacy" | "modern";

/** The protocol version each era announces. */
export const ERA_VERSION: Readonly<Record<Era, string>> = {
  legacy: "2025-06-18",
  modern: "2026-07-28",
};

/** The protocol version the legacy clients announce. */
export const PROTOCOL_VERSION = ERA_VERSION.legacy;

/** The client's name in `initialize` and the 2026-07-28 envelope. */
const CLIENT_INFO = { name: "rune-bench", version: "1.0.0" };

/** The `_meta` envelope every 2026-07-28 request carries. */
export const ENVELOPE: Readonly<Record<string, unknown>> = {
  "io.modelcontextprotocol/protocolVersion": ERA_VERSION.modern,
  "io.modelcontextprotocol/clientCapabilities": {},
  "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
};

/** Options shared by the client constructors. */
export interface ClientOptions {
  /**
   * The protocol era the client speaks.
   * @default "legacy"
   */
  era?: Era;
}

/** A JSON-RPC message as received. */
export interface RpcMessage {
  /** Request id (responses). */
  id?: number | string;
  /** Method (requests and notifications). */
  method?: string;
  /** Parameters. */
  params?: Record<string, unknown>;
  /** Result of a successful request. */
  result?: Record<string, unknown>;
  /** Error of a failed request. */
  error?: { code: number; message: string };
}

/** Receives a progress notification's params and the wall-clock time it arrived. */
export type ProgressHandler = (params: Record<string, unknown>, receivedAt: number) => void;

/** Per-request options. */
export interface RequestOptions {
  /** Ask for progress notifications and pass them here. */
  onProgress?: ProgressHandler;
  /** Called with the request id right after it was sent. */
  onSent?: (id: number) => void;
}

/** A connected MCP client. */
export interface RpcClient {
  /** The protocol era it speaks. */
  readonly era: Era;
  /** Sends a request and resolves with its result (rejects on a JSON-RPC error). */
  request(
    method: string,
    params?: Record<string, unknown>,
    options?: RequestOptions,
  ): Promise<Record<string, unknown>>;
  /** Sends a notification. */
  notify(method: string, params?: Record<string, unknown>): Promise<void>;
  /** Closes the connection. */
  close(): Promise<void>;
}

interface Pending {
  resolve(result: Record<string, unknown>): void;
  reject(error: Error): void;
  progressToken?: string;
}

/** Shared request/response bookkeeping of the clients. */
class Dispatcher {
  #nextId = 1;
  #pending = new Map<number | string, Pending>();
  #progress = new Map<string, ProgressHandler>();
  #envelope: Readonly<Record<string, unknown>> | undefined;

  constructor(era: Era) {
    this.#envelope = era === "modern" ? ENVELOPE : undefined;
  }

  /** Registers a request and returns its message text and result promise. */
  prepare(
    method: string,
    params: Record<string, unknown> | undefined,
    options: RequestOptions | undefined,
  ): { id: number; text: string; result: Promise<Record<string, unknown>> } {
    const id = this.#nextId++;
    let body = params;
    let progressToken: string | undefined;
    if (options?.onProgress) {
      progressToken = `p${id}`;
      this.#progress.set(progressToken, options.onProgress);
    }
    if (this.#envelope !== undefined || progressToken !== undefined) {
      body = { ...params, _meta: { ...this.#envelope, ...(progressToken && { progressToken }) } };
    }
    const result = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, progressToken });
    });
    const text = JSON.stringify({ jsonrpc: "2.0", id, method, ...(body && { params: body }) });
    return { id, text, result };
  }

  /** Handles one received message text. */
  receive(text: string, receivedAt = wallNow()): void {
    const message = JSON.parse(text) as RpcMessage;
    if (message.method === "notifications/progress" && message.params) {
      const handler = this.#progress.get(String(message.params.progressToken));
      handler?.(message.params, receivedAt);
      return;
    }
    if (message.id === undefined || message.method !== undefined) return;
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    if (pending.progressToken) this.#progress.delete(pending.progressToken);
    if (message.error) {
      pending.reject(new Error(`JSON-RPC error ${message.error.code}: ${message.error.message}`));
    } else {
      pending.resolve(message.result ?? {});
    }
  }

  /** Fails every pending request. */
  failAll(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#progress.clear();
  }

  /** Forgets a request (e.g. cancelled: it gets no reply). */
  forget(id: number): void {
    const pending = this.#pending.get(id);
    if (pending?.progressToken) this.#progress.delete(pending.progressToken);
    this.#pending.delete(id);
  }
}

/** Initializes a 2025 session over `client`. */
export async function initialize(client: RpcClient): Promise<void> {
  await client.request("initialize", {
    protocolVersion: PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: CLIENT_INFO,
  });
  await client.notify("notifications/initialized");
}

/**
 * Opens `client` in its era: `initialize` (legacy), or `server/discover`
 * (modern; it checks the server offers 2026-07-28).
 */
export async function open(client: RpcClient): Promise<void> {
  if (client.era === "legacy") return await initialize(client);
  const { supportedVersions } = await client.request("server/discover") as {
    supportedVersions?: string[];
  };
  if (!supportedVersions?.includes(ERA_VERSION.modern)) {
    throw new Error(`server/discover does not offer ${ERA_VERSION.modern}: ${supportedVersions}`);
  }
}

/** A client that can cancel a request it sent. */
export interface CancellingClient extends RpcClient {
  /** Cancels request `id` the way the transport and era do it, and forgets it. */
  cancel(id: number): void;
}

/** A WebSocket client; `cancel` sends `notifications/cancelled`. */
export type WsClient = CancellingClient;

/** Connects to `url` (ws://.../ws) with subprotocol `mcp`; not yet opened. */
export function connectWebSocket(url: string, options: ClientOptions = {}): Promise<WsClient> {
  const era = options.era ?? "legacy";
  const socket = new WebSocket(url, "mcp");
  const dispatcher = new Dispatcher(era);
  socket.onmessage = (event) => dispatcher.receive(event.data as string);
  const closed = new Promise<void>((resolve) => {
    socket.onclose = () => {
      dispatcher.failAll(new Error("WebSocket closed"));
      resolve();
    };
  });
  const client: WsClient = {
    era,
    request(method, params, options) {
      const { id, text, result } = dispatcher.prepare(method, params, options);
      socket.send(text);
      options?.onSent?.(id);
      return result;
    },
    notify(method, params) {
      socket.send(JSON.stringify({ jsonrpc: "2.0", method, ...(params && { params }) }));
      return Promise.resolve();
    },
    cancel(id) {
      dispatcher.forget(id);
      socket.send(JSON.stringify({
        jsonrpc: "2.0",
        method: "notifications/cancelled",
        params: { requestId: id, reason: "benchmark cancel" },
      }));
    },
    async close() {
      if (socket.readyState < WebSocket.CLOSING) socket.close(1000);
      await closed;
    },
  };
  return new Promise((resolve, reject) => {
    socket.onopen = () => resolve(client);
    socket.onerror = () => reject(new Error(`cannot open WebSocket ${url}`));
  });
}

/** A server started as a child process and spoken to over stdio. */
export interface StdioClient extends RpcClient {
  /** The child's process id (for RSS readings). */
  readonly pid: number;
  /** What the child wrote to stderr (capped). */
  stderr(): string;
}

/** Options of {@linkcode spawnStdio}. */
export interface SpawnOptions extends ClientOptions {
  /**
   * The child's whole environment (nothing is inherited).
   * @default { NO_COLOR: "1" }
   */
  env?: Record<string, string>;
}

/** Spawns `command args` and speaks newline-delimited JSON-RPC on its stdin/stdout. */
export function spawnStdio(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): StdioClient {
  const era = options.era ?? "legacy";
  const child = new Deno.Command(command, {
    args,
    env: options.env ?? { NO_COLOR: "1" },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const dispatcher = new Dispatcher(era);
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let errText = "";
  const drainErr = (async () => {
    try {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        if (errText.length < 20_000) errText += chunk;
      }
    } catch {
      // Closed.
    }
  })();
  const reading = (async () => {
    let partial = "";
    try {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        const receivedAt = wallNow();
        partial += chunk;
        let newline: number;
        while ((newline = partial.indexOf("\n")) >= 0) {
          const line = partial.slice(0, newline);
          partial = partial.slice(newline + 1);
          if (line.trim() !== "") dispatcher.receive(line, receivedAt);
        }
      }
    } catch {
      // Closed.
    }
    dispatcher.failAll(new Error(`process ${command} closed stdout`));
  })();
  let closing: Promise<void> | undefined;
  return {
    era,
    pid: child.pid,
    stderr: () => errText,
    async request(method, params, options) {
      const { id, text, result } = dispatcher.prepare(method, params, options);
      await writer.write(encoder.encode(text + "\n"));
      options?.onSent?.(id);
      return await result;
    },
    async notify(method, params) {
      const text = JSON.stringify({ jsonrpc: "2.0", method, ...(params && { params }) });
      await writer.write(encoder.encode(text + "\n"));
    },
    close() {
      closing ??= (async () => {
        await writer.close().catch(() => {});
        const timer = setTimeout(() => {
          try {
            child.kill("SIGTERM");
          } catch {
            // Gone.
          }
        }, 2_000);
        const killTimer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // Gone.
          }
        }, 6_000);
        await child.status;
        clearTimeout(timer);
        clearTimeout(killTimer);
        await Promise.all([reading, drainErr]);
      })();
      return closing;
    },
  };
}

/**
 * A Streamable HTTP client; `cancel` aborts the POST of the request (its
 * response stream closes), which is how a 2026-07-28 client cancels.
 */
export type HttpClient = CancellingClient;

/**
 * Reads an SSE body as it arrives and hands each event's `data` (its
 * `data:` lines joined) to `onData` with the time its chunk arrived.
 */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  onData: (data: string, receivedAt: number) => void,
): Promise<void> {
  let buffer = "";
  let data: string[] = [];
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    const receivedAt = wallNow();
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
      if (line === "") {
        if (data.length) onData(data.join("\n"), receivedAt);
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
    }
  }
  if (data.length) onData(data.join("\n"), wallNow());
}

/**
 * Connects to a Streamable HTTP endpoint (`http://.../mcp`): a legacy
 * client initializes a session; a modern one posts every request on its
 * own, without a session, after a `server/discover`.
 */
export async function connectHttp(url: string, options: ClientOptions = {}): Promise<HttpClient> {
  const era = options.era ?? "legacy";
  const version = ERA_VERSION[era];
  const dispatcher = new Dispatcher(era);
  const inFlight = new Map<number, AbortController>();
  let sessionId: string | undefined;
  async function post(text: string, headers: Record<string, string>, id?: number): Promise<void> {
    const abort = new AbortController();
    if (id !== undefined) inFlight.set(id, abort);
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": version,
          ...(sessionId && { "mcp-session-id": sessionId }),
          ...headers,
        },
        body: text,
        signal: abort.signal,
      });
      if (era === "legacy") sessionId ??= response.headers.get("mcp-session-id") ?? undefined;
      const type = response.headers.get("content-type") ?? "";
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
      }
      if (type.includes("text/event-stream") && response.body) {
        await readEvents(response.body, (data, receivedAt) => dispatcher.receive(data, receivedAt));
      } else {
        const body = await response.text();
        if (type.includes("application/json") && body.trim() !== "") dispatcher.receive(body);
      }
    } finally {
      if (id !== undefined) inFlight.delete(id);
    }
  }
  /** The 2026-07-28 routing headers of a request (`mcp-name` for the methods that name something). */
  function routing(method: string, params: Record<string, unknown> | undefined) {
    if (era === "legacy") return {};
    const name = method === "tools/call" || method === "prompts/get"
      ? params?.name
      : method === "resources/read"
      ? params?.uri
      : undefined;
    return { "mcp-method": method, ...(typeof name === "string" && { "mcp-name": name }) };
  }
  const client: HttpClient = {
    era,
    async request(method, params, options) {
      const { id, text, result } = dispatcher.prepare(method, params, options);
      const sent = post(text, routing(method, params), id);
      options?.onSent?.(id);
      await sent;
      return await result;
    },
    async notify(method, params) {
      const text = JSON.stringify({ jsonrpc: "2.0", method, ...(params && { params }) });
      await post(text, routing(method, params));
    },
    cancel(id) {
      dispatcher.forget(id);
      inFlight.get(id)?.abort();
    },
    async close() {
      for (const abort of inFlight.values()) abort.abort();
      if (!sessionId) return;
      const response = await fetch(url, {
        method: "DELETE",
        headers: { "mcp-session-id": sessionId, "mcp-protocol-version": version },
      });
      await response.body?.cancel();
    },
  };
  await open(client);
  return client;
}
