/**
 * The fast check of Anthropic's streamed deltas never accepts what the zod
 * schema refuses: every delta of a corpus of valid ones and of their
 * mutations (each field replaced by a value of every other JSON type) is
 * checked both ways.
 *
 * @module
 */

import assert from "node:assert/strict";
import { deltaEventShape } from "../../../src/providers/anthropic/wire.ts";

const VALUES: unknown[] = [null, true, 0, -1, 1.5, "", "text", [], [1], {}, { a: 1 }];

const DELTAS: Record<string, unknown>[] = [
  { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hello" } },
  { type: "content_block_delta", index: 1, delta: { type: "thinking_delta", thinking: "hmm" } },
  {
    type: "content_block_delta",
    index: 2,
    delta: { type: "input_json_delta", partial_json: '{"city":' },
  },
  { type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "Eq" } },
  { type: "content_block_delta", index: 0, delta: { type: "citations_delta", citation: {} } },
];

function mutations(value: Record<string, unknown>): unknown[] {
  const out: unknown[] = [];
  for (const [key, field] of Object.entries(value)) {
    for (const replacement of VALUES) out.push({ ...value, [key]: replacement });
    if (typeof field === "object" && field !== null && !Array.isArray(field)) {
      for (const inner of mutations(field as Record<string, unknown>)) {
        out.push({ ...value, [key]: inner });
      }
    }
  }
  return out;
}

Deno.test("the fast delta check accepts only deltas zod accepts, and takes the common ones", () => {
  const corpus = [...DELTAS, ...DELTAS.flatMap(mutations), ...VALUES];
  let fast = 0;
  for (const value of corpus) {
    if (deltaEventShape.fast!(value)) {
      fast++;
      assert.equal(deltaEventShape.schema.safeParse(value).success, true, JSON.stringify(value));
    }
  }
  // Text, thinking and tool-argument fragments take the fast path; the rest go to zod.
  assert.deepEqual(DELTAS.map((d) => deltaEventShape.fast!(d)), [true, true, true, false, false]);
  assert.ok(fast > 3);
});
