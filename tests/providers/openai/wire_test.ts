/**
 * The fast checks of the OpenAI-compatible reply shapes never accept what
 * the zod schema refuses: every value of a corpus of valid chunks and
 * embedding replies, and of their mutations (each field, and each field of
 * nested objects and of the first array element, replaced by a value of
 * every JSON type), is checked both ways.
 *
 * @module
 */

import assert from "node:assert/strict";
import { chunkShape, embeddingsShape } from "../../../src/providers/openai/wire.ts";
import type { Shape } from "../../../src/providers/validate.ts";

const VALUES: unknown[] = [null, true, 0, -1, 1.5, "", "text", [], [1], {}, { a: 1 }];

const frame = { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: "m" };

const CHUNKS: Record<string, unknown>[] = [
  {
    ...frame,
    choices: [{
      index: 0,
      delta: { role: "assistant", content: "", refusal: null },
      logprobs: null,
      finish_reason: null,
    }],
    usage: null,
  },
  { ...frame, choices: [{ index: 0, delta: { content: " hi" }, finish_reason: null }] },
  {
    ...frame,
    choices: [{ index: 0, delta: { content: null, reasoning_content: "hm" }, finish_reason: null }],
  },
  { ...frame, choices: [{ index: 0, delta: { reasoning: "hm" }, finish_reason: null }] },
  { ...frame, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
  {
    ...frame,
    choices: [],
    usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 },
  },
  {
    ...frame,
    choices: [{
      index: 0,
      delta: {
        tool_calls: [{
          index: 0,
          id: "call_1",
          type: "function",
          function: { name: "f", arguments: "" },
        }],
      },
      finish_reason: null,
    }],
  },
  { ...frame, choices: null, usage: { prompt_tokens: 1 } },
];

/** Each value with one field (nested objects and first array elements too) replaced by each of VALUES. */
function mutations(value: Record<string, unknown>, depth = 0): unknown[] {
  const out: unknown[] = [];
  for (const [key, field] of Object.entries(value)) {
    for (const replacement of VALUES) out.push({ ...value, [key]: replacement });
    if (depth > 3) continue;
    if (typeof field === "object" && field !== null && !Array.isArray(field)) {
      for (const inner of mutations(field as Record<string, unknown>, depth + 1)) {
        out.push({ ...value, [key]: inner });
      }
    }
    if (Array.isArray(field) && typeof field[0] === "object" && field[0] !== null) {
      for (const inner of mutations(field[0] as Record<string, unknown>, depth + 1)) {
        out.push({ ...value, [key]: [inner, ...field.slice(1)] });
      }
    }
  }
  return out;
}

function assertFastWithinSchema<T>(shape: Shape<T>, corpus: unknown[]): number {
  let fastAccepted = 0;
  for (const value of corpus) {
    if (shape.fast?.(value)) {
      fastAccepted++;
      assert.equal(shape.schema.safeParse(value).success, true, JSON.stringify(value));
    }
  }
  return fastAccepted;
}

Deno.test("the fast chunk check accepts only chunks zod accepts", () => {
  const corpus = [...CHUNKS, ...CHUNKS.flatMap((c) => mutations(c)), ...VALUES];
  const accepted = assertFastWithinSchema(chunkShape, corpus);
  assert.ok(accepted > CHUNKS.length, `the fast path took ${accepted} values`);
  // The common chunks take the fast path: role, content, reasoning, finish; tool calls and usage go to zod.
  for (const chunk of CHUNKS.slice(0, 5)) assert.equal(chunkShape.fast!(chunk), true);
  assert.equal(chunkShape.fast!(CHUNKS[5]), false);
  assert.equal(chunkShape.fast!(CHUNKS[6]), false);
  for (const chunk of CHUNKS) assert.equal(chunkShape.schema.safeParse(chunk).success, true);
});

Deno.test("the fast embeddings check accepts only replies zod accepts", () => {
  const valid = {
    object: "list",
    data: [{ object: "embedding", index: 0, embedding: [0.1, -0.2] }, {
      object: "embedding",
      index: 1,
      embedding: "AACAPw==",
    }],
    model: "m",
    usage: { prompt_tokens: 2, total_tokens: 2 },
  };
  const corpus = [
    valid,
    ...mutations(valid),
    { ...valid, data: [{ index: 0, embedding: [0.1, "x"] }] },
    { ...valid, data: [{ index: 0.5, embedding: [] }] },
    { ...valid, data: [null] },
  ];
  assertFastWithinSchema(embeddingsShape, corpus);
  assert.equal(embeddingsShape.fast!(valid), true);
});
