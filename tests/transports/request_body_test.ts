/**
 * Request bodies read under a size bound, a deadline and a minimum rate, on
 * a real `Deno.serve` listener driven by raw TCP clients (so a body can be
 * declared, chunked, trickled or cut short exactly as the test says).
 *
 * Deno hands a body that arrived with the headers as a plain stream and one
 * that is still arriving as a byte stream: every response says which path
 * `readJsonBody` took (`x-body-kind`), so both are shown to be exercised.
 *
 * @module
 */

import assert from "node:assert/strict";
import { isConnectionDropped } from "../../src/transports/connection_drop.ts";
import { type BodyLimits, readJsonBody } from "../../src/transports/request_body.ts";
import { within } from "../faults/support.ts";
import { writeAll } from "./raw_http.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** `Connection: close`, which Deno may repeat when it also sees an unfinished body. */
const CLOSE = /^close(, close)?$/;

/** Bound on each awaited exchange; it asserts no timing. */
const STEP_MS = 20_000;

/** Whether Deno would give `readJsonBody` a byte stream (BYOB) for this body. */
function bodyKind(request: Request): string {
  if (!request.body) return "none";
  try {
    request.body.getReader({ mode: "byob" }).releaseLock();
    return "byob";
  } catch {
    return "plain";
  }
}

/** Serves `readJsonBody` with `limits` on port 0; answers the parsed value as `{ value }`. */
function serveBodies(limits: BodyLimits) {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    // As in the daemon: a 408 that drops its connection is no error.
    onError: (error) => {
      if (!isConnectionDropped(error)) console.error(error);
      return new Response(null, { status: 500 });
    },
  }, async (request) => {
    const kind = bodyKind(request);
    const body = await readJsonBody(request, limits);
    const response = body.ok ? Response.json({ value: body.value }) : body.response;
    response.headers.set("x-body-kind", kind);
    return response;
  });
  return { port: server.addr.port, close: () => server.shutdown() };
}

/** One part of a raw request: bytes written after a pause (the client's pace, not a race). */
interface Part {
  text: string;
  pauseMs?: number;
}

interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

function parseHead(head: string): { status: number; headers: Headers } {
  const [statusLine, ...lines] = head.trimEnd().split("\r\n");
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { status: Number(statusLine.split(" ")[1]), headers };
}

/**
 * Writes `parts` on a raw connection and reads the response: its head and
 * a body of `content-length` bytes. The client stops writing once the
 * response arrived, except with `awaitClose`: then it goes on trickling, as
 * a slow client that ignores the answer would, and the exchange waits for
 * the server to close the connection (keep-alive is asked for, so a close
 * is the server's decision).
 */
async function exchange(
  port: number,
  parts: Part[],
  { awaitClose = false } = {},
): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let answered = false;
  let finished = false;
  const writing = (async () => {
    for (const part of parts) {
      if (part.pauseMs) await new Promise((resolve) => setTimeout(resolve, part.pauseMs));
      if (finished || (answered && !awaitClose)) return;
      await writeAll(conn, encoder.encode(part.text));
    }
  })().catch(() => {
    // The server closed the connection while the client was still sending.
  });
  try {
    let text = "";
    const buffer = new Uint8Array(65536);
    let headEnd = -1;
    while (headEnd < 0) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error(`connection closed before a response: ${text}`);
      text += decoder.decode(buffer.subarray(0, n));
      headEnd = text.indexOf("\r\n\r\n");
    }
    answered = true;
    const { status, headers } = parseHead(text.slice(0, headEnd + 4));
    let body = text.slice(headEnd + 4);
    // Content-Length counts bytes: compare it with the encoded length. A chunked body ends
    // with its last chunk, or with the connection (a 408 drops it instead of ending the body).
    const length = Number(headers.get("content-length"));
    const chunked = headers.get("transfer-encoding") === "chunked";
    while (chunked ? !body.endsWith("0\r\n\r\n") : encoder.encode(body).length < length) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      body += decoder.decode(buffer.subarray(0, n));
    }
    if (chunked) body = dechunk(body);
    if (awaitClose) {
      await within(STEP_MS, "the server to close the connection", closedByServer(conn));
    }
    return { status, headers, body };
  } finally {
    finished = true;
    await writing;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** The payload of a chunked body (complete chunks only). */
function dechunk(text: string): string {
  let out = "";
  let rest = text;
  while (true) {
    const lineEnd = rest.indexOf("\r\n");
    if (lineEnd < 0) return out;
    const size = parseInt(rest.slice(0, lineEnd), 16);
    if (!(size > 0)) return out;
    const bytes = encoder.encode(rest.slice(lineEnd + 2));
    if (bytes.length < size) return out;
    out += decoder.decode(bytes.subarray(0, size));
    rest = decoder.decode(bytes.subarray(size)).replace(/^\r\n/, "");
  }
}

/** Resolves once the server closes `conn` (EOF or reset). */
async function closedByServer(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(1024);
  try {
    while ((await conn.read(buffer)) !== null) {
      // Nothing more is expected; keep reading until the end.
    }
  } catch {
    // A reset is a close too.
  }
}

function post(headers: string[]): string {
  return ["POST / HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", ...headers]
    .join("\r\n") + "\r\n\r\n";
}

/** A chunk of a chunked body. */
function chunk(text: string): string {
  return `${encoder.encode(text).length.toString(16)}\r\n${text}\r\n`;
}

/** Parts that send `text` one character at a time, `pauseMs` apart. */
function trickle(text: string, pauseMs: number): Part[] {
  return [...text].map((c) => ({ text: c, pauseMs }));
}

Deno.test("a body that arrives with its headers is parsed (plain stream)", async () => {
  const server = serveBodies({ maxBytes: 1000 });
  try {
    const json = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: { s: "é[{" } });
    const response = await exchange(server.port, [
      { text: post([`Content-Length: ${encoder.encode(json).length}`]) + json },
    ]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-body-kind"), "plain");
    assert.deepEqual(JSON.parse(response.body), { value: JSON.parse(json) });
  } finally {
    await server.close();
  }
});

