/**
 * The SSE parser seam: events split across chunks, multi-line data,
 * comments, CRLF line ends, an unterminated last event, and the bound on
 * one event.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LineTooLongError } from "../../src/providers/ndjson.ts";
import { sseParser } from "../../src/providers/sse.ts";

Deno.test("sse parser yields events as their blank line arrives, across chunk boundaries", () => {
  const parser = sseParser();
  assert.deepEqual(parser.push("event: message_start\nda"), []);
  assert.deepEqual(parser.push('ta: {"a":1}\n'), []);
  assert.deepEqual(parser.push("\n: keep-alive comment\n\ndata: [DONE]\n\n"), [
    { event: "message_start", data: '{"a":1}' },
    { data: "[DONE]" },
  ]);
});

Deno.test("sse parser joins data lines and accepts CRLF and ids", () => {
  const parser = sseParser();
  assert.deepEqual(parser.push("id: 7\r\ndata: one\r\ndata: two\r\n\r\n"), [
    { data: "one\ntwo", id: "7" },
  ]);
});

Deno.test("sse parser hands over an unterminated last event at the end", () => {
  const parser = sseParser();
  assert.deepEqual(parser.push("event: ping\ndata: {}"), []);
  assert.deepEqual(parser.end(), [{ event: "ping", data: "{}" }]);
});

Deno.test("an event longer than the bound is refused as an invalid response", () => {
  const parser = sseParser({ maxEventLength: 64 });
  assert.throws(
    () => parser.push(`data: ${"x".repeat(100)}`),
    (error: Error) =>
      error instanceof LineTooLongError && /longer than 64 characters/.test(error.message),
  );
});
