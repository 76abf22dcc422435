/**
 * Incremental NDJSON parsing over web streams with a bounded line length.
 *
 * Bytes are decoded as they arrive, split into lines, and each non-empty
 * line is parsed as JSON. A line longer than the bound fails the stream
 * instead of growing a buffer without limit.
 *
 * @module
 */

import { InvalidResponseError } from "./errors.ts";

/** Default bound on one NDJSON line: 16 MiB of text (large embeddings fit). */
export const DEFAULT_MAX_LINE_LENGTH = 16 * 1024 * 1024;

/** Options for {@linkcode splitLines} and {@linkcode parseNdjson}. */
export interface LineOptions {
  /** Longest accepted line in UTF-16 code units; default {@linkcode DEFAULT_MAX_LINE_LENGTH}. */
  maxLineLength?: number;
  /**
   * Called for each line over the bound; the line is then skipped without
   * buffering its rest. Without it an oversized line fails the stream.
   */
  onTooLong?: () => void;
}

/** Options of {@linkcode parseNdjson}. */
export interface NdjsonOptions extends LineOptions {
  /**
   * Cancels the body when it aborts: a pending or later read then throws
   * the signal's reason. `fetch`'s own signal is not enough once the
   * response has arrived: Deno can lose the link between the signal and a
   * streaming body (seen after garbage collection), and the body then keeps
   * flowing.
   */
  signal?: AbortSignal;
}

/** Thrown when a line exceeds the configured bound. */
export class LineTooLongError extends InvalidResponseError {}

/**
 * A `TransformStream` that splits text into lines (without the `\n` or a
 * trailing `\r`), keeping at most `maxLineLength` characters buffered.
 */
export function splitLines(options: LineOptions = {}): TransformStream<string, string> {
  const splitter = new LineSplitter(options);
  return new TransformStream<string, string>({
    transform(text, controller) {
      for (const line of splitter.push(text)) controller.enqueue(line);
    },
    flush(controller) {
      const last = splitter.end();
      if (last !== undefined) controller.enqueue(last);
    },
  });
}

/**
 * The line splitting of {@linkcode splitLines} without a stream around it,
 * so {@linkcode parseNdjson} can split inline instead of paying for a
 * `TransformStream` (and its promises) per upstream call.
 */
class LineSplitter {
  #max: number;
  #onTooLong: (() => void) | undefined;
  #pending = "";
  // True while skipping the rest of an oversized line.
  #skipping = false;

  constructor(options: LineOptions) {
    this.#max = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    this.#onTooLong = options.onTooLong;
  }

  /** Returns the lines `text` completes; keeps the unfinished rest. */
  push(text: string): string[] {
    const lines: string[] = [];
    let start = 0;
    let newline = text.indexOf("\n");
    while (newline !== -1) {
      if (this.#skipping) {
        this.#skipping = false;
      } else {
        const line = this.#pending + text.slice(start, newline);
        this.#pending = "";
        if (line.length > this.#max) {
          this.#overflow();
          // The newline ends the oversized line: nothing more to skip.
          this.#skipping = false;
        } else {
          lines.push(stripCr(line));
        }
      }
      start = newline + 1;
      newline = text.indexOf("\n", start);
    }
    if (!this.#skipping) {
      this.#pending += text.slice(start);
      if (this.#pending.length > this.#max) this.#overflow();
    }
    return lines;
  }

  /** The last line when the text ended without a newline. */
  end(): string | undefined {
    const last = this.#pending.length > 0 && !this.#skipping ? stripCr(this.#pending) : undefined;
    this.#pending = "";
    return last;
  }

  #overflow(): void {
    if (!this.#onTooLong) throw tooLong(this.#max);
    this.#onTooLong();
    this.#pending = "";
    this.#skipping = true;
  }
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

function tooLong(max: number): LineTooLongError {
  return new LineTooLongError(
    `A reply line is longer than ${max} characters: the server is not speaking NDJSON, or raise the line limit.`,
  );
}

/**
 * Parses an NDJSON byte stream into JSON values as lines arrive.
 *
 * The returned iterator cancels `body` when the consumer stops early (a
 * `break`, a thrown error or an abort), so the upstream connection closes.
 * A line that is not JSON raises {@linkcode InvalidResponseError}.
 */
export async function* parseNdjson(
  body: ReadableStream<Uint8Array>,
  options: NdjsonOptions = {},
): AsyncGenerator<unknown, void, undefined> {
  // One reader, decoder and splitter, no piped streams: a call's reply is
  // usually one or two chunks, and each stream stage cost more CPU than
  // the parsing itself.
  const byob = byobReader(body);
  const plain = byob ? undefined : body.getReader();
  const reader = byob ?? plain!;
  // Read into a pooled buffer: a fetch body otherwise allocates 64 KiB per read.
  let buffer = byob ? takeBuffer() : new Uint8Array(0);
  const decoder = new TextDecoder();
  const splitter = new LineSplitter(options);
  const signal = options.signal;
  // Cancelling resolves a pending read as done; the loop then throws the reason.
  const onAbort = () => void reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  let finished = false;
  try {
    while (!finished) {
      if (signal?.aborted) throw signal.reason;
      const { value, done } = byob ? await byob.read(buffer) : await plain!.read();
      if (byob && value) buffer = new Uint8Array(value.buffer as ArrayBuffer);
      let lines: string[];
      if (done) {
        finished = true;
        lines = splitter.push(decoder.decode());
        const last = splitter.end();
        if (last !== undefined) lines.push(last);
      } else {
        lines = splitter.push(decoder.decode(value, { stream: true }));
      }
      for (const line of lines) {
        // Lines already decoded must not outlive an abort.
        if (signal?.aborted) throw signal.reason;
        if (line.trim() !== "") yield parseLine(line);
      }
    }
    if (signal?.aborted) throw signal.reason;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    // Cancelling the body closes the HTTP connection, so the server stops generating.
    if (!finished) await reader.cancel().catch(() => {});
    // A buffer still in a read was handed to the stream (detached): only a free one goes back.
    if (byob) giveBuffer(buffer);
  }
}

/** Bytes asked for per read of a byte stream. */
const READ_BUFFER_SIZE = 16 * 1024;
/** Free read buffers kept for the next calls; at most this many. */
const POOL_SIZE = 16;
const pool: Uint8Array<ArrayBuffer>[] = [];

function takeBuffer(): Uint8Array<ArrayBuffer> {
  return pool.pop() ?? new Uint8Array(READ_BUFFER_SIZE);
}

function giveBuffer(buffer: Uint8Array<ArrayBuffer>): void {
  if (buffer.byteLength === READ_BUFFER_SIZE && pool.length < POOL_SIZE) pool.push(buffer);
}

/** A BYOB reader when `body` is a byte stream (as fetch bodies are). */
function byobReader(body: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | undefined {
  try {
    return body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: read it with the default reader.
    return undefined;
  }
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch (cause) {
    throw new InvalidResponseError(`Received a line that is not JSON: ${preview(line)}`, {
      cause,
    });
  }
}

/** The first characters of `text`, for error messages. */
export function preview(text: string, length = 80): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return JSON.stringify(
    flat.length > length ? flat.slice(0, length) + "…" : flat,
  );
}
