/**
 * Reads a JSON request body under a size bound, a deadline and a minimum
 * rate, and checks its nesting and size as it arrives, before parsing it.
 *
 * Deno's HTTP server has no body timeout, and each chunk it hands over is a
 * view of a fresh 64 KiB buffer: 300 connections trickling one byte a
 * second cost over 300 MiB when their chunks were kept. So the body is read
 * with a BYOB reader into one growing buffer (memory follows the bytes
 * received, not the number of writes), and a body that is not complete
 * within the deadline, or that falls below the minimum rate after a short
 * grace, is abandoned with 408 and `Connection: close`.
 *
 * A handler cannot close a connection in Deno, and `Connection: close` on a
 * response does not close it while the request body is unfinished (Deno
 * 2.9 keeps the socket open as long as the client does, even while the
 * client keeps trickling). The 408's body therefore ends with an error
 * (`ConnectionDropped`, see `connection_drop.ts`) once its bytes are out,
 * which makes Deno drop the connection. One more Deno 2.9
 * quirk decides the order: a read of the request body that is cancelled
 * while Deno still waits for its bytes keeps the connection alive for good
 * (the drop is then ignored, however many bytes follow). So a body that
 * times out is not cancelled: its pending read is left to settle, which it
 * does at the client's next byte, and only then is the body cancelled and
 * the connection dropped. A trickling client is disconnected within its
 * own interval; one that sends nothing more keeps its idle socket until it
 * closes it, as a client that never finishes its headers does.
 *
 * @module
 */

import { ConnectionDropped } from "./connection_drop.ts";
import { createJsonBoundsScanner, type JsonBounds } from "./json_bounds.ts";
import { errorReply, JSONRPC_INVALID_REQUEST, JSONRPC_PARSE_ERROR } from "./jsonrpc.ts";

/** Bounds of one request body. */
export interface BodyLimits {
  /** Largest body in bytes. */
  maxBytes: number;
  /**
   * The whole body must arrive within this time.
   * @default 30000
   */
  timeoutMs?: number;
  /**
   * Slowest acceptable average rate in bytes per second, enforced after
   * `graceMs`.
   * @default 1024
   */
  minBytesPerSecond?: number;
  /**
   * Time before the minimum rate applies (a small body arrives at once).
   * @default 5000
   */
  graceMs?: number;
  /** Nesting and size bounds of the JSON. */
  json?: JsonBounds;
}

/** A parsed body, or the response that refuses it. */
export type BodyResult = { ok: true; value: unknown } | { ok: false; response: Response };

const JSON_HEADERS = { "content-type": "application/json" };

/**
 * How long a dropping refusal waits between handing over its bytes and
 * erroring: one turn of the event loop lets the server write them, the
 * rest is margin for a busy machine. Only a client already refused waits.
 */
const DROP_AFTER_MS = 50;

/**
 * A body that sends `text`, then, once `settled` has (the abandoned read of
 * the request body, which then gets cancelled), errors so that Deno drops
 * the connection.
 */
function droppingBody(text: string, settled: Promise<void>): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(new TextEncoder().encode(text));
        return;
      }
      await settled;
      await new Promise((resolve) => setTimeout(resolve, DROP_AFTER_MS));
      controller.error(new ConnectionDropped("the request body was too slow"));
    },
  }, { highWaterMark: 0 });
}

function refuse(
  status: number,
  code: number,
  message: string,
  drop?: Promise<void>,
): BodyResult {
  const text = errorReply(null, code, message);
  return {
    ok: false,
    response: drop
      // No Content-Length: a complete fixed-length body would end the exchange before the error.
      ? new Response(droppingBody(text, drop), {
        status,
        headers: { ...JSON_HEADERS, connection: "close" },
      })
      : new Response(text, { status, headers: JSON_HEADERS }),
  };
}

/**
 * Smallest view handed to a BYOB read. Deno 2.9 never settles a BYOB read
 * whose view is shorter than 8 bytes at the end of a chunked body (it
 * neither returns data nor reports the end), so the buffer always keeps at
 * least this much room; it may grow to `maxBytes` plus this slack, and a
 * body that reaches into the slack is too large.
 */
const MIN_VIEW = 64;

/** The first buffer of a body of unknown or larger size (one read for most messages). */
const INITIAL_BUFFER = 4096;

/** What an expired read resolves to. */
const EXPIRED = Symbol("expired");

