/**
 * MCP over WebSocket (subprotocol `mcp`): one JSON-RPC message per text
 * frame, in either protocol era (see `mcp/connection.ts`), compatible with
 * the v1 SDK's `WebSocketClientTransport` and with a browser's
 * `new WebSocket(url, "mcp")`. The specification's own WebSocket transport
 * (SEP-1288) is still a draft; this endpoint is Rune's extension.
 *
 * Outbound backpressure: `send` waits while the socket's `bufferedAmount`
 * is above the high-water mark; a client that stays above the hard cap, or
 * leaves a send waiting, for longer than the grace period is closed with
 * 1008, which aborts its in-flight calls. Inbound: an oversized frame closes with 1009, a
 * malformed one gets a JSON-RPC error and the socket stays open.
 *
 * @module
 */

import type { McpServerFactory } from "@modelcontextprotocol/server";
import { type Connection, serveConnection } from "../mcp/connection.ts";
import {
  createMessageTransport,
  type MessageLimits,
  type MessageTransport,
} from "./message_transport.ts";

/** Limits of one WebSocket session. */
export interface WebSocketLimits extends MessageLimits {
  /** Largest accepted frame in characters. Default 32 MiB. */
  maxMessageSize?: number;
  /** `send` waits while more than this many bytes are queued. Default 1 MiB. */
  highWaterMark?: number;
  /** Queued bytes above which the grace period starts. Default 8 MiB. */
  hardCap?: number;
  /** How long a client may stay above the hard cap. Default 10 000 ms. */
  graceMs?: number;
  /** How often a waiting `send` looks at `bufferedAmount` again. Default 5 ms. */
  pollMs?: number;
}

/**
 * The time source of the queue checks. Tests pass a manual one so the
 * grace period is driven by the test, not by the machine's speed.
 */
export interface QueueClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `check` every `ms` until the returned function is called. */
  every(check: () => void, ms: number): () => void;
}

const SYSTEM_CLOCK: QueueClock = {
  now: () => performance.now(),
  every(check, ms) {
    const timer = setInterval(check, ms);
    return () => clearInterval(timer);
  },
};

/**
 * Memory a queued WebSocket message holds beyond its payload, measured on
 * Deno 2.9 (about 1.5 KB per send).
 */
export const MESSAGE_OVERHEAD = 1536;

/** WebSocket close codes used by Rune. */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
} as const;

/** A live WebSocket session. */
export interface WebSocketSession {
  /** The transport the MCP server is connected to. */
  transport: MessageTransport;
  /** Resolves when the socket has closed and the session is torn down. */
  closed: Promise<void>;
  /** Closes the socket with `code` (aborting in-flight calls). */
  close(code?: number, reason?: string): void;
}

/** Options of {@linkcode attachWebSocket}. */
export interface AttachOptions extends WebSocketLimits {
  /** Called with transport errors and closes caused by limits. */
  onError?: (error: Error) => void;
  /** Time source of the queue checks. Default: `performance.now` and `setInterval`. */
  clock?: QueueClock;
}

/**
 * Serves the instances `factory` builds on an upgraded `socket`. The
 * session ends when either side closes; then the pinned server instance is
 * closed, which aborts its in-flight calls.
 */
