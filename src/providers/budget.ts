/**
 * Byte budgets on what one upstream call may make Rune hold: the largest
 * JSON reply, the prefix of an error body read for its message, and the
 * text of a streamed reply. An upstream is untrusted input (a colleague's
 * GPU box, a proxy, a cloud API), so every byte read from it counts
 * against one of these, whatever the provider.
 *
 * @module
 */

import { UpstreamTooLargeError } from "./errors.ts";

/** The byte budgets of each call. */
export interface ByteLimits {
  /**
   * Largest non-streamed reply (a model list, model details, a batch of
   * embeddings), in bytes after decompression. Default 64 MiB: thousands
   * of models, or about a thousand 4096-dimension embeddings in one batch.
   */
  maxReplyBytes: number;
  /**
   * Bytes read of an error reply for its message; the rest is never read.
   * Default 64 KiB (an error message is a line or two).
   */
  maxErrorBytes: number;
  /**
   * Largest text, thinking and tool calls (UTF-8 bytes) one streamed reply
   * may add up to. Default 16 MiB: millions of tokens, more than any
   * context window.
   */
  maxStreamBytes: number;
}

/** One mebibyte. */
const MiB = 1024 * 1024;

/** Default budgets, sized for real use. */
export const DEFAULT_BYTE_LIMITS: Readonly<ByteLimits> = {
  maxReplyBytes: 64 * MiB,
  maxErrorBytes: 64 * 1024,
  maxStreamBytes: 16 * MiB,
};

/** Who sent the reply, for the messages. */
export interface BudgetOwner {
  /** Display name, e.g. `Ollama`. */
  name: string;
  /** `host:port` for messages. */
  address: string;
}

/** Bytes as a short human figure: `64 MiB`, `512 KiB`, `100 bytes`. */
export function formatBytes(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/** The error for a non-streamed reply over {@linkcode ByteLimits.maxReplyBytes}. */
export function replyTooLarge(
  owner: BudgetOwner,
  path: string,
  maxBytes: number,
): UpstreamTooLargeError {
  return new UpstreamTooLargeError(
    "reply",
    maxBytes,
    `${owner.name} at ${owner.address} sent a reply to ${path} larger than ${
      formatBytes(maxBytes)
    } (the --max-reply-bytes limit), so Rune stopped reading it: if the reply is genuine (a very long model list, a large batch of embeddings), raise --max-reply-bytes; otherwise check what answers at that address.`,
  );
}

/**
 * Counts what a streamed reply adds up to (text, thinking, tool calls) and
 * throws {@linkcode UpstreamTooLargeError} once it passes the budget; the
 * caller's `finally` then cancels the body.
 */
export class StreamBudget {
  #owner: BudgetOwner;
  #max: number;
  #used = 0;

  /** A budget of `maxBytes` for one reply from `owner`. */
  constructor(owner: BudgetOwner, maxBytes: number) {
    this.#owner = owner;
    this.#max = maxBytes;
  }

  /** Bytes counted so far. */
  get used(): number {
    return this.#used;
  }

  /** Counts `text` (its UTF-8 length); throws past the budget. */
  add(text: string): void {
    this.addBytes(utf8Length(text));
  }

  /** Counts `bytes`; throws past the budget. */
  addBytes(bytes: number): void {
    this.#used += bytes;
    if (this.#used <= this.#max) return;
    const { name, address } = this.#owner;
    throw new UpstreamTooLargeError(
      "stream",
      this.#max,
      `${name} at ${address} streamed more than ${
        formatBytes(this.#max)
      } of text, thinking and tool calls in one reply (the --max-stream-bytes limit), so Rune stopped the call: ask for fewer tokens (num_predict), or raise --max-stream-bytes.`,
    );
  }
}

/** The UTF-8 length of `text` without encoding it (tokens are short: a loop is cheapest). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      // A surrogate pair: 2 code units, 4 bytes.
      bytes += 2;
      i++;
    } else bytes += 2;
  }
  return bytes;
}
