/**
 * The fast checks of Ollama's reply shapes never accept what the zod
 * schema refuses: every line of a corpus of valid lines and of their
 * mutations (each field replaced by a value of every other JSON type) is
 * checked both ways.
 *
 * @module
 */

import assert from "node:assert/strict";
import { embedShape, streamLineShape } from "../../../src/providers/ollama/wire.ts";
import type { Shape } from "../../../src/providers/validate.ts";

const VALUES: unknown[] = [null, true, 0, 1.5, "", "text", [], [1], {}, { a: 1 }];

const STREAM_LINES: Record<string, unknown>[] = [
  { model: "llama3.2", created_at: "2025-10-14T09:31:07Z", response: "Hi", done: false },
  { model: "qwen3", created_at: "t", response: "", thinking: "hmm", done: false },
  {
    model: "llama3.2",
    created_at: "t",
    message: { role: "assistant", content: " there", thinking: "x" },
    done: false,
  },
  {
    model: "llama3.2",
    created_at: "t",
    message: {
      role: "assistant",
      content: "",
      tool_calls: [{ id: "call_1", function: { index: 0, name: "f", arguments: { a: 1 } } }],
    },
    done: false,
  },
  {
    model: "llama3.2",
    created_at: "t",
    response: "",
    done: true,
    done_reason: "stop",
    total_duration: 1,
    load_duration: 2,
    prompt_eval_count: 3,
    prompt_eval_duration: 4,
    eval_count: 5,
    eval_duration: 6,
    context: [1, 2],
  },
  { error: "out of memory" },
];

/** Each value with one field (at any depth, first level of nested objects) replaced by each of VALUES. */
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

Deno.test("the fast stream-line check accepts only lines zod accepts", () => {
  const corpus = [...STREAM_LINES, ...STREAM_LINES.flatMap(mutations), ...VALUES];
  assertFastWithinSchema(streamLineShape, corpus);
  // The common lines take the fast path: tokens, thinking, chat content, the final line.
  for (const line of STREAM_LINES.slice(0, 3)) assert.equal(streamLineShape.fast!(line), true);
  assert.equal(streamLineShape.fast!(STREAM_LINES[4]), true);
});

Deno.test("the fast embedding check accepts only replies zod accepts", () => {
  const valid = { model: "m", embeddings: [[0.1, -0.2], [0.3, 0.4]], total_duration: 1 };
  const corpus = [
    valid,
    ...mutations(valid),
    { ...valid, embeddings: [[0.1, "x"]] },
    { ...valid, embeddings: [[0.1], null] },
    { ...valid, embeddings: [] },
  ];
  assertFastWithinSchema(embedShape, corpus);
  assert.equal(embedShape.fast!(valid), true);
});
