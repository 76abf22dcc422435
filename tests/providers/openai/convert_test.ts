/**
 * The per-dialect rules: which host is OpenAI's own API, which models
 * reason there, how a `think` budget becomes a `reasoning_effort`, and how
 * a schema becomes a `response_format`.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  dialectOf,
  doneReason,
  isOpenAiReasoningModel,
  reasoningEffort,
  responseFormat,
} from "../../../src/providers/openai/convert.ts";

Deno.test("only api.openai.com is OpenAI's own dialect", () => {
  assert.equal(dialectOf("https://api.openai.com/v1"), "openai");
  assert.equal(dialectOf("https://API.OpenAI.com/v1/"), "openai");
  assert.equal(dialectOf("https://openrouter.ai/api/v1"), "compatible");
  assert.equal(dialectOf("http://127.0.0.1:8000/v1"), "compatible");
  assert.equal(dialectOf("https://myres.openai.azure.com/openai/v1"), "compatible");
});

Deno.test("OpenAI's reasoning models are the o-series, gpt-5 and codex", () => {
  for (
    const model of ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5.1-mini", "codex-mini"]
  ) {
    assert.equal(isOpenAiReasoningModel(model), true, model);
  }
  for (
    const model of ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "chatgpt-4o-latest", "omni-moderation"]
  ) {
    assert.equal(isOpenAiReasoningModel(model), false, model);
  }
});

Deno.test("think becomes reasoning_effort: on is medium, budgets by size, off sends nothing", () => {
  assert.equal(reasoningEffort(undefined), undefined);
  assert.equal(reasoningEffort(false), undefined);
  assert.equal(reasoningEffort(0), undefined);
  assert.equal(reasoningEffort(true), "medium");
  assert.equal(reasoningEffort(1024), "low");
  assert.equal(reasoningEffort(4095), "low");
  assert.equal(reasoningEffort(4096), "medium");
  assert.equal(reasoningEffort(16_383), "medium");
  assert.equal(reasoningEffort(16_384), "high");
});

Deno.test("a schema becomes a named json_schema response format", () => {
  assert.deepEqual(responseFormat("json"), { type: "json_object" });
  const schema = { type: "object", properties: {} };
  assert.deepEqual(responseFormat(schema), {
    type: "json_schema",
    json_schema: { name: "response", schema },
  });
  const titled = { title: "Weather report: today!", type: "object" };
  assert.deepEqual(responseFormat(titled), {
    type: "json_schema",
    json_schema: { name: "Weather_report__today_", schema: titled },
  });
});

Deno.test("finish reasons map onto neutral stop reasons", () => {
  assert.equal(doneReason("stop", false), "stop");
  assert.equal(doneReason("length", true), "length");
  assert.equal(doneReason("tool_calls", false), "tool_calls");
  assert.equal(doneReason("function_call", false), "tool_calls");
  assert.equal(doneReason("content_filter", false), "content_filter");
  assert.equal(doneReason("stop", true), "tool_calls");
  assert.equal(doneReason(null, false), "stop");
  assert.equal(doneReason("eos", false), "stop");
});
