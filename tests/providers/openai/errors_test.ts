/**
 * Reading error replies in every shape servers use, masking key-like words,
 * and the wait a server asks for: `retry-after-ms`, `retry-after`, and
 * OpenAI's `x-ratelimit-reset-*` durations as the fallback.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  errorDetail,
  formatWait,
  maskKeys,
  parseResetDuration,
  retryAfterFrom,
} from "../../../src/providers/openai/errors.ts";

Deno.test("error bodies are read in OpenAI's, vLLM's, FastAPI's, plain and proxy shapes", () => {
  assert.deepEqual(
    errorDetail(
      JSON.stringify({
        error: { message: "bad", type: "invalid_request_error", param: "top_p", code: "x" },
      }),
    ),
    { message: "bad", code: "x", type: "invalid_request_error", param: "top_p", structured: true },
  );
  assert.deepEqual(
    errorDetail(
      JSON.stringify({ object: "error", message: "nope", type: "NotFoundError", code: 404 }),
    ),
    { message: "nope", code: "404", type: "NotFoundError", structured: true },
  );
  assert.deepEqual(errorDetail(JSON.stringify({ detail: "Not Found" })), {
    message: "Not Found",
    structured: true,
  });
  assert.deepEqual(
    errorDetail(JSON.stringify({ detail: [{ loc: ["body", "model"], msg: "required" }] })),
    { message: '[{"loc":["body","model"],"msg":"required"}]', structured: true },
  );
  assert.deepEqual(errorDetail(JSON.stringify({ error: "upstream timed out" })), {
    message: "upstream timed out",
    structured: true,
  });
  assert.deepEqual(errorDetail("Service Unavailable", { contentType: "text/plain" }), {
    message: '"Service Unavailable"',
    structured: false,
  });
  assert.deepEqual(errorDetail(""), { message: "no body", structured: false });
  assert.deepEqual(
    errorDetail('{"error": {"message": "cut', {
      truncated: true,
      contentType: "application/json",
    }),
    {
      message: 'application/json, cut short: "{\\"error\\": {\\"message\\": \\"cut"',
      structured: false,
    },
  );
});

Deno.test("key-like words are masked in any message", () => {
  assert.equal(
    maskKeys("Incorrect API key provided: sk-proj-abc*****wxyz. You can find..."),
    "Incorrect API key provided: [redacted] You can find...",
  );
  assert.equal(maskKeys("key sk-or-v1-0123456789abcdef used"), "key [redacted] used");
  assert.equal(maskKeys("gsk_ABCDEF123456 and task-list"), "[redacted] and task-list");
});

Deno.test("the requested wait comes from retry-after-ms, retry-after, then the reset headers", () => {
  const now = Date.parse("Wed, 21 Oct 2026 07:28:00 GMT");
  assert.equal(retryAfterFrom(new Headers({ "retry-after-ms": "250", "retry-after": "9" })), 250);
  assert.equal(retryAfterFrom(new Headers({ "retry-after": "2" })), 2000);
  assert.equal(
    retryAfterFrom(new Headers({ "retry-after": "Wed, 21 Oct 2026 07:28:05 GMT" }), now),
    5000,
  );
  // The exhausted limit's reset counts; with none exhausted, the longer one.
  assert.equal(
    retryAfterFrom(
      new Headers({
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1.5s",
        "x-ratelimit-remaining-tokens": "200",
        "x-ratelimit-reset-tokens": "6m0s",
      }),
    ),
    1500,
  );
  assert.equal(
    retryAfterFrom(
      new Headers({ "x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "1m2s" }),
    ),
    62_000,
  );
  assert.equal(retryAfterFrom(new Headers()), undefined);
  assert.equal(retryAfterFrom(new Headers({ "retry-after": "soon" })), undefined);
});

Deno.test("OpenAI's reset durations parse as Go writes them, anything else is unknown", () => {
  assert.equal(parseResetDuration("1s"), 1000);
  assert.equal(parseResetDuration("6m0s"), 360_000);
  assert.equal(parseResetDuration("1h2m3.5s"), 3_723_500);
  assert.equal(parseResetDuration("20ms"), 20);
  assert.equal(parseResetDuration("soon"), undefined);
  assert.equal(parseResetDuration("5 s"), undefined);
  assert.equal(parseResetDuration(null), undefined);
});

Deno.test("waits read as people say them", () => {
  assert.equal(formatWait(800), "800 ms");
  assert.equal(formatWait(2000), "2 s");
  assert.equal(formatWait(1501), "1.6 s");
});
