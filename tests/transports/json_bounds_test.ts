/**
 * The JSON pre-scan: nesting depth and value counts at their exact bounds,
 * brackets, commas and escaped quotes inside strings ignored, and a scan
 * that stops at the first bound crossed.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  checkJsonBounds,
  createJsonBoundsScanner,
  type JsonBounds,
  MAX_MESSAGE_DEPTH,
  MAX_MESSAGE_ELEMENTS,
  valueExceedsDepth,
} from "../../src/transports/json_bounds.ts";
import { prng } from "../faults/support.ts";

const DEPTH = `it nests arrays and objects deeper than ${MAX_MESSAGE_DEPTH} levels`;
const VALUES = `it holds more than ${MAX_MESSAGE_ELEMENTS} values`;

/** `n` nested arrays: `[[[...]]]`. */
function nested(n: number, open = "[", close = "]"): string {
  return open.repeat(n) + close.repeat(n);
}

Deno.test("nesting up to the depth limit passes and one level more is refused", () => {
  assert.equal(checkJsonBounds(nested(MAX_MESSAGE_DEPTH)), undefined);
  assert.equal(checkJsonBounds(nested(MAX_MESSAGE_DEPTH + 1)), DEPTH);
  // Objects count like arrays, and mixed nesting adds up.
  const objects = '{"a":'.repeat(MAX_MESSAGE_DEPTH) + "1" + "}".repeat(MAX_MESSAGE_DEPTH);
  assert.equal(checkJsonBounds(objects), undefined);
  assert.equal(checkJsonBounds(`[${objects}]`), DEPTH);
  assert.equal(
    checkJsonBounds(nested(3), { maxDepth: 2 }),
    "it nests arrays and objects deeper than 2 levels",
  );
  assert.equal(checkJsonBounds(nested(2), { maxDepth: 2 }), undefined);
});

Deno.test("depth is the deepest point, not the number of containers", () => {
  // 1,000 sibling arrays at level 2 are 1,001 containers but only two levels deep.
  const siblings = `[${Array(1000).fill("[]").join(",")}]`;
  assert.equal(checkJsonBounds(siblings, { maxDepth: 2 }), undefined);
});

Deno.test("values are counted as separators plus containers, exactly at the bound", () => {
  // [1,2,3]: one container and two commas.
  assert.equal(checkJsonBounds("[1,2,3]", { maxElements: 3 }), undefined);
  assert.equal(checkJsonBounds("[1,2,3,4]", { maxElements: 3 }), "it holds more than 3 values");
  // {"a":{"b":1},"c":2}: two containers and one comma.
  assert.equal(checkJsonBounds('{"a":{"b":1},"c":2}', { maxElements: 3 }), undefined);
  assert.equal(
    checkJsonBounds('{"a":{"b":[]},"c":2}', { maxElements: 3 }),
    "it holds more than 3 values",
  );
  const many = `[${Array(MAX_MESSAGE_ELEMENTS).fill("0").join(",")}]`;
  assert.equal(checkJsonBounds(many), undefined, "one container and 99,999 commas");
  assert.equal(checkJsonBounds(`[${many}]`), VALUES);
});

Deno.test("brackets and commas inside strings are ignored, escaped quotes included", () => {
  const brackets = JSON.stringify({ text: "[[[[{{{{,,,,".repeat(100) });
  assert.equal(checkJsonBounds(brackets, { maxDepth: 1, maxElements: 1 }), undefined);
  // An escaped quote does not end the string: the brackets after it are still text.
  const escaped = JSON.stringify({ text: 'say "[[[[" and \\"{{{{\\"' });
  assert.equal(checkJsonBounds(escaped, { maxDepth: 1, maxElements: 1 }), undefined);
  // An even run of backslashes before a quote does end the string: what follows counts.
  const endsAfterBackslashes = '{"a":"x\\\\","b":[[[]]]}';
  assert.deepEqual(JSON.parse(endsAfterBackslashes), { a: "x\\", b: [[[]]] });
  assert.equal(
    checkJsonBounds(endsAfterBackslashes, { maxDepth: 3 }),
    "it nests arrays and objects deeper than 3 levels",
  );
  assert.equal(checkJsonBounds(endsAfterBackslashes, { maxDepth: 4 }), undefined);
  // Keys are strings too.
  assert.equal(checkJsonBounds('{"[[[,,,":1}', { maxDepth: 1, maxElements: 1 }), undefined);
  // A quote right after an escaped quote ends the string.
  assert.equal(
    checkJsonBounds('["\\"",[]]', { maxDepth: 1 }),
    "it nests arrays and objects deeper than 1 levels",
  );
});

