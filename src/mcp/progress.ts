/**
 * Streams generated text to an MCP client as `notifications/progress`.
 *
 * Deltas are coalesced: while one notification is being written (the
 * transport's `send` resolves only when the bytes are accepted), newer
 * deltas accumulate and go out together in the next one. A fast client
 * sees every token on its own; a slow one gets fewer, larger
 * notifications. {@linkcode ProgressStream.pending} tells the producer how
 * much text waits, so it can stop reading upstream (see `relay` in
 * `server.ts`) and memory stays bounded when a client stops reading.
 *
 * @module
 */

import type { ProgressToken } from "@modelcontextprotocol/server";

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
  let count = 0;
  let sending: Promise<void> | undefined;

  async function drain(): Promise<void> {
    // Yield once so deltas parsed from the same network read go out together.
    await Promise.resolve();
    while (text !== "" || thinking !== "") {
      const message = text;
      const thought = thinking;
      text = "";
      thinking = "";
      count++;
      try {
        await send({
          progressToken: token,
          progress: count,
          message,
          ...(thought && { _meta: { thinking: thought } }),
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
