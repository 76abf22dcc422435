/**
 * The comparison entry shared by `ai_compare` and `rune ai compare`:
 * timings as measured, tokens per second from the provider's generation
 * time or else from the first token, usage without absent counts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { compareEntry, roundMs } from "../../src/providers/compare_entry.ts";
import type { FinalResult } from "../../src/providers/types.ts";

function result(usage: FinalResult["usage"]): FinalResult {
  return { model: "m", text: "hi", toolCalls: [], doneReason: "stop", usage };
}

Deno.test("a compare entry takes tokens per second from the provider's generation time", () => {
  const entry = compareEntry(
    "ollama/m",
    result({ promptTokens: 3, completionTokens: 50, generationMs: 500 }),
    { started: 1000, firstAt: 1100.04, ended: 1700 },
  );
  assert.deepEqual(entry, {
    model: "ollama/m",
    response: "hi",
    done_reason: "stop",
    ttft_ms: 100,
    total_ms: 700,
    tokens_per_second: 100,
    usage: { prompt_tokens: 3, completion_tokens: 50 },
  });
});

Deno.test("without a generation time, tokens per second run from the first token to the end", () => {
  const entry = compareEntry("m", result({ completionTokens: 10 }), {
    started: 0,
    firstAt: 200,
    ended: 2200,
  });
  assert.equal(entry.tokens_per_second, 5);
  assert.deepEqual(entry.usage, { completion_tokens: 10 });
});

Deno.test("without a first token or a token count there is no rate and no ttft", () => {
  const entry = compareEntry("m", result({}), { started: 0, ended: 12.345 });
  assert.equal(entry.ttft_ms, undefined);
  assert.equal(entry.tokens_per_second, undefined);
  assert.equal(entry.total_ms, 12.3);
  assert.deepEqual(entry.usage, {});
  assert.equal(roundMs(0.06), 0.1);
});
