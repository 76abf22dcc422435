/**
 * The OpenAI double's wire bytes, read raw: the event sequence of OpenAI's
 * streaming documentation (a role chunk, content deltas, a last chunk with
 * `finish_reason`, the usage chunk with empty `choices`, `data: [DONE]`),
 * tool-call deltas split by index, the error body shape and headers, and
 * each quirk's deviation.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DOUBLE_API_KEY, type OpenAiDouble, startOpenAiDouble } from "./openai_double.ts";

async function withDouble(fn: (double: OpenAiDouble) => Promise<void>) {
  const double = await startOpenAiDouble();
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

async function post(double: OpenAiDouble, body: unknown): Promise<Response> {
  return await fetch(`${double.url}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${DOUBLE_API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The `data:` payloads of an event stream, as the raw text splits them. */
async function events(response: Response): Promise<string[]> {
  const text = await response.text();
  assert.ok(text.endsWith("\n\n"), "every event ends with a blank line");
  return text.slice(0, -2).split("\n\n").map((event) => {
    assert.match(event, /^data: /);
    return event.slice("data: ".length);
  });
}

/** A chunk without the fields that change per call. */
function stable(data: string): unknown {
  const { id, created, system_fingerprint, ...rest } = JSON.parse(data);
  assert.match(id, /^chatcmpl-[A-Za-z0-9]{29}$/);
  assert.equal(typeof created, "number");
  assert.match(system_fingerprint, /^fp_[a-z0-9]{10}$/);
  return rest;
}

const frame = { object: "chat.completion.chunk", model: "gpt-4o-mini", service_tier: "default" };

Deno.test("a streamed reply is OpenAI's documented event sequence, usage last, then [DONE]", async () => {
  await withDouble(async (double) => {
    const response = await post(double, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(response.headers.get("openai-version"), "2020-10-01");
    assert.match(response.headers.get("x-request-id") ?? "", /^req_[A-Za-z0-9]{32}$/);
    const data = await events(response);
    assert.equal(data.at(-1), "[DONE]");
    const choice = (delta: unknown, finish: string | null = null) => ({
      ...frame,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      usage: null,
    });
    assert.deepEqual(data.slice(0, -1).map(stable), [
      choice({ role: "assistant", content: "", refusal: null }),
      choice({ content: "Echo:" }),
      choice({ content: " Hi" }),
      choice({}, "stop"),
      {
        ...frame,
        choices: [],
        usage: {
          prompt_tokens: 8,
          completion_tokens: 2,
          total_tokens: 10,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: {
            reasoning_tokens: 0,
            audio_tokens: 0,
            accepted_prediction_tokens: 0,
            rejected_prediction_tokens: 0,
          },
        },
      },
    ]);
    assert.equal(new Set(data.slice(0, -1).map((d) => JSON.parse(d).id)).size, 1);
  });
});

Deno.test("tool-call deltas carry index, id and name first, then argument fragments", async () => {
  await withDouble(async (double) => {
    double.scriptNext({
      toolCalls: [{ name: "a", arguments: { x: 1 } }, { name: "b", arguments: { y: "z" } }],
    });
    const data = await events(
      await post(double, {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "go" }],
        stream: true,
      }),
    );
    const deltas = data.slice(0, -1).map((d) => JSON.parse(d).choices[0].delta);
    const ids = deltas.flatMap((d) => (d.tool_calls ?? []).map((c: { id?: string }) => c.id))
      .filter(Boolean);
    assert.equal(ids.length, 2);
    assert.deepEqual(deltas, [
      {
        role: "assistant",
        content: null,
        tool_calls: [{
          index: 0,
          id: ids[0],
          type: "function",
          function: { name: "a", arguments: "" },
        }],
        refusal: null,
      },
      { tool_calls: [{ index: 0, function: { arguments: '{"' } }] },
      { tool_calls: [{ index: 0, function: { arguments: "x" } }] },
      { tool_calls: [{ index: 0, function: { arguments: '":' } }] },
      { tool_calls: [{ index: 0, function: { arguments: "1" } }] },
      { tool_calls: [{ index: 0, function: { arguments: "}" } }] },
      {
        tool_calls: [{
          index: 1,
          id: ids[1],
          type: "function",
          function: { name: "b", arguments: "" },
        }],
      },
      { tool_calls: [{ index: 1, function: { arguments: '{"' } }] },
      { tool_calls: [{ index: 1, function: { arguments: "y" } }] },
      { tool_calls: [{ index: 1, function: { arguments: '":"' } }] },
      { tool_calls: [{ index: 1, function: { arguments: "z" } }] },
      { tool_calls: [{ index: 1, function: { arguments: '"}' } }] },
      {},
    ]);
    assert.equal(JSON.parse(data.at(-2)!).choices[0].finish_reason, "tool_calls");
    // Without stream_options, chunks carry no usage field at all.
    assert.equal("usage" in JSON.parse(data[0]), false);
  });
});

Deno.test("errors are OpenAI's error objects with their statuses", async () => {
  await withDouble(async (double) => {
    const unauthorized = await fetch(`${double.url}/models`);
    assert.equal(unauthorized.status, 401);
    assert.deepEqual(await unauthorized.json(), {
      error: {
        message:
          "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
        type: "invalid_request_error",
        param: null,
        code: null,
      },
    });
    const unknown = await post(double, { model: "gpt-4o-mini", messages: [], top_k: 1 });
    assert.equal(unknown.status, 400);
    assert.deepEqual(await unknown.json(), {
      error: {
        message: "Unrecognized request argument supplied: top_k",
        type: "invalid_request_error",
        param: null,
        code: null,
      },
    });
    const unpaired = await post(double, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "x" }, { role: "tool", content: "y" }],
    });
    assert.deepEqual((await unpaired.json()).error, {
      message: "Missing required parameter: 'messages[1].tool_call_id'.",
      type: "invalid_request_error",
      param: "messages[1].tool_call_id",
      code: "missing_required_parameter",
    });
    double.failNext({ kind: "status", status: 429, headers: { "retry-after": "3" } });
    const limited = await post(double, { model: "gpt-4o-mini", messages: [] });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get("retry-after"), "3");
    assert.equal((await limited.json()).error.code, "rate_limit_exceeded");
  });
});

Deno.test("quirks deviate as compatible servers do", async () => {
  await withDouble(async (double) => {
    const ask = () =>
      post(double, {
        model: "deepseek-reasoner",
        messages: [{ role: "user", content: "a" }],
        stream: true,
        stream_options: { include_usage: true },
      });
    double.quirks = { usage: false, done: false, finishReason: false, reasoningField: "reasoning" };
    const data = await events(await ask());
    assert.ok(!data.includes("[DONE]"));
    const chunks = data.map((d) => JSON.parse(d));
    assert.ok(chunks.every((c) => c.choices.length === 1 && c.choices[0].finish_reason === null));
    assert.deepEqual(chunks[1].choices[0].delta, { content: null, reasoning: "Okay," });
    double.quirks = { rejectStreamOptions: true };
    const refused = await ask();
    assert.equal(refused.status, 400);
    assert.equal((await refused.json()).object, "error");
    double.quirks = { listModels: false };
    const models = await fetch(`${double.url}/models`, {
      headers: { authorization: `Bearer ${DOUBLE_API_KEY}` },
    });
    assert.equal(models.status, 404);
    await models.body?.cancel();
  });
});
