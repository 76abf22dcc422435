/**
 * Reading upstream bodies: a streamed body through a pluggable parser
 * (NDJSON today, SSE next), and a whole body under a byte bound.
 *
 * Both read the body's bytes after `fetch` has decoded them (a gzip body is
 * counted as what it inflates to), cancel the body as soon as they stop
 * early (a bound, an abort, a consumer that leaves), and read into pooled
 * buffers so a call allocates nothing per read.
 *
 * @module
 */

/**
 * Turns decoded text into values as it arrives: the seam between the
 * stream reader and a wire format. An NDJSON parser yields one value per
 * line; an SSE parser yields one value per event.
 */
export interface StreamParser<T> {
  /** Returns the values that `text` completes; keeps the unfinished rest. */
  push(text: string): T[];
  /** Returns the values left when the body ends (an unterminated last line or event). */
  end(): T[];
}

/** Options of {@linkcode readStream}. */
export interface ReadStreamOptions {
  /**
   * Cancels the body when it aborts: a pending or later read then throws
   * the signal's reason. `fetch`'s own signal is not enough once the
   * response has arrived: Deno can lose the link between the signal and a
   * streaming body (seen after garbage collection), and the body then keeps
   * flowing.
   */
  signal?: AbortSignal;
}

/**
 * Parses a byte stream with `parser`, yielding values as they complete.
 *
 * The returned iterator cancels `body` when the consumer stops early (a
 * `break`, a thrown error or an abort), so the upstream connection closes.
 */
export async function* readStream<T>(
  body: ReadableStream<Uint8Array>,
  parser: StreamParser<T>,
  options: ReadStreamOptions = {},
): AsyncGenerator<T, void, undefined> {
  // One reader and decoder, no piped streams: a call's reply is usually one
  // or two chunks, and each stream stage cost more CPU than the parsing.
  const byob = byobReader(body);
  const plain = byob ? undefined : body.getReader();
  const reader = byob ?? plain!;
  // Read into a pooled buffer: a fetch body otherwise allocates 64 KiB per read.
  let buffer = byob ? takeBuffer() : new Uint8Array(0);
  const decoder = new TextDecoder();
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
      let values: T[];
      if (done) {
        finished = true;
        values = parser.push(decoder.decode());
        values.push(...parser.end());
      } else {
        values = parser.push(decoder.decode(value, { stream: true }));
      }
      for (const item of values) {
        // Values already decoded must not outlive an abort.
        if (signal?.aborted) throw signal.reason;
        yield item;
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

/** Options of {@linkcode readText}. */
export interface ReadTextOptions {
  /** Most decoded bytes to read; past it the body is cancelled. */
  maxBytes: number;
  /** Cancels the body and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The outcome of {@linkcode readText}. */
export interface BoundedText {
  /** The text read: the whole body, or its first `maxBytes` bytes when `truncated`. */
  text: string;
  /** True when the body was longer than `maxBytes` and the rest was never read. */
  truncated: boolean;
  /** Decoded bytes read. */
  bytes: number;
}

/**
 * Reads a body as UTF-8 text, at most `maxBytes` of it: a longer body is
 * cancelled the moment a read crosses the bound, so memory never holds
 * more than the bound plus one read.
 */
export async function readText(
  body: ReadableStream<Uint8Array> | null,
  options: ReadTextOptions,
): Promise<BoundedText> {
  if (!body) return { text: "", truncated: false, bytes: 0 };
  const { maxBytes, signal } = options;
  const byob = byobReader(body);
  const plain = byob ? undefined : body.getReader();
  const reader = byob ?? plain!;
  let buffer = byob ? takeBuffer() : new Uint8Array(0);
  const decoder = new TextDecoder();
  const parts: string[] = [];
  let bytes = 0;
  let finished = false;
  const onAbort = () => void reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    while (true) {
      if (signal?.aborted) throw signal.reason;
      const { value, done } = byob ? await byob.read(buffer) : await plain!.read();
      if (byob && value) buffer = new Uint8Array(value.buffer as ArrayBuffer);
      if (done) {
        finished = true;
        if (signal?.aborted) throw signal.reason;
        parts.push(decoder.decode());
        return { text: parts.join(""), truncated: false, bytes };
      }
      if (bytes + value.byteLength > maxBytes) {
        parts.push(decoder.decode(value.subarray(0, maxBytes - bytes)));
        return { text: parts.join(""), truncated: true, bytes: maxBytes };
      }
      bytes += value.byteLength;
      parts.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!finished) await reader.cancel().catch(() => {});
    if (byob) giveBuffer(buffer);
  }
}

/** Bytes asked for per read of a byte stream. */
const READ_BUFFER_SIZE = 16 * 1024;
/** Free read buffers kept for the next calls; at most this many (256 KiB). */
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