export function attachWebSocket(
  socket: WebSocket,
  factory: McpServerFactory,
  options: AttachOptions = {},
): WebSocketSession {
  const maxMessageSize = options.maxMessageSize ?? 32 * 1024 * 1024;
  const highWaterMark = options.highWaterMark ?? 1024 * 1024;
  const hardCap = options.hardCap ?? 8 * 1024 * 1024;
  const graceMs = options.graceMs ?? 10_000;
  const pollMs = options.pollMs ?? 5;
  const clock = options.clock ?? SYSTEM_CLOCK;
  let open = true;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  // Since when the queue has been above the hard cap (undefined: it is not).
  let overSince: number | undefined;
  // Payload queued at the previous check, to tell a draining queue from a stuck one.
  let lastPayload = 0;
  // Messages sent since the queue was last seen empty.
  let unsettled = 0;
  const waiting = new Set<() => void>();
  // Set once the transport exists (below); a close before that has nothing to end.
  // deno-lint-ignore prefer-const -- assigned after the functions that read it are defined
  let connection: Connection | undefined;
  let stopPolling: (() => void) | undefined;

  function close(code: number = CLOSE.normal, reason = ""): void {
    if (!open) return;
    open = false;
    try {
      socket.close(code, reason);
    } catch {
      // Already closing.
    }
    teardown();
  }

  function teardown(): void {
    open = false;
    // Deno keeps a closed WebSocket in its timer list until its idle-ping timer fires (up to
    // half the idle timeout after the last frame, 30 s by default); through these handlers it
    // would keep the whole session (transport, server instance, tools) alive that long.
    // Measured: 500 dropped clients every few seconds kept ~1,600 sessions (~14 MiB) reachable.
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = null;
    void connection?.close().catch(() => {});
    stopPolling?.();
    stopPolling = undefined;
    for (const wake of waiting) wake();
    waiting.clear();
    transport.ended();
    resolveClosed();
  }

  /**
   * Bytes the queue costs. `bufferedAmount` counts payload only, while each
   * queued message also holds about {@linkcode MESSAGE_OVERHEAD} bytes, so
   * messages sent since the queue was last empty are charged that too.
   */
  function queued(): number {
    const payload = socket.bufferedAmount;
    if (payload === 0) unsettled = 0;
    return payload + unsettled * MESSAGE_OVERHEAD;
  }

  function checkQueue(): void {
    const now = clock.now();
    const payload = socket.bufferedAmount;
    const cost = queued();
    // Stuck: over the hard cap, or a send waits on a queue that does not drain.
    if (cost > hardCap || (waiting.size > 0 && cost > highWaterMark)) {
      // A queue that shrank since the last look belongs to a client that still reads.
      if (overSince === undefined || payload < lastPayload) overSince = now;
      else if (now - overSince > graceMs) {
        options.onError?.(
          new Error(`client did not read ${payload} queued bytes for ${graceMs} ms; closing`),
        );
        close(CLOSE.policy, "client is not reading");
        return;
      }
    } else {
      overSince = undefined;
    }
    lastPayload = payload;
    if (cost <= highWaterMark) {
      for (const wake of waiting) wake();
      waiting.clear();
    }
    // Keep watching while anyone waits or the queue is over the hard cap (the grace must run).
    if (waiting.size === 0 && overSince === undefined) {
      stopPolling?.();
      stopPolling = undefined;
    }
  }

  function watch(): void {
    stopPolling ??= clock.every(checkQueue, pollMs);
  }

  function belowHighWater(): Promise<void> {
    if (queued() <= highWaterMark) return Promise.resolve();
    // There is no event for a draining send queue, so waiting senders poll.
    return new Promise((resolve) => {
      waiting.add(resolve);
      watch();
    });
  }

  const transport = createMessageTransport({
    async write(text) {
      await belowHighWater();
      if (!open) throw new Error("WebSocket closed");
      socket.send(text);
      unsettled++;
      if (queued() > hardCap) {
        checkQueue();
        if (open) watch();
      }
    },
    close(code, reason) {
      close(code, reason);
    },
  }, options);
  transport.onerror = options.onError;

  socket.onmessage = (event) => {
    if (typeof event.data !== "string") {
      // Binary frames are not part of MCP over WebSocket; decode as UTF-8 text rather than drop.
      const bytes = event.data instanceof ArrayBuffer ? new Uint8Array(event.data) : undefined;
      if (!bytes || bytes.byteLength > maxMessageSize) {
        close(CLOSE.tooBig, "message too big");
        return;
      }
      transport.receive(new TextDecoder().decode(bytes));
      return;
    }
    if (event.data.length > maxMessageSize) {
      options.onError?.(
        new Error(`frame of ${event.data.length} characters exceeds ${maxMessageSize}`),
      );
      close(CLOSE.tooBig, "message too big");
      return;
    }
    transport.receive(event.data);
  };
  socket.onclose = () => {
    if (open) teardown();
  };
  socket.onerror = () => {
    // onclose follows and tears the session down.
  };
  connection = serveConnection(transport, factory, { onError: options.onError });
  return { transport, closed, close };
}
