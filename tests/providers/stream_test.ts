/**
 * The shared body readers: {@linkcode readStream} with a parser plugged
 * into its seam (a blank-line-separated event parser, the shape an SSE
 * parser takes), and {@linkcode readText}'s byte bound and cancellation.
 *
 * @module
 */

import assert from "node:assert/strict";
import { readStream, readText, type StreamParser } from "../../src/providers/stream.ts";

const encoder = new TextEncoder();

/** A body that yields `parts` and records whether it was cancelled. */
function body(parts: string[], endless = false) {
  let i = 0;
  const state = { cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < parts.length) controller.enqueue(encoder.encode(parts[i++]));
      else if (endless) controller.enqueue(encoder.encode("x".repeat(1024)));
      else controller.close();
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

/** Events separated by a blank line, each the text of its `data:` lines. */
function eventParser(): StreamParser<string> {
  let pending = "";
  const take = (final: boolean): string[] => {
    const blocks = pending.split("\n\n");
    pending = final ? "" : blocks.pop()!;
    return blocks.filter((b) => b.trim() !== "").map((block) =>
      block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join(
        "\n",
      )
    );
  };
  return {
    push(text) {
      pending += text;
      return take(false);
    },
    end: () => take(true),
  };
}

Deno.test("readStream() feeds any parser: events split across chunks arrive whole and in order", async () => {
  const { stream } = body(["data: one\n", "\ndata: tw", "o\ndata: more\n\n", "data: last"]);
  assert.deepEqual(await Array.fromAsync(readStream(stream, eventParser())), [
    "one",
    "two\nmore",
    "last",
  ]);
});

Deno.test("readStream() cancels the body when the consumer stops early", async () => {
  const { stream, state } = body(["data: a\n\n"], true);
  for await (const _event of readStream(stream, eventParser())) break;
  assert.equal(state.cancelled, true);
});

Deno.test("readStream() ends with the signal's reason and cancels the body on abort", async () => {
  const { stream, state } = body(["data: a\n\n"], true);
  const controller = new AbortController();
  await assert.rejects(
    (async () => {
      for await (const _event of readStream(stream, eventParser(), { signal: controller.signal })) {
        controller.abort(new Error("stop"));
      }
    })(),
    /stop/,
  );
  assert.equal(state.cancelled, true);
});

Deno.test("readText() reads a body of exactly the bound whole", async () => {
  const { stream, state } = body(["abc", "def"]);
  assert.deepEqual(await readText(stream, { maxBytes: 6 }), {
    text: "abcdef",
    truncated: false,
    bytes: 6,
  });
  assert.equal(state.cancelled, false);
});

Deno.test("readText() stops one byte past the bound, keeps the prefix and cancels the rest", async () => {
  const { stream, state } = body(["abc", "defg"], true);
  assert.deepEqual(await readText(stream, { maxBytes: 6 }), {
    text: "abcdef",
    truncated: true,
    bytes: 6,
  });
  assert.equal(state.cancelled, true);
});
