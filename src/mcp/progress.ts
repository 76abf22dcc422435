/**
 * Streams generated text to an MCP client as `notifications/progress`.
 *
 * Deltas are coalesced: those that arrive together (from one network
 * read) go out in one notification, and while one notification is being
 * written (the transport's `send` resolves only when the bytes are
 * accepted), newer deltas accumulate and go out together in the next one.
 * Tokens that arrive apart go out one by one; a slow client gets fewer,
 * larger notifications. {@linkcode ProgressStream.pending} tells the producer how
 * much text waits, so it can stop reading upstream (see `relay` in
 * `server.ts`) and memory stays bounded when a client stops reading.
 *
 * @module
 */

import type { ProgressToken } from "@modelcontextprotocol/server";

/**
 * Microtask turns a notification waits for more deltas before it is sent.
 * A delta already read from the network reaches the relay through several
 * async generators (parser, provider, cache, limits, metrics), a few turns
 * each; waiting this many (microseconds, no timer) lets everything from one
 * read share a notification. Each notification costs the SDK a schema check
 * or two, so at full speed this took the relay from about 36,000 to about
 * 88,000 tokens/s, while tokens arriving one by one (2,000/s) still leave
 * within half a millisecond (`deno task bench`, relay sections).
 */
export const COALESCE_TURNS = 128;

/** Sends one progress notification; resolves when the transport accepted it. */
export type SendProgress = (params: {
  progressToken: ProgressToken;
  progress: number;
  message: string;
  _meta?: Record<string, unknown>;
}) => Promise<void>;

/** A coalescing progress stream. */
export interface ProgressStream {
  /** Queues a text delta (or a thinking delta with `kind: "thinking"`). */
  push(text: string, kind?: "text" | "thinking"): void;
  /** Resolves when everything pushed so far has been sent. */
  flush(): Promise<void>;
  /** Characters pushed but not yet handed to `send`. */
  readonly pending: number;
}

/** Options of {@linkcode createProgressStream}. */
export interface ProgressOptions {
  /** Called when a send fails (the stream keeps going without it). */
  onError?: (error: unknown) => void;
  /**
   * Hands out `progress` values; streams that share one (the models of a
   * compare call) share one strictly increasing sequence.
   * @default a counter of its own, from 1
   */
  counter?: ProgressCounter;
  /** Added to every notification's `_meta` (e.g. `{ model }`). */
  meta?: Record<string, unknown>;
}

/** A source of strictly increasing progress values. */
export interface ProgressCounter {
  /** The next value. */
  next(): number;
}

/** A counter from 1. */
export function createProgressCounter(): ProgressCounter {
  let count = 0;
  return { next: () => ++count };
}

/**
 * Creates a progress stream for `token`. The `progress` value counts the
 * deltas delivered so far, so it increases with every notification as the
 * MCP specification requires.
 */
export function createProgressStream(
  token: ProgressToken,
  send: SendProgress,
  options: ProgressOptions = {},
): ProgressStream {
  let text = "";
  let thinking = "";
  const counter = options.counter ?? createProgressCounter();
  let sending: Promise<void> | undefined;

  async function drain(): Promise<void> {
    // Deltas parsed from the same network read go out together: each one takes a few
    // microtask turns through the provider's generator layers to get here.
    for (let i = 0; i < COALESCE_TURNS; i++) await Promise.resolve();
    while (text !== "" || thinking !== "") {
      const message = text;
      const thought = thinking;
      text = "";
      thinking = "";
      // Taken right before the send call: notifications reach the wire in this order.
      const progress = counter.next();
      const meta = thought ? { ...options.meta, thinking: thought } : options.meta;
      try {
        await send({
          progressToken: token,
          progress,
          message,
          ...(meta && { _meta: meta }),
        });
      } catch (error) {
        options.onError?.(error);
      }
    }
    sending = undefined;
  }

  return {
    push(delta, kind = "text") {
      if (delta === "") return;
      if (kind === "thinking") thinking += delta;
      else text += delta;
      sending ??= drain();
    },
    async flush() {
      while (sending) await sending;
    },
    get pending() {
      return text.length + thinking.length;
    },
  };
}
