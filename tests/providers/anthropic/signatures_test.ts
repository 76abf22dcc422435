/**
 * The memory of signed thinking blocks: recalled by exact text, bounded by
 * entries and by size, least recently used out first.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  SignatureMemory,
  type ThinkingBlock,
} from "../../../src/providers/anthropic/signatures.ts";

function signed(thinking: string): ThinkingBlock[] {
  return [{ type: "thinking", thinking, signature: `sig-${thinking}` }];
}

Deno.test("thinking is recalled only by its exact text", () => {
  const memory = new SignatureMemory();
  memory.remember("step one", signed("step one"));
  assert.deepEqual(memory.recall("step one"), signed("step one"));
  assert.equal(memory.recall("step one "), undefined);
  assert.equal(memory.recall("other"), undefined);
  memory.remember("", signed(""));
  assert.equal(memory.size, 1, "empty thinking is not remembered");
});

Deno.test("the memory keeps at most maxEntries turns, least recently used out first", () => {
  const memory = new SignatureMemory({ maxEntries: 2 });
  memory.remember("a", signed("a"));
  memory.remember("b", signed("b"));
  memory.recall("a");
  memory.remember("c", signed("c"));
  assert.equal(memory.size, 2);
  assert.equal(memory.recall("b"), undefined, "b was least recently used");
  assert.deepEqual(memory.recall("a"), signed("a"));
  assert.deepEqual(memory.recall("c"), signed("c"));
});

Deno.test("the memory keeps at most maxChars, and never one turn larger than that", () => {
  const memory = new SignatureMemory({ maxChars: 100 });
  memory.remember("x".repeat(20), signed("x".repeat(20))); // 20 + 20 + 24 = 64
  memory.remember("y".repeat(10), signed("y".repeat(10))); // 10 + 10 + 14 = 34: 98 in all
  assert.equal(memory.size, 2);
  memory.remember("z", signed("z")); // 1 + 1 + 5 = 7: the oldest goes
  assert.equal(memory.size, 2);
  assert.equal(memory.recall("x".repeat(20)), undefined);
  memory.remember("w".repeat(60), signed("w".repeat(60)));
  assert.equal(memory.recall("w".repeat(60)), undefined, "larger than the whole memory");
  assert.equal(memory.size, 2);
});
