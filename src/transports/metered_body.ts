/**
 * A response body that meters what the client has not read yet.
 *
 * The SDK's Streamable HTTP transports enqueue SSE frames without waiting,
 * so a client that stops reading would make the daemon buffer without
 * bound. Rune passes their response body through {@linkcode createMeter}: it
 * drains the SDK's stream at once into a queue of its own whose size it
 * knows, hands bytes to the HTTP server only as fast as the client takes
 * them, and offers a {@linkcode Flow} that producers wait on (progress
 * notifications, see `mcp/server.ts`), which holds the model back exactly
 * as WebSocket backpressure does. A client that stays behind past the
 * grace period is cut off: the body is cancelled, which ends the exchange
 * and aborts its call.
 *
 * @module
 */

import type { Flow } from "../mcp/flow.ts";
import { ConnectionDropped } from "./connection_drop.ts";

/** Options of {@linkcode meterBody}. */
export interface MeterOptions {
  /**
   * Producers wait while more unread bytes than this are queued.
   * @default 1048576
   */
  highWaterMark?: number;
  /**
   * Unread bytes above which the grace period starts.
   * @default 8388608
   */
  hardCap?: number;
  /**
   * How long a client may stay above the hard cap, or leave a producer
   * waiting without reading anything, before it is cut off.
   * @default 10000
   */
  graceMs?: number;
  /** Called once when the client is cut off for not reading. */
  onStuck?: (queued: number) => void;
  /** Called once when the body ends early: the client went away or was cut off. */
  onCancel?: () => void;
  /** Called once when the body is over, completed or not. */
  onEnd?: () => void;
}

/** A metered body and its flow. */
export interface MeteredBody {
  /** The stream to answer with. */
  body: ReadableStream<Uint8Array>;
  /** Backpressure for producers writing into the source. */
  flow: Flow;
  /** Unread bytes queued now. */
  readonly queued: number;
}

/** A flow that is always ready, for responses that are not streamed. */
export const OPEN_FLOW: Flow = { ready: () => Promise.resolve() };

/**
 * Creates the flow first (producers may start before the response exists)
 * and attaches the source body once it is known.
 */
export function createMeter(options: MeterOptions = {}): {
  flow: Flow;
  attach(source: ReadableStream<Uint8Array>): MeteredBody;
  /** Releases waiting producers when the response turned out not to stream. */
  release(): void;
} {
  const highWaterMark = options.highWaterMark ?? 1024 * 1024;
  const hardCap = options.hardCap ?? 8 * 1024 * 1024;
  const graceMs = options.graceMs ?? 10_000;
  const queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  let failed = false;
  let released = false;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  let over = false;
  const waiters = new Set<() => void>();
  // The HTTP server's pending read, woken when bytes arrive.
  let wakeReader: (() => void) | undefined;
  let source: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;

  function end(): void {
    if (over) return;
    over = true;
    options.onEnd?.();
  }

  function wakeWaiters(): void {
    if (queued > highWaterMark && !failed && !released) return;
    for (const wake of waiters) wake();
    waiters.clear();
  }

  /** Starts, keeps or stops the grace clock after the queue changed. */
  function watch(): void {
    const stuck = queued > hardCap || (waiters.size > 0 && queued > highWaterMark);
    if (!stuck) {
      clearTimeout(graceTimer);
      graceTimer = undefined;
    } else if (graceTimer === undefined) {
      graceTimer = setTimeout(cutOff, graceMs);
    }
  }

  function cutOff(): void {
    graceTimer = undefined;
    // The source may have ended with bytes still queued (a large final result): a client that
    // does not read them is cut off all the same, or they would stay in memory for good.
    if (failed || over) return;
    options.onStuck?.(queued);
    fail();
  }

  /** Ends the exchange early: cancels the source, errors the body, releases producers. */
  function fail(): void {
    if (failed) return;
    failed = true;
    clearTimeout(graceTimer);
    graceTimer = undefined;
    queue.length = 0;
    queued = 0;
    source?.cancel().catch(() => {});
    try {
      // Deno drops the connection; `onError` knows this error and logs nothing.
      controller?.error(new ConnectionDropped("the client is not reading its response"));
    } catch {
      // Already closed.
    }
    wakeWaiters();
    wakeReader?.();
    options.onCancel?.();
    end();
  }

  async function drainSource(): Promise<void> {
    try {
      while (!failed) {
        const { done, value } = await source!.read();
        if (done) break;
        queue.push(value);
        queued += value.byteLength;
        watch();
        wakeReader?.();
      }
    } catch {
      // The source errored: end the body with what was queued.
    }
    ended = true;
    wakeReader?.();
  }

  const flow: Flow = {
    ready() {
      if (queued <= highWaterMark || failed || released) return Promise.resolve();
      return new Promise((resolve) => {
        waiters.add(resolve);
        watch();
      });
    },
  };

  return {
    flow,
    release() {
      released = true;
      wakeWaiters();
    },
    attach(stream) {
      source = stream.getReader();
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          controller = c;
        },
        async pull(c) {
          while (queue.length === 0 && !ended && !failed) {
            await new Promise<void>((resolve) => (wakeReader = resolve));
            wakeReader = undefined;
          }
          if (failed) return;
          const chunk = queue.shift();
          if (chunk === undefined) {
            c.close();
            end();
            return;
          }
          queued -= chunk.byteLength;
          c.enqueue(chunk);
          watch();
          wakeWaiters();
        },
        cancel() {
          // The client went away: end the exchange so its call is aborted.
          fail();
        },
      }, { highWaterMark: 0 });
      void drainSource();
      return {
        body,
        flow,
        get queued() {
          return queued;
        },
      };
    },
  };
}
