/**
 * Incremental NDJSON parsing with a bounded line length.
 *
 * Text is split into lines as it arrives and each non-empty line is parsed
 * as JSON. A line longer than the bound fails the stream instead of growing
 * a buffer without limit. {@linkcode ndjsonParser} plugs into the shared
 * stream reader (`stream.ts`); {@linkcode splitLines} also serves the stdio
 * transport and the CLI.
 *
 * @module
 */

import { InvalidResponseError } from "./errors.ts";
import { readStream, type ReadStreamOptions, type StreamParser } from "./stream.ts";

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
export interface NdjsonOptions extends LineOptions, ReadStreamOptions {}

/**
 * A stream parser's refusal of the text itself (a line or event past its
 * bound, a line that is not JSON). The parser does not know who sent the
 * text, so a provider rewords it as "Invalid response from X at Y: ..."
 * (see `parserRefusal` in `http.ts`).
 */
export class ParseRefusal extends InvalidResponseError {}

/** Thrown when a line exceeds the configured bound. */
export class LineTooLongError extends ParseRefusal {}

/**
 * A `TransformStream` that splits text into lines (without the `\n` or a
 * trailing `\r`), keeping at most `maxLineLength` characters buffered.
 */
export function splitLines(options: LineOptions = {}): TransformStream<string, string> {
  const splitter = new Splitter(options);
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

/** Splits text into bounded lines as it arrives (see {@linkcode lineSplitter}). */
export interface LineSplitter {
  /** Returns the lines `text` completes; keeps the unfinished rest. */
  push(text: string): string[];
  /** The last line when the text ended without a newline. */
  end(): string | undefined;
}

/**
 * The line splitting of {@linkcode splitLines} without a stream around it,
 * so hot paths (the NDJSON parser, the stdio transport) split inline
 * instead of paying for a `TransformStream` and its promises per chunk.
 */
export function lineSplitter(options: LineOptions = {}): LineSplitter {
  return new Splitter(options);
}

class Splitter implements LineSplitter {
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
    `A reply line is longer than ${max} characters: no model server sends lines that long (the bound is fixed), so the server is not speaking NDJSON.`,
  );
}

/**
 * The NDJSON {@linkcode StreamParser}: splits text into lines and parses
 * each non-empty line as JSON. A line that is not JSON raises
 * {@linkcode InvalidResponseError}; a line over the bound raises
 * {@linkcode LineTooLongError} (or is skipped, with `onTooLong`).
 */
export function ndjsonParser(options: LineOptions = {}): StreamParser<unknown> {
  const splitter = new Splitter(options);
  const parse = (lines: string[]): unknown[] => {
    const values: unknown[] = [];
    for (const line of lines) if (line.trim() !== "") values.push(parseLine(line));
    return values;
  };
  return {
    push: (text) => parse(splitter.push(text)),
    end: () => {
      const last = splitter.end();
      return last === undefined ? [] : parse([last]);
    },
  };
}

/**
 * Parses an NDJSON byte stream into JSON values as lines arrive
 * ({@linkcode readStream} with {@linkcode ndjsonParser}).
 *
 * The returned iterator cancels `body` when the consumer stops early (a
 * `break`, a thrown error or an abort), so the upstream connection closes.
 */
export function parseNdjson(
  body: ReadableStream<Uint8Array>,
  options: NdjsonOptions = {},
): AsyncGenerator<unknown, void, undefined> {
  return readStream(body, ndjsonParser(options), options);
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch (cause) {
    throw new ParseRefusal(`Received a line that is not JSON: ${preview(line)}`, {
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