Deno.test("a body that arrives after its headers is read into one buffer (byte stream)", async () => {
  const server = serveBodies({ maxBytes: 1000 });
  try {
    const json = JSON.stringify({ list: Array.from({ length: 20 }, (_, i) => i) });
    const response = await exchange(server.port, [
      { text: post([`Content-Length: ${json.length}`]) },
      ...trickle(json.slice(0, 5), 20),
      { text: json.slice(5), pauseMs: 20 },
    ]);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-body-kind"), "byob");
    assert.deepEqual(JSON.parse(response.body), { value: JSON.parse(json) });
  } finally {
    await server.close();
  }
});

Deno.test("a chunked body is parsed, and one byte over the bound is 413 (both paths)", async () => {
  const server = serveBodies({ maxBytes: 64 });
  try {
    const exact = JSON.stringify({ s: "x".repeat(56) });
    assert.equal(exact.length, 64);
    const headers = post(["Transfer-Encoding: chunked"]);
    const ok = await exchange(server.port, [
      { text: headers },
      { text: chunk(exact.slice(0, 30)), pauseMs: 20 },
      { text: chunk(exact.slice(30)) + "0\r\n\r\n", pauseMs: 20 },
    ]);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.headers.get("x-body-kind"), "byob");
    assert.deepEqual(JSON.parse(ok.body), { value: JSON.parse(exact) });

    const over = JSON.stringify({ s: "x".repeat(57) });
    const streamed = await exchange(server.port, [
      { text: headers },
      { text: chunk(over.slice(0, 30)), pauseMs: 20 },
      { text: chunk(over.slice(30)) + "0\r\n\r\n", pauseMs: 20 },
    ]);
    assert.equal(streamed.status, 413);
    assert.equal(streamed.headers.get("x-body-kind"), "byob");
    assert.deepEqual(JSON.parse(streamed.body), {
      jsonrpc: "2.0",
      id: null,
      error: { code: -32600, message: "Message larger than 64 bytes" },
    });

    const atOnce = await exchange(server.port, [{ text: headers + chunk(over) + "0\r\n\r\n" }]);
    assert.equal(atOnce.status, 413);
    assert.equal(atOnce.headers.get("x-body-kind"), "plain");
  } finally {
    await server.close();
  }
});

Deno.test("chunked bodies that end a few bytes short of the buffer's end are parsed", async () => {
  // A chunked body's buffers hold 4 KiB, then 4 KiB + 64 bytes and their doublings: these
  // bodies would leave 1 to 9 bytes of one free, where Deno 2.9 never reports the end of the
  // body to a BYOB read whose view is that small.
  const server = serveBodies({ maxBytes: 100_000 });
  try {
    for (const length of [4096, 4160, 8320].flatMap((end) => [1, 3, 7, 9].map((f) => end - f))) {
      const json = JSON.stringify({ s: "x".repeat(length - 8) });
      assert.equal(json.length, length);
      const response = await exchange(server.port, [
        { text: post(["Transfer-Encoding: chunked"]) },
        { text: chunk(json.slice(0, 100)), pauseMs: 20 },
        { text: chunk(json.slice(100)) + "0\r\n\r\n", pauseMs: 20 },
      ]);
      assert.equal(response.status, 200, `${length} bytes: ${response.body.slice(0, 200)}`);
      assert.equal(response.headers.get("x-body-kind"), "byob");
      assert.equal(JSON.parse(response.body).value.s.length, json.length - 8);
    }
  } finally {
    await server.close();
  }
});

