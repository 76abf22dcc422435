/**
 * Reading Ollama's `parameters` text (`fmt.Sprintf("%-*s %#v", 30, key,
 * value)` per value) into values by name.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseParameters } from "../../../src/providers/ollama/convert.ts";

const line = (key: string, value: string) => `${key.padEnd(30)} ${value}`;

Deno.test("parameters: numbers, booleans and Go-quoted strings by name", () => {
  assert.deepEqual(
    parseParameters(
      [
        line("temperature", "0.6"),
        line("num_ctx", "8192"),
        line("repeat_penalty", "1"),
        line("mirostat_eta", "1e-05"),
        line("penalize_newline", "false"),
        line("stop", '"<|im_end|>"'),
      ].join("\n"),
    ),
    {
      temperature: 0.6,
      num_ctx: 8192,
      repeat_penalty: 1,
      mirostat_eta: 0.00001,
      penalize_newline: false,
      stop: ["<|im_end|>"],
    },
  );
});

Deno.test("parameters: a name on several lines becomes a list, in order", () => {
  assert.deepEqual(
    parseParameters(
      [line("stop", '"<|start_header_id|>"'), line("stop", '"<|eot_id|>"')].join("\n"),
    ),
    { stop: ["<|start_header_id|>", "<|eot_id|>"] },
  );
});

Deno.test("parameters: Go's escapes in quoted strings are undone", () => {
  assert.deepEqual(
    parseParameters(
      [
        line("stop", '"\\n\\nUser:"'),
        line("stop", '"tab\\there \\"quoted\\" back\\\\slash"'),
        line("stop", '"bell\\a nul\\x00 \\u00e9 \\U0001f600"'),
      ].join("\n"),
    ),
    { stop: ["\n\nUser:", 'tab\there "quoted" back\\slash', "bell\x07 nul\x00 é 😀"] },
  );
});

Deno.test("parameters: empty text is no parameters; a value that does not parse keeps its text", () => {
  assert.deepEqual(parseParameters(""), {});
  assert.deepEqual(parseParameters(line("seed", "[1 2]") + "\n" + line("bad", '"\\q"')), {
    seed: "[1 2]",
    bad: '"\\q"',
  });
});
