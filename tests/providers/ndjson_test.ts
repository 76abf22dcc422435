/**
 * Unit tests of the NDJSON line splitter and parser.
 *
 * @module
 */

import assert from "node:assert/strict";
import { LineTooLongError, parseNdjson, splitLines } from "../../src/providers/ndjson.ts";
import { InvalidResponseError } from "../../src/providers/errors.ts";

function textStream(parts: string[]): ReadableStream<string> {
  return ReadableStream.from(parts);
}

function byteStream(parts: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(parts.map((p) => encoder.encode(p)));
}

async function lines(parts: string[], options = {}): Promise<string[]> {
  return await Array.fromAsync(textStream(parts).pipeThrough(splitLines(options)));
}

Deno.test("splitLines() joins lines split across chunks and drops CR", async () => {
  assert.deepEqual(await lines(['{"a":', '1}\r\n{"b"', ":2}\n", "tail"]), [
    '{"a":1}',
    '{"b":2}',
    "tail",
  ]);
});

Deno.test("splitLines() emits empty lines and handles many lines in one chunk", async () => {
  assert.deepEqual(await lines(["a\n\nb\nc\n"]), ["a", "", "b", "c"]);
});

Deno.test("splitLines() fails the stream on a line over the bound", async () => {
  await assert.rejects(lines(["x".repeat(11)], { maxLineLength: 10 }), LineTooLongError);
  await assert.rejects(lines(["xxxxxx", "xxxxxx\n"], { maxLineLength: 10 }), LineTooLongError);
});

Deno.test("splitLines() with onTooLong skips the oversized line and keeps going", async () => {
  let skipped = 0;
  const out = await lines(["ok\n", "x".repeat(8), "y".repeat(8), "z\nafter\n"], {
    maxLineLength: 10,
    onTooLong: () => skipped++,
  });
  assert.deepEqual(out, ["ok", "after"]);
  assert.equal(skipped, 1);
});

Deno.test("parseNdjson() yields objects as lines arrive, across byte chunks", async () => {
  const values = await Array.fromAsync(
    parseNdjson(byteStream(['{"n":1}\n{"n"', ':2}\n\n{"s":"\u00e9"}\n'])),
  );
  assert.deepEqual(values, [{ n: 1 }, { n: 2 }, { s: "é" }]);
});

Deno.test("parseNdjson() decodes multi-byte characters split between chunks", async () => {
  const bytes = new TextEncoder().encode('{"s":"\u20ac"}\n');
  const body = ReadableStream.from([bytes.slice(0, 7), bytes.slice(7)]);
  assert.deepEqual(await Array.fromAsync(parseNdjson(body)), [{ s: "€" }]);
});

Deno.test("parseNdjson() rejects a line that is not JSON", async () => {
  await assert.rejects(
    Array.fromAsync(parseNdjson(byteStream(['{"ok":true}\n', "<html>oops</html>\n"]))),
    (error: Error) => error instanceof InvalidResponseError && /not JSON/.test(error.message),
  );
});

Deno.test("parseNdjson() cancels the body when the consumer stops early", async () => {
  let cancelled = false;
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(encoder.encode('{"n":1}\n'));
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const _value of parseNdjson(body)) break;
  assert.equal(cancelled, true);
});