Deno.test("a declared Content-Length over the bound is refused with 413 before any body byte", async () => {
  const server = serveBodies({ maxBytes: 1000 });
  try {
    // No body is ever sent: the answer cannot depend on reading it.
    const response = await exchange(server.port, [{ text: post(["Content-Length: 1001"]) }]);
    assert.equal(response.status, 413);
    assert.equal(JSON.parse(response.body).error.message, "Message larger than 1000 bytes");
  } finally {
    await server.close();
  }
});

Deno.test("a body slower than the minimum rate after the grace gets 408 and the connection is closed", async () => {
  const server = serveBodies({
    maxBytes: 100_000,
    minBytesPerSecond: 1000,
    graceMs: 300,
    timeoutMs: 60_000,
  });
  try {
    // A byte every 400 ms: far below 1,000 a second once the 300 ms grace is over, and slow
    // enough that the next byte comes well after the 408 (the connection must still close).
    const response = await exchange(server.port, [
      { text: post(["Content-Length: 10000"]) },
      ...trickle("x".repeat(10_000), 400),
    ], { awaitClose: true });
    assert.equal(response.status, 408);
    assert.match(response.headers.get("connection") ?? "", CLOSE);
    assert.equal(response.headers.get("x-body-kind"), "byob");
    const { error } = JSON.parse(response.body);
    assert.equal(error.code, -32600);
    const [, bytes, seconds] =
      /^Request body too slow: (\d+) bytes in (\d+\.\d) s \(the body must arrive within 60 s, at 1000 bytes\/s or faster\)$/
        .exec(error.message) ?? assert.fail(error.message);
    // Refused once the grace was over, never before, with hardly any of the body received.
    assert.ok(Number(seconds) >= 0.3, error.message);
    assert.ok(Number(bytes) < 10, error.message);
  } finally {
    await server.close();
  }
});

Deno.test("a body still arriving at the deadline gets 408 even at a good rate", async () => {
  const server = serveBodies({
    maxBytes: 100_000,
    minBytesPerSecond: 1,
    graceMs: 100,
    timeoutMs: 400,
  });
  try {
    // 50 bytes a second is well above 1 byte/s, but 10,000 bytes take 200 s.
    const response = await exchange(server.port, [
      { text: post(["Content-Length: 10000"]) },
      ...trickle("x".repeat(10_000), 20),
    ], { awaitClose: true });
    assert.equal(response.status, 408);
    assert.match(response.headers.get("connection") ?? "", CLOSE);
    const { message } = JSON.parse(response.body).error;
    const [, seconds] =
      /^Request body too slow: \d+ bytes in (\d+\.\d) s \(the body must arrive within 0\.4 s, at 1 bytes\/s or faster\)$/
        .exec(message) ?? assert.fail(message);
    assert.ok(Number(seconds) >= 0.4, `refused at the deadline, not before: ${message}`);
  } finally {
    await server.close();
  }
});

Deno.test("a body that keeps the rate is read completely, past the grace", async () => {
  const server = serveBodies({
    maxBytes: 100_000,
    minBytesPerSecond: 10,
    graceMs: 100,
    timeoutMs: 60_000,
  });
  try {
    // 20 ms per byte is 50 bytes a second: five times the minimum.
    const json = JSON.stringify({ a: "abcdefghij" });
    const response = await exchange(server.port, [
      { text: post([`Content-Length: ${json.length}`]) },
      ...trickle(json, 20),
    ]);
    assert.equal(response.status, 200, response.body);
    assert.deepEqual(JSON.parse(response.body), { value: { a: "abcdefghij" } });
  } finally {
    await server.close();
  }
});

Deno.test("JSON past the nesting or value bounds is refused with -32600 before parsing", async () => {
  const server = serveBodies({ maxBytes: 100_000, json: { maxDepth: 4, maxElements: 10 } });
  try {
    for (
      const [json, problem] of [
        ["[[[[[]]]]]", "it nests arrays and objects deeper than 4 levels"],
        [`[${"1,".repeat(10)}1]`, "it holds more than 10 values"],
      ]
    ) {
      const response = await exchange(server.port, [
        { text: post([`Content-Length: ${json.length}`]) + json },
      ]);
      assert.equal(response.status, 400);
      assert.deepEqual(JSON.parse(response.body).error, {
        code: -32600,
        message: `Invalid Request: the body is refused: ${problem}`,
      });
    }
    const inString = JSON.stringify({ s: "[[[[[[[[,,,,,,,,,,,,,,]" });
    const ok = await exchange(server.port, [
      { text: post([`Content-Length: ${inString.length}`]) + inString },
    ]);
    assert.equal(ok.status, 200, "brackets in strings do not count");
  } finally {
    await server.close();
  }
});