/** Reads and parses the JSON body of `request` within `limits`. */
export async function readJsonBody(request: Request, limits: BodyLimits): Promise<BodyResult> {
  const { maxBytes } = limits;
  const timeoutMs = limits.timeoutMs ?? 30_000;
  const minRate = limits.minBytesPerSecond ?? 1024;
  const graceMs = limits.graceMs ?? 5_000;
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) {
    return refuse(413, JSONRPC_INVALID_REQUEST, `Message larger than ${maxBytes} bytes`);
  }
  if (!request.body) return refuse(400, JSONRPC_PARSE_ERROR, "Empty body");

  const started = performance.now();
  let received = 0;
  // Never sized from Content-Length alone: memory must follow the bytes that really arrived.
  // Deno fills (and so makes resident) every view it is given to read into, so the buffer
  // starts small and doubles as bytes come: with 64 KiB at the start, 300 connections that
  // trickle a byte a second cost the daemon 52 MiB; with 4 KiB, about 20 MiB.
  const expected = Number.isFinite(declared) && declared > 0 ? declared : INITIAL_BUFFER;
  let buffer = new Uint8Array(Math.min(maxBytes, expected, INITIAL_BUFFER) + MIN_VIEW);
  // Nesting and value counts are checked on the bytes as they arrive (see json_bounds.ts).
  const scanner = createJsonBoundsScanner(limits.json);
  let problem: string | undefined;
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // A body still streaming in is a byte stream: read it into our buffer (BYOB). A body that
  // arrived with the headers may not be; its chunks are copied into the same buffer.
  let byob: ReadableStreamBYOBReader | undefined;
  let plain: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    byob = request.body.getReader({ mode: "byob" });
  } catch {
    plain = request.body.getReader();
  }
  const cancel = () => (byob ?? plain)!.cancel().catch(() => {});
  // Resolves when the body is too slow; the read then pending is abandoned, not cancelled.
  const expired = Promise.withResolvers<typeof EXPIRED>();
  let abandoned: Promise<unknown> | undefined;

  /** Arms the timer for the earliest of the deadline and the moment the rate would fail. */
  function arm(): void {
    clearTimeout(timer);
    const rateAt = started + graceMs + (received / minRate) * 1000;
    const due = Math.min(started + timeoutMs, Math.max(rateAt, started + graceMs));
    timer = setTimeout(() => {
      timedOut = true;
      expired.resolve(EXPIRED);
    }, Math.max(0, due - performance.now()));
  }

  /** Waits for `read` unless the body expires first; then the read is left pending. */
  async function within<T>(read: Promise<T>): Promise<T | typeof EXPIRED> {
    const outcome = await Promise.race([read, expired.promise]);
    if (outcome === EXPIRED) abandoned = read;
    return outcome;
  }

  /** Makes room for `more` bytes after those received (callers keep `received <= maxBytes`). */
  function reserve(more: number): void {
    if (received + more <= buffer.length) return;
    const grown = new Uint8Array(
      Math.min(maxBytes + MIN_VIEW, Math.max(buffer.length * 2, received + more)),
    );
    grown.set(buffer.subarray(0, received));
    buffer = grown;
  }

  const tooLarge = () =>
    refuse(413, JSONRPC_INVALID_REQUEST, `Message larger than ${maxBytes} bytes`);

  try {
    arm();
    while (true) {
      if (byob) {
        reserve(MIN_VIEW);
        const outcome = await within(byob.read(buffer.subarray(received)));
        if (outcome === EXPIRED) break;
        const { done, value } = outcome;
        // BYOB moves the buffer on every read and hands it back, even at the end.
        if (value) buffer = new Uint8Array(value.buffer, 0, value.buffer.byteLength);
        if (done || !value) break;
        received += value.byteLength;
        problem = scanner.push(value);
      } else {
        const outcome = await within(plain!.read());
        if (outcome === EXPIRED) break;
        const { done, value } = outcome;
        if (done) break;
        if (received + value.byteLength > maxBytes) {
          await cancel();
          return tooLarge();
        }
        reserve(value.byteLength);
        buffer.set(value, received);
        received += value.byteLength;
        problem = scanner.push(value);
      }
      if (received > maxBytes) {
        await cancel();
        return tooLarge();
      }
      if (problem !== undefined) {
        // Refused as soon as a bound is crossed: the rest is never buffered, decoded or parsed.
        await cancel();
        return refuse(
          400,
          JSONRPC_INVALID_REQUEST,
          `Invalid Request: the body is refused: ${problem}`,
        );
      }
      arm();
    }
  } catch {
    return refuse(400, JSONRPC_PARSE_ERROR, "Parse error: the body could not be read");
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) {
    const elapsed = ((performance.now() - started) / 1000).toFixed(1);
    // The connection is dropped once the abandoned read settled and the body is cancelled.
    const settled = (abandoned ?? Promise.resolve()).then(cancel, cancel);
    return refuse(
      408,
      JSONRPC_INVALID_REQUEST,
      `Request body too slow: ${received} bytes in ${elapsed} s (the body must arrive within ${
        timeoutMs / 1000
      } s, at ${minRate} bytes/s or faster)`,
      settled,
    );
  }
  const text = new TextDecoder().decode(buffer.subarray(0, received));
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return refuse(400, JSONRPC_PARSE_ERROR, "Parse error: the body is not valid JSON");
  }
}
