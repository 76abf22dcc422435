/**
 * Request framing as the header guard follows it: where header blocks start
 * and end across pipelined requests, bodies of known length, chunked bodies
 * and any split of the bytes; what becomes opaque (WebSocket upgrades, the
 * HTTP/2 preface, unframeable requests); and the bound on a header block.
 *
 * @module
 */

import assert from "node:assert/strict";
import { HeaderTooLargeError, RequestFraming } from "../../src/transports/request_framing.ts";

const encoder = new TextEncoder();

/** Feeds `text` in pieces of `piece` bytes and returns the events seen, in order. */
function follow(text: string, piece = Infinity, maxHeaderBytes = 65_536) {
  const events: string[] = [];
  const framing = new RequestFraming({
    headStart: () => events.push("start"),
    headEnd: () => events.push("end"),
    badRequest: (reason) => events.push(`bad: ${reason}`),
  }, { maxHeaderBytes });
  const bytes = encoder.encode(text);
  const step = Number.isFinite(piece) ? piece : bytes.length;
  for (let at = 0; at < bytes.length; at += step) framing.feed(bytes.subarray(at, at + step));
  return { events, inHead: framing.inHead, opaque: framing.opaque };
}

const GET = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
const POST = 'POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n{"a":"\r\n"}';
const CHUNKED = "POST /mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
  "5;ext=1\r\nab\r\nc\r\n6\r\nabcdef\r\n0\r\nX-Trailer: t\r\n\r\n";

Deno.test("pipelined requests with bodies of known length and chunked bodies are framed at any split", () => {
  const text = GET + POST + CHUNKED + "\r\n" + GET;
  for (const piece of [Infinity, 1, 2, 7, 64]) {
    assert.deepEqual(
      follow(text, piece),
      {
        // The first head starts with the connection; each later one with its first byte.
        events: ["end", "start", "end", "start", "end", "start", "end"],
        inHead: false,
        opaque: false,
      },
      `in pieces of ${piece}`,
    );
  }
});

Deno.test("a header block still arriving is in the head; a body's bytes are not", () => {
  assert.deepEqual(follow("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1"), {
    events: [],
    inHead: true,
    opaque: false,
  });
  assert.deepEqual(follow(POST.slice(0, -3)), { events: ["end"], inHead: false, opaque: false });
  assert.deepEqual(follow(GET + "P"), { events: ["end", "start"], inHead: true, opaque: false });
});

Deno.test("bare LF line ends and empty lines before a request are accepted", () => {
  assert.deepEqual(follow("\r\n\nGET / HTTP/1.1\nHost: a\n\n" + "\r\n" + GET), {
    events: ["end", "start", "end"],
    inHead: false,
    opaque: false,
  });
});

Deno.test("a WebSocket upgrade, the HTTP/2 preface and unframeable requests end the framing", () => {
  const upgrade =
    "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";
  assert.deepEqual(follow(upgrade + "\x81\x85binary frames"), {
    events: ["end"],
    inHead: false,
    opaque: true,
  });
  assert.equal(follow("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04").opaque, true);
  for (
    const fields of [
      "Content-Length: 5\r\nContent-Length: 6",
      "Content-Length: -1",
      "Transfer-Encoding: gzip",
      "Transfer-Encoding: chunked\r\nContent-Length: 5",
      "no colon here",
    ]
  ) {
    assert.equal(follow(`POST / HTTP/1.1\r\nHost: a\r\n${fields}\r\n\r\n`).opaque, true, fields);
  }
  assert.equal(follow(CHUNKED.replace("5;ext=1", "zz")).opaque, true, "a bad chunk size");
  // An h2c upgrade is not a WebSocket: Deno's server answers it as HTTP/1.1.
  assert.equal(
    follow("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n").opaque,
    false,
  );
});

Deno.test("a header block over its bound throws, however it is split", () => {
  const big = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + "x".repeat(2000) + "\r\n\r\n";
  for (const piece of [Infinity, 100]) {
    assert.throws(
      () => follow(big, piece, 1024),
      (error: Error) => error instanceof HeaderTooLargeError && error.maxBytes === 1024,
    );
  }
  assert.deepEqual(follow(big, 100, 4096).events, ["end"]);
});

Deno.test("an HTTP/1.1 request without Host is a bad request and the rest is opaque; HTTP/1.0 needs none", () => {
  assert.deepEqual(follow("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n" + GET), {
    events: ["bad: An HTTP/1.1 request needs a Host header."],
    inHead: false,
    opaque: true,
  });
  assert.deepEqual(follow("GET / HTTP/1.0\r\n\r\n"), {
    events: ["end"],
    inHead: false,
    opaque: false,
  });
});
