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
import { splitLines } from "../providers/ndjson.ts";
import {
  createMessageTransport,
  type MessageLimits,
  type MessageTransport,
} from "./message_transport.ts";
import { DEFAULT_MAX_MESSAGE_SIZE, errorReply, JSONRPC_INVALID_REQUEST } from "./jsonrpc.ts";

/** Options of {@linkcode serveStdio}. */
export interface StdioOptions extends MessageLimits {
  /** Input stream. Default `Deno.stdin.readable`. */
  stdin?: ReadableStream<Uint8Array>;
  /** Output stream. Default `Deno.stdout.writable`. */
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

/**
 * Serves the instances `factory` builds over stdio until stdin ends,
 * `signal` aborts, or the server closes. Ending aborts the requests still
 * in flight.
 */
export async function serveStdio(
  factory: McpServerFactory,
  options: StdioOptions = {},
): Promise<void> {
  const stdin = options.stdin ?? Deno.stdin.readable;
  const writer = (options.stdout ?? Deno.stdout.writable).getWriter();
  const encoder = new TextEncoder();
  const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  const input = new AbortController();

  const transport = createMessageTransport({
    async write(text) {
      await writer.ready;
      await writer.write(encoder.encode(text + "\n"));
    },
    close() {
      input.abort();
    },
  }, options);

  const lines = stdin
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(
      splitLines({
        maxLineLength: maxMessageSize,
        onTooLong: () => {
          writer.ready
            .then(() =>
              writer.write(encoder.encode(
                errorReply(
                  null,
                  JSONRPC_INVALID_REQUEST,
                  `Invalid Request: message longer than ${maxMessageSize} characters was dropped`,
                ) + "\n",
              ))
            )
            .catch(() => {});
        },
      }),
      { signal: input.signal },
    );

  const onAbort = () => input.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const connection = serveConnection(transport, factory, { onError: options.onError });
  options.onSession?.(transport);
  try {
    for await (const line of lines) {
      if (line.trim() !== "") transport.receive(line);
    }
  } catch (error) {
    if (!input.signal.aborted) throw error;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    transport.ended();
    await connection.close().catch(() => {});
    await writer.close().catch(() => {});
  }
}
