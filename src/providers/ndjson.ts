/**
 * Incremental NDJSON parsing over web streams with a bounded line length.
 *
 * Bytes are decoded with `TextDecoderStream`, split into lines as they
 * arrive, and each non-empty line is parsed as JSON. A line longer than the
 * bound fails the stream instead of growing a buffer without limit.
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
  const max = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  let pending = "";
  // True while skipping the rest of an oversized line.
  let skipping = false;
  const overflow = () => {
    if (!options.onTooLong) throw tooLong(max);
    options.onTooLong();
    pending = "";
    skipping = true;
  };
  const emit = (line: string, controller: TransformStreamDefaultController<string>) => {
    controller.enqueue(line.endsWith("\r") ? line.slice(0, -1) : line);
  };
  return new TransformStream<string, string>({
    transform(text, controller) {
      let start = 0;
      let newline = text.indexOf("\n");
      while (newline !== -1) {
        if (skipping) {
          skipping = false;
        } else {
          const line = pending + text.slice(start, newline);
          pending = "";
          if (line.length > max) {
            overflow();
            // The newline ends the oversized line: nothing more to skip.
            skipping = false;
          } else {
            emit(line, controller);
          }
        }
        start = newline + 1;
        newline = text.indexOf("\n", start);
      }
      if (!skipping) {
        pending += text.slice(start);
        if (pending.length > max) overflow();
      }
    },
    flush(controller) {
      if (pending.length > 0 && !skipping) emit(pending, controller);
      pending = "";
    },
  });
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
  const decoder = new TextDecoderStream();
  // Piping with our own signal lets `finally` cancel the body and wait until it is cancelled.
  const stop = new AbortController();
  const signal = options.signal;
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const piping = body.pipeTo(decoder.writable, { signal: stop.signal }).catch(() => {});
  const reader = decoder.readable.pipeThrough(splitLines(options)).getReader();
  let finished = false;
  try {
    while (true) {
      const { value, done } = await reader.read();
      // Lines already decoded must not outlive an abort.
      if (signal?.aborted) throw signal.reason;
      if (done) {
        finished = true;
        return;
      }
      if (value.trim() === "") continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch (cause) {
        throw new InvalidResponseError(
          `Received a line that is not JSON: ${preview(value)}`,
          { cause },
        );
      }
      yield parsed;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    // Cancelling the body closes the HTTP connection, so the server stops generating.
    if (!finished) {
      stop.abort();
      await reader.cancel().catch(() => {});
    }
    reader.releaseLock();
    await piping;
  }
}

/** The first characters of `text`, for error messages. */
export function preview(text: string, length = 80): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return JSON.stringify(
    flat.length > length ? flat.slice(0, length) + "…" : flat,
  );
}
