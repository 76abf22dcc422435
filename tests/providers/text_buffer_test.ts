import assert from "node:assert/strict";
import { FOLD_PARTS, TextBuffer } from "../../src/providers/text_buffer.ts";

Deno.test("TextBuffer joins deltas in order across folds", () => {
  const buffer = new TextBuffer();
  assert.equal(buffer.empty, true);
  assert.equal(buffer.text, "");
  buffer.add("");
  assert.equal(buffer.empty, true);
  let expected = "";
  for (let i = 0; i < FOLD_PARTS * 2 + 7; i++) {
    buffer.add(`|${i}`);
    expected += `|${i}`;
  }
  assert.equal(buffer.empty, false);
  assert.equal(buffer.text, expected);
});
