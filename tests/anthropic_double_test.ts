/**
 * The Anthropic double on the wire, with plain `fetch`: the exact
 * server-sent events of a streamed reply (in the order Anthropic's
 * streaming documentation shows), the strict key check, the required
 * version header, Anthropic's validation messages, model pages both ways,
 * the request log and the stream accounting tests rely on.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ANTHROPIC_ERRORS,
  type AnthropicDouble,
  DEFAULT_MODELS,
  signThinking,
  startAnthropicDouble,
} from "./anthropic_double.ts";

async function withDouble(fn: (double: AnthropicDouble) => Promise<void>): Promise<void> {
  const double = await startAnthropicDouble();
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

function post(double: AnthropicDouble, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${double.url}/v1/messages`, {
    method: "POST",
    headers: {
      "x-api-key": double.apiKey,
      "anthropic-version": "2023-06-01",
      "content-type": "application/json",
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

/** The `event:` name and parsed `data:` of each event of an SSE text. */
function parseSse(text: string): [string, Record<string, unknown>][] {
  return text.trim().split("\n\n").map((block) => {
    const [eventLine, dataLine, ...rest] = block.split("\n");
    assert.deepEqual(rest, [], "one event: and one data: line per event");
    assert.match(eventLine, /^event: \w+$/);
    assert.match(dataLine, /^data: \{/);
    return [eventLine.slice(7), JSON.parse(dataLine.slice(6))];
  });
}

/** The status of `response`, its body released. */
async function statusOf(response: Response): Promise<number> {
  await response.body?.cancel();
  return response.status;
}

async function errorOf(response: Response): Promise<[number, string, string]> {
  const body = await response.json();
  assert.equal(body.type, "error");
  assert.equal(body.request_id, response.headers.get("request-id"));
  return [response.status, body.error.type, body.error.message];
}

Deno.test("a streamed reply is Anthropic's documented event sequence", async () => {
  await withDouble(async (double) => {
    const response = await post(double, {
      model: "claude-sonnet-4-6",
      max_tokens: 64,
      stream: true,
      messages: [{ role: "user", content: "Hello" }],
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.match(response.headers.get("request-id") ?? "", /^req_011C[0-9A-Za-z]{22}$/);
    const events = parseSse(await response.text());
    assert.deepEqual(events.map(([name]) => name), [
      "message_start",
      "content_block_start",
      "ping",
      "content_block_delta",
      "content_block_delta",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    for (const [name, data] of events) assert.equal(data.type, name, "data.type repeats the name");
    const start = events[0][1].message as Record<string, unknown>;
    assert.deepEqual({ ...start, id: "msg" }, {
      id: "msg",
      type: "message",
      role: "assistant",
      model: "claude-sonnet-4-6",
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: 8,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: 1,
        service_tier: "standard",
      },
    });
    assert.deepEqual(events[1][1], {
      type: "content_block_start",
      index: 0,
      content_block: { type: "text", text: "" },
    });
    assert.deepEqual(events.slice(3, 5).map(([, d]) => d.delta), [
      { type: "text_delta", text: "Echo:" },
      { type: "text_delta", text: " Hello" },
    ]);
    assert.deepEqual(events[6][1], {
      type: "message_delta",
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: {
        input_tokens: 8,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        output_tokens: 2,
      },
    });
    await double.waitForOpenStreams(0);
    assert.equal(double.streamsStarted, 1);
  });
});

Deno.test("thinking and tool use stream as their own blocks, signed and in fragments", async () => {
  await withDouble(async (double) => {
    const response = await post(double, {
      model: "claude-sonnet-4-6",
      max_tokens: 2048,
      stream: true,
      thinking: { type: "enabled", budget_tokens: 1024 },
      tools: [{
        name: "get_weather",
        input_schema: { type: "object", properties: { city: { type: "string" } } },
      }],
      messages: [{ role: "user", content: "weather in Lyon" }],
    });
    const events = parseSse(await response.text());
    const starts = events.filter(([name]) => name === "content_block_start").map(([, d]) => d);
    assert.deepEqual(starts.map((d) => (d.content_block as Record<string, unknown>).type), [
      "thinking",
      "tool_use",
    ]);
    const deltas = events.filter(([name]) => name === "content_block_delta").map(([, d]) =>
      d.delta as Record<string, string>
    );
    const thinking = deltas.filter((d) => d.type === "thinking_delta").map((d) => d.thinking).join(
      "",
    );
    assert.equal(thinking, "Let me think about: weather in Lyon");
    assert.deepEqual(deltas.filter((d) => d.type === "signature_delta"), [
      { type: "signature_delta", signature: signThinking(thinking) },
    ]);
    const fragments = deltas.filter((d) => d.type === "input_json_delta").map((d) =>
      d.partial_json
    );
    assert.equal(fragments[0], "", "Anthropic opens with an empty fragment");
    assert.equal(fragments.join(""), '{"city":"Lyon"}');
    const delta = events.find(([name]) => name === "message_delta")?.[1].delta;
    assert.deepEqual(delta, { stop_reason: "tool_use", stop_sequence: null });
  });
});

Deno.test("only the configured key or the current bearer token gets in", async () => {
  await withDouble(async (double) => {
    const body = {
      model: "claude-sonnet-4-6",
      max_tokens: 8,
      messages: [{ role: "user", content: "x" }],
    };
    assert.equal(await statusOf(await post(double, body)), 200);
    assert.deepEqual(await errorOf(await post(double, body, { "x-api-key": "sk-ant-other" })), [
      401,
      "authentication_error",
      ANTHROPIC_ERRORS.invalidKey,
    ]);
    const noKey = await fetch(`${double.url}/v1/models`, {
      headers: { "anthropic-version": "2023-06-01" },
    });
    assert.deepEqual(await errorOf(noKey), [
      401,
      "authentication_error",
      ANTHROPIC_ERRORS.missingKey,
    ]);
    const bearer = (token: string) =>
      fetch(`${double.url}/v1/models`, {
        headers: { authorization: `Bearer ${token}`, "anthropic-version": "2023-06-01" },
      });
    const old = double.bearerToken;
    assert.equal(await statusOf(await bearer(old)), 200);
    const fresh = double.rotateToken();
    assert.notEqual(fresh, old);
    assert.deepEqual(await errorOf(await bearer(old)), [
      401,
      "authentication_error",
      ANTHROPIC_ERRORS.invalidBearer,
    ]);
    assert.equal(await statusOf(await bearer(fresh)), 200);
    assert.deepEqual(
      double.requests.slice(0, 2).map((r) => r.headers["x-api-key"]),
      [double.apiKey, "sk-ant-other"],
      "the log keeps the headers as sent",
    );
  });
});

Deno.test("the version header is required, and version 2026-10-21 has no sampling parameters", async () => {
  await withDouble(async (double) => {
    const body = {
      model: "claude-sonnet-4-6",
      max_tokens: 8,
      temperature: 0.5,
      messages: [{ role: "user", content: "x" }],
    };
    const response = await fetch(`${double.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": double.apiKey },
      body: JSON.stringify(body),
    });
    assert.deepEqual(await errorOf(response), [
      400,
      "invalid_request_error",
      ANTHROPIC_ERRORS.missingVersion,
    ]);
    assert.equal(await statusOf(await post(double, body)), 200);
    assert.deepEqual(
      await errorOf(await post(double, body, { "anthropic-version": "2026-10-21" })),
      [400, "invalid_request_error", "temperature: Extra inputs are not permitted"],
    );
  });
});

Deno.test("invalid requests get Anthropic's validation messages", async () => {
  await withDouble(async (double) => {
    const user = { role: "user", content: "x" };
    const cases: [Record<string, unknown>, string][] = [
      [{ model: "claude-sonnet-4-6", messages: [user] }, "max_tokens: Field required"],
      [
        { model: "claude-sonnet-4-6", max_tokens: 8, messages: [user], seed: 1 },
        "seed: Extra inputs are not permitted",
      ],
      [
        { model: "claude-3-haiku-20240307", max_tokens: 5000, messages: [user] },
        "max_tokens: 5000 > 4096, which is the maximum allowed number of output tokens for claude-3-haiku-20240307",
      ],
      [
        {
          model: "claude-sonnet-4-6",
          max_tokens: 1024,
          thinking: { type: "enabled", budget_tokens: 1024 },
          messages: [user],
        },
        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
      ],
      [
        {
          model: "claude-sonnet-4-6",
          max_tokens: 8,
          messages: [{
            role: "user",
            content: [{
              type: "image",
              source: { type: "base64", media_type: "image/bmp", data: "Qk0=" },
            }],
          }],
        },
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
      ],
      [
        {
          model: "claude-sonnet-4-6",
          max_tokens: 8,
          messages: [
            user,
            {
              role: "assistant",
              content: [{ type: "tool_use", id: "toolu_A", name: "f", input: {} }],
            },
            user,
          ],
        },
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_A. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
      ],
      [
        {
          model: "claude-sonnet-4-6",
          max_tokens: 8,
          messages: [user, { role: "assistant", content: "ok" }, {
            role: "user",
            content: [{ type: "tool_result", tool_use_id: "toolu_B", content: "r" }],
          }],
        },
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_B. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
      ],
      [
        {
          model: "claude-sonnet-4-6",
          max_tokens: 8,
          messages: [{
            role: "assistant",
            content: [{ type: "thinking", thinking: "t", signature: "forged" }],
          }],
        },
        "messages.0.content.0: Invalid `signature` in `thinking` block",
      ],
    ];
    for (const [body, message] of cases) {
      assert.deepEqual(await errorOf(await post(double, body)), [
        400,
        "invalid_request_error",
        message,
      ]);
    }
    assert.deepEqual(
      await errorOf(
        await post(double, { model: "claude-nosuch", max_tokens: 8, messages: [user] }),
      ),
      [404, "not_found_error", "model: claude-nosuch"],
    );
  });
});

Deno.test("models are listed newest first, a page at a time, forwards and backwards", async () => {
  await withDouble(async (double) => {
    const get = async (query: string) => {
      const response = await fetch(`${double.url}/v1/models${query}`, {
        headers: { "x-api-key": double.apiKey, "anthropic-version": "2023-06-01" },
      });
      return await response.json();
    };
    const ids = DEFAULT_MODELS.map((m) => m.id);
    const first = await get("?limit=2");
    assert.deepEqual(first.data.map((m: { id: string }) => m.id), ids.slice(0, 2));
    assert.deepEqual([first.has_more, first.first_id, first.last_id], [true, ids[0], ids[1]]);
    const second = await get(`?limit=2&after_id=${ids[1]}`);
    assert.deepEqual([second.has_more, second.first_id, second.last_id], [false, ids[2], ids[3]]);
    const back = await get(`?limit=1&before_id=${ids[2]}`);
    assert.deepEqual([back.data[0].id, back.has_more], [ids[1], true]);
    const all = await get("");
    assert.equal(all.data.length, 4, "the default page of 20 holds them all");
    assert.deepEqual(all.data[0], {
      type: "model",
      id: "claude-sonnet-4-6",
      display_name: "Claude Sonnet 4.6",
      created_at: "2026-02-17T00:00:00Z",
      max_input_tokens: 200000,
      max_tokens: 64000,
      capabilities: {
        batch: { supported: true },
        citations: { supported: true },
        code_execution: { supported: true },
        image_input: { supported: true },
        pdf_input: { supported: true },
        structured_outputs: { supported: true },
        thinking: {
          supported: true,
          types: { enabled: { supported: true }, adaptive: { supported: false } },
        },
      },
    });
    assert.equal(
      (await get("?limit=1001")).error.message,
      "limit: Input should be less than or equal to 1000",
    );
    assert.deepEqual(double.requests.map((r) => r.query.limit), ["2", "2", "1", undefined, "1001"]);
  });
});

Deno.test("a hanging stream stays open until the client cancels it", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "hang-after-headers" });
    const response = await post(double, {
      model: "claude-sonnet-4-6",
      max_tokens: 8,
      stream: true,
      messages: [{ role: "user", content: "x" }],
    });
    assert.equal(response.status, 200);
    await double.waitForOpenStreams(1);
    const reader = response.body!.getReader();
    const reading = reader.read();
    await reader.cancel();
    assert.deepEqual(await reading, { done: true, value: undefined });
    await double.waitForOpenStreams(0);
  });
});