Deno.test("a body crossing a JSON bound is refused as it arrives, before the rest is sent", async () => {
  const server = serveBodies({ maxBytes: 32 * 1024 * 1024 });
  try {
    // 32 MiB are declared but only the first 512 KiB are ever sent: the refusal cannot wait
    // for the whole body.
    const prefix = "[" + "[],".repeat((512 * 1024) / 3);
    const response = await exchange(server.port, [
      { text: post([`Content-Length: ${32 * 1024 * 1024}`]) },
      { text: prefix, pauseMs: 20 },
    ]);
    assert.equal(response.status, 400);
    assert.equal(response.headers.get("x-body-kind"), "byob");
    assert.deepEqual(JSON.parse(response.body).error, {
      code: -32600,
      message: "Invalid Request: the body is refused: it holds more than 100000 values",
    });
    const deep = await exchange(server.port, [
      { text: post([`Content-Length: ${32 * 1024 * 1024}`]) },
      { text: "[".repeat(200), pauseMs: 20 },
    ]);
    assert.equal(deep.status, 400);
    assert.equal(
      JSON.parse(deep.body).error.message,
      "Invalid Request: the body is refused: it nests arrays and objects deeper than 128 levels",
    );
  } finally {
    await server.close();
  }
});

Deno.test("invalid JSON is -32700, and a body cut short is answered, not a 500", async () => {
  const server = serveBodies({ maxBytes: 1000 });
  try {
    const bad = await exchange(server.port, [{ text: post(["Content-Length: 5"]) + "{nope" }]);
    assert.equal(bad.status, 400);
    assert.deepEqual(JSON.parse(bad.body).error, {
      code: -32700,
      message: "Parse error: the body is not valid JSON",
    });
    // The client declares 100 bytes, sends 10 and half-closes.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await writeAll(conn, encoder.encode(post(["Content-Length: 100"]) + '{"a":"bcd'));
    await conn.closeWrite();
    const text = await within(STEP_MS, "an answer to a truncated body", readAll(conn));
    conn.close();
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /"code":-32700,"message":"Parse error: the body could not be read"/);
  } finally {
    await server.close();
  }
});

async function readAll(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buffer = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return text;
    text += decoder.decode(buffer.subarray(0, n));
  }
}

/** A request whose body is a default (non-byte) stream the test feeds. */
function plainRequest(parts: string[], headers: Record<string, string> = {}) {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const cancelled = Promise.withResolvers<void>();
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    cancel: () => cancelled.resolve(),
  });
  for (const part of parts) controller.enqueue(encoder.encode(part));
  const request = new Request("http://127.0.0.1/", {
    method: "POST",
    headers,
    body,
  });
  return { request, controller, cancelled: cancelled.promise };
}

Deno.test("on a non-byte stream, chunks are copied into the buffer, bounded and timed the same way", async () => {
  const parsed = plainRequest(['{"a":', "[1,2,", "3]}"]);
  parsed.controller.close();
  assert.equal(bodyKind(parsed.request), "plain");
  assert.deepEqual(await readJsonBody(parsed.request, { maxBytes: 100 }), {
    ok: true,
    value: { a: [1, 2, 3] },
  });

  const big = plainRequest(["x".repeat(60), "x".repeat(60)]);
  const tooBig = await readJsonBody(big.request, { maxBytes: 100 });
  assert.equal(tooBig.ok, false);
  assert.equal(!tooBig.ok && tooBig.response.status, 413);
  await big.cancelled;

  // Nothing more arrives in time: the deadline ends the read. The pending read is abandoned,
  // not cancelled (Deno would then never drop the connection): the body is cancelled once
  // the client's next bytes settle it.
  const stalled = plainRequest(['{"a":']);
  let cancelled = false;
  stalled.cancelled.then(() => (cancelled = true));
  const slow = await readJsonBody(stalled.request, {
    maxBytes: 100,
    timeoutMs: 200,
    graceMs: 0,
    minBytesPerSecond: 1,
  });
  assert.equal(!slow.ok && slow.response.status, 408);
  assert.equal(!slow.ok && slow.response.headers.get("connection"), "close");
  for (let i = 0; i < 20; i++) await Promise.resolve();
  assert.equal(cancelled, false, "not cancelled while its read is pending");
  stalled.controller.enqueue(encoder.encode("1"));
  await stalled.cancelled;
  if (!slow.ok) await slow.response.body?.cancel();
});

Deno.test("an empty POST is a parse error, not a crash", async () => {
  const request = new Request("http://127.0.0.1/", { method: "POST" });
  const result = await readJsonBody(request, { maxBytes: 100 });
  assert.equal(!result.ok && result.response.status, 400);
  assert.equal(!result.ok && (await result.response.json()).error.message, "Empty body");
});