Deno.test("the scan stops at the first bound crossed", () => {
  // Text after the deep prefix is never looked at: an unterminated string there changes nothing.
  const deepThenJunk = nested(MAX_MESSAGE_DEPTH + 1).slice(0, MAX_MESSAGE_DEPTH + 1) + '"' +
    "x".repeat(1000);
  assert.equal(checkJsonBounds(deepThenJunk), DEPTH);
  // Invalid JSON within the bounds is not the scan's business: JSON.parse refuses it after.
  assert.equal(checkJsonBounds("{nope"), undefined);
  assert.equal(checkJsonBounds('"unterminated [[[['), undefined);
});

Deno.test("a 32 MiB body of tiny values and one nested 16 million levels are refused in one pass", () => {
  const tiny = "[" + "[],".repeat((32 * 1024 * 1024) / 3 - 1) + "[]]";
  const deep = "[".repeat(16 * 1024 * 1024);
  // Measured as work done, not time: the refusal comes from the first bound crossed.
  assert.equal(checkJsonBounds(tiny), VALUES);
  assert.equal(checkJsonBounds(deep), DEPTH);
});

Deno.test("valueExceedsDepth measures parsed values without recursion", () => {
  assert.equal(valueExceedsDepth({ a: [1, { b: 2 }] }, 3), false);
  assert.equal(valueExceedsDepth({ a: [1, { b: [] }] }, 3), true);
  assert.equal(valueExceedsDepth("text", 0), false);
  // 100,000 levels: a recursive walk would overflow the stack.
  let deep: unknown[] = [];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.equal(valueExceedsDepth(deep, 128), true);
  assert.equal(valueExceedsDepth(deep, 100_001), false);
});

/** Scans `text` as UTF-8 bytes cut at the given offsets. */
function scanInChunks(text: string, cuts: number[], bounds?: JsonBounds): string | undefined {
  const bytes = new TextEncoder().encode(text);
  const scanner = createJsonBoundsScanner(bounds);
  let problem: string | undefined;
  let start = 0;
  for (const end of [...cuts.filter((c) => c > 0 && c < bytes.length), bytes.length]) {
    problem = scanner.push(bytes.subarray(start, end));
    start = end;
  }
  return problem;
}

Deno.test("the byte scanner agrees with the text scan however the bytes are cut", () => {
  const random = prng(17);
  const samples = [
    nested(5),
    '{"a":"x\\","b":[[[]]]}',
    JSON.stringify({ s: 'say "[[[[" and \\"{{{{\\"', t: "é€😀[[[", u: ["\\", '\\"[', [[1]]] }),
    JSON.stringify({ list: [1, [2, [3, [4, { five: '\\\\"}}}' }]]]] }),
    `[${Array(30).fill('"\\""').join(",")}]`,
    '"unterminated [[[[',
    "{nope",
    "]]]][[[[[[",
  ];
  for (const text of samples) {
    for (const bounds of [{ maxDepth: 3, maxElements: 8 }, { maxDepth: 4 }, {}]) {
      const expected = checkJsonBounds(text, bounds);
      const length = new TextEncoder().encode(text).length;
      assert.equal(scanInChunks(text, [], bounds), expected, `${text} whole`);
      // Every single cut, then random multi-cuts.
      for (let cut = 1; cut < length; cut++) {
        assert.equal(scanInChunks(text, [cut], bounds), expected, `${text} cut at ${cut}`);
      }
      for (let round = 0; round < 50; round++) {
        const cuts = Array.from({ length: 4 }, () => Math.floor(random() * length)).sort((a, b) =>
          a - b
        );
        assert.equal(scanInChunks(text, cuts, bounds), expected, `${text} cut at ${cuts}`);
      }
    }
  }
});

Deno.test("the byte scanner reports a crossed bound at once and keeps reporting it", () => {
  const scanner = createJsonBoundsScanner({ maxDepth: 2 });
  const encoder = new TextEncoder();
  assert.equal(scanner.push(encoder.encode("[[")), undefined);
  assert.equal(
    scanner.push(encoder.encode("[")),
    "it nests arrays and objects deeper than 2 levels",
  );
  assert.equal(
    scanner.push(encoder.encode("]]]")),
    "it nests arrays and objects deeper than 2 levels",
    "closing brackets afterwards change nothing",
  );
});
