/**
 * MCP over stdin/stdout: newline-delimited JSON-RPC messages, in either
 * protocol era (the client's opening exchange decides, see
 * `mcp/connection.ts`).
 *
 * stdout carries protocol messages only (logs go to stderr). Lines are
 * bounded: an oversized line is skipped without buffering it and answered
 * with an invalid-request error. Writes await the stdout writer, so a
 * client that stops reading slows the server down instead of growing its
 * memory.
 *
 * @module
 */

import type { McpServerFactory } from "@modelcontextprotocol/server";
import { serveConnection } from "../mcp/connection.ts";
import { lineSplitter } from "../providers/ndjson.ts";
import {
  createMessageTransport,
  type MessageLimits,
  type MessageTransport,
} from "./message_transport.ts";
import { DEFAULT_MAX_MESSAGE_SIZE, errorReply, JSONRPC_INVALID_REQUEST } from "./jsonrpc.ts";

/** Options of {@linkcode serveStdio}. */
export interface StdioOptions extends MessageLimits {
  /** Input stream. Default: `Deno.stdin`, read in place (no stream per chunk). */
  stdin?: ReadableStream<Uint8Array>;
  /** Output stream. Default: `Deno.stdout`, written in place. */
  stdout?: WritableStream<Uint8Array>;
  /** Longest accepted message in characters. Default 32 MiB. */
  maxMessageSize?: number;
  /** Stops serving (as if stdin ended). */
  signal?: AbortSignal;
  /** Receives the session's transport once connected (for in-flight counts). */
  onSession?: (transport: MessageTransport) => void;
  /** Out-of-band problems of the connection (reporting only). */
  onError?: (error: Error) => void;
}

/** Bytes read from stdin at most per read. */
const READ_SIZE = 64 * 1024;

/** Reads chunks of input; `null` at the end. */
interface ChunkSource {
  next(): Promise<Uint8Array | null>;
  cancel(): void;
}

/** Writes bytes in order; resolves when all of them were accepted. */
type ByteSink = (bytes: Uint8Array) => Promise<void>;

/**
 * Deno's stdin read in place into one reused buffer. Deno's `readable`
 * stream costs a pull, a promise chain and a byte-stream controller per
 * chunk, a measurable share of a call's CPU on the stdio hot path.
 */
function stdinSource(): ChunkSource {
  const buffer = new Uint8Array(READ_SIZE);
  return {
    async next() {
      const n = await Deno.stdin.read(buffer);
      return n === null ? null : buffer.subarray(0, n);
    },
    cancel() {
      // A pending read of stdin cannot be cancelled; the process ends after serving anyway.
    },
  };
}

function streamSource(stream: ReadableStream<Uint8Array>): ChunkSource {
  const reader = stream.getReader();
  return {
    async next() {
      const { value, done } = await reader.read();
      return done ? null : value;
    },
    cancel() {
      reader.cancel().catch(() => {});
    },
  };
}

/**
 * Deno's stdout written in place, one message after another: a write may
 * be partial, so each waits for the one before (the same backpressure as
 * a stream writer, without its per-write machinery).
 */
function stdoutSink(): ByteSink {
  let tail: Promise<void> = Promise.resolve();
  return (bytes) => {
    const written = tail.then(async () => {
      let offset = 0;
      while (offset < bytes.length) offset += await Deno.stdout.write(bytes.subarray(offset));
    });
    // A failed write fails its caller; the next one still runs.
    tail = written.catch(() => {});
    return written;
  };
}

function streamSink(writer: WritableStreamDefaultWriter<Uint8Array>): ByteSink {
  return async (bytes) => {
    await writer.ready;
    await writer.write(bytes);
  };
}

/**
 * Serves the instances `factory` builds over stdio until stdin ends,
 * `signal` aborts, or the server closes. Ending aborts the requests still
 * in flight.
 */
export async function serveStdio(
  factory: McpServerFactory,
  options: StdioOptions = {},
): Promise<void> {
  const source = options.stdin ? streamSource(options.stdin) : stdinSource();
  const writer = options.stdout?.getWriter();
  const write = writer ? streamSink(writer) : stdoutSink();
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  const input = new AbortController();
  const stopped = new Promise<null>((resolve) => {
    input.signal.addEventListener("abort", () => resolve(null), { once: true });
  });

  const transport = createMessageTransport({
    write: (text) => write(encoder.encode(text + "\n")),
    close() {
      input.abort();
    },
  }, options);

  const splitter = lineSplitter({
    maxLineLength: maxMessageSize,
    onTooLong: () => {
      write(encoder.encode(
        errorReply(
          null,
          JSONRPC_INVALID_REQUEST,
          `Invalid Request: message longer than ${maxMessageSize} characters was dropped`,
        ) + "\n",
      )).catch(() => {});
    },
  });
  const deliver = (lines: string[]) => {
    for (const line of lines) if (line.trim() !== "") transport.receive(line);
  };

  const onAbort = () => input.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const connection = serveConnection(transport, factory, { onError: options.onError });
  options.onSession?.(transport);
  try {
    while (!input.signal.aborted) {
      const chunk = await Promise.race([source.next(), stopped]);
      if (chunk === null) break;
      deliver(splitter.push(decoder.decode(chunk, { stream: true })));
    }
    if (!input.signal.aborted) {
      const lines = splitter.push(decoder.decode());
      const last = splitter.end();
      if (last !== undefined) lines.push(last);
      deliver(lines);
    }
  } catch (error) {
    if (!input.signal.aborted) throw error;
  } finally {
    source.cancel();
    options.signal?.removeEventListener("abort", onAbort);
    transport.ended();
    await connection.close().catch(() => {});
    await writer?.close().catch(() => {});
  }
}
