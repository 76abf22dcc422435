/**
 * `keep_alive` checked as Ollama checks it: Go's `time.ParseDuration`
 * against the cases of Go's own test table (`time/time_test.go`,
 * `parseDurationTests` and `parseDurationErrorTests`), and the tool
 * argument schema that uses it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { z } from "zod";
import { INPUTS } from "../../../src/mcp/tools/schemas.ts";
import { goDurationError, keepAliveError } from "../../../src/providers/ollama/mod.ts";

/** Inputs Go parses (from parseDurationTests). */
const VALID = [
  "0",
  "5s",
  "30s",
  "1478s",
  "-5s",
  "+5s",
  "-0",
  "+0",
  "5.0s",
  "5.6s",
  "5.s",
  ".5s",
  "1.0s",
  "1.00s",
  "1.004s",
  "1.0040s",
  "100.00100s",
  "10ns",
  "11us",
  "12µs",
  "12μs",
  "13ms",
  "14s",
  "15m",
  "16h",
  "3h30m",
  "10.5s4m",
  "-2m3.4s",
  "1h2m3s4ms5us6ns",
  "39h9m14.425s",
  "52763797000ns",
  "0.3333333333333333333h",
  "9007199254740993ns",
  "9223372036854775807ns",
  "9223372036854775.807us",
  "9223372036s854ms775us807ns",
  "-9223372036854775808ns",
  "-9223372036854775.808us",
  "-9223372036s854ms775us808ns",
  "-2562047h47m16.854775808s",
  "0.100000000000000000000h",
  "0.830103483285477580700h",
];

/** Inputs Go refuses, with the quoted part its message must contain (parseDurationErrorTests). */
const INVALID: [string, string][] = [
  ["", `"time: invalid duration \\"\\""`],
  ["3", `"time: missing unit in duration \\"3\\""`],
  ["-", `"time: invalid duration \\"-\\""`],
  ["s", `"time: invalid duration \\"s\\""`],
  [".", `"time: invalid duration \\".\\""`],
  ["-.", `"time: invalid duration \\"-.\\""`],
  [".s", `"time: invalid duration \\".s\\""`],
  ["+.s", `"time: invalid duration \\"+.s\\""`],
  ["1d", `"time: unknown unit \\"d\\" in duration \\"1d\\""`],
  ["\uFFFD", `"time: invalid duration \\"\\\\xef\\\\xbf\\\\xbd\\""`],
  [
    "\uFFFD hello \uFFFD world",
    `"time: invalid duration \\"\\\\xef\\\\xbf\\\\xbd hello \\\\xef\\\\xbf\\\\xbd world\\""`,
  ],
  ["9223372036854775810ns", `"time: invalid duration \\"9223372036854775810ns\\""`],
  ["9223372036854775808ns", `"time: invalid duration \\"9223372036854775808ns\\""`],
  ["-9223372036854775809ns", `"time: invalid duration \\"-9223372036854775809ns\\""`],
  ["9223372036854776us", `"time: invalid duration \\"9223372036854776us\\""`],
  ["3000000h", `"time: invalid duration \\"3000000h\\""`],
  ["9223372036854775.808us", `"time: invalid duration \\"9223372036854775.808us\\""`],
  ["9223372036854ms775us808ns", `"time: invalid duration \\"9223372036854ms775us808ns\\""`],
  ["5µx", `"time: unknown unit \\"\\\\xc2\\\\xb5x\\" in duration \\"5\\\\xc2\\\\xb5x\\""`],
  ["1..5s", `"time: missing unit in duration \\"1..5s\\""`],
];

Deno.test("goDurationError() accepts every duration Go's test table parses", () => {
  for (const text of VALID) assert.equal(goDurationError(text), undefined, text);
});

Deno.test("goDurationError() words each refusal as Go does", () => {
  for (const [text, expected] of INVALID) {
    assert.equal(JSON.stringify(goDurationError(text)), expected, JSON.stringify(text));
  }
});

Deno.test("keepAliveError() takes any finite number of seconds", () => {
  for (const seconds of [0, 300, -1, 1.5]) assert.equal(keepAliveError(seconds), undefined);
  assert.equal(keepAliveError(Infinity), "keep_alive must be a finite number of seconds");
  assert.equal(keepAliveError("5x"), 'time: unknown unit "x" in duration "5x"');
});

Deno.test("the keep_alive tool argument accepts what Ollama accepts and words the rest like Go", () => {
  const schema = z.object(INPUTS.ollama.generate);
  const parse = (keepAlive: unknown) =>
    schema.safeParse({ model: "llama3.2", prompt: "x", keep_alive: keepAlive });
  for (const ok of ["10m", "1h30m", "0", "-1s", 300, -1, 0]) {
    assert.equal(parse(ok).success, true, JSON.stringify(ok));
  }
  const refused = parse("10");
  assert.equal(refused.success, false);
  assert.deepEqual(refused.error?.issues.map((issue) => issue.message), [
    'time: missing unit in duration "10": use a duration such as "10m", "1h30m" or "0"',
  ]);
  assert.equal(parse("forever").success, false);
  assert.equal(parse(true).success, false);
});
