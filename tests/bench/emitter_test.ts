/**
 * The benchmark's token emitter (`bench/emitter.ts`) read by each API's
 * official client (`npm:ollama`, `npm:@anthropic-ai/sdk`, `npm:openai`):
 * if the official client cannot parse a stream, the emitter is wrong. Every
 * token arrives as `|<stamp>` with the wall-clock time it was written, the
 * stream ends as each API ends one, and a client that goes away is
 * recorded as cancelled.
 *
 * @module
 */

import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { startEmitter, type StreamRecord } from "../../bench/emitter.ts";

interface Emitter {
  url: string;
  streams: Map<string, StreamRecord>;
  /** Resolves when stream `id`'s client has gone away. */
  cancelled(id: string): Promise<void>;
}

async function withEmitter(fn: (emitter: Emitter) => Promise<void>): Promise<void> {
  const waiters = new Map<string, PromiseWithResolvers<void>>();
  const waiter = (id: string) => {
    let entry = waiters.get(id);
    if (entry === undefined) waiters.set(id, entry = Promise.withResolvers<void>());
    return entry;
  };
  const { server, streams } = startEmitter({
    onListen: () => {},
    onCancelled: (id) => waiter(id).resolve(),
  });
  try {
    await fn({
      url: `http://127.0.0.1:${server.addr.port}`,
      streams,
      cancelled: (id) => waiter(id).promise,
    });
  } finally {
    await server.shutdown();
  }
}

function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Checks `tokens` are `count` stamps, in order, written between `from` and `to`. */
function assertStamps(tokens: string[], { count, from, to }: Record<string, number>): void {
  assert.equal(tokens.length, count);
  let previous = from;
  for (const token of tokens) {
    assert.match(token, /^\|\d+\.\d{3}$/);
    const stamp = Number(token.slice(1));
    // Stamps carry three decimals: allow the rounding.
    assert.ok(stamp >= previous - 0.001 && stamp <= to + 0.001, `${stamp} in [${previous}, ${to}]`);
    previous = stamp;
  }
}

Deno.test("the official Ollama client reads the emitter's NDJSON stream of stamped tokens", async () => {
  await withEmitter(async ({ url, streams }) => {
    const from = wallNow();
    const tokens: string[] = [];
    let last;
    const stream = await new Ollama({ host: url }).generate({
      model: "bench",
      prompt: "id=ollama rate=0",
      stream: true,
      options: { num_predict: 40 },
    });
    for await (const part of stream) {
      if (part.response !== "") tokens.push(part.response);
      last = part;
    }
    assertStamps(tokens, { count: 40, from, to: wallNow() });
    assert.equal(last?.done, true);
    assert.equal(last?.eval_count, 40);
    assert.equal(streams.get("ollama")?.tokens, 40);
    assert.equal(streams.get("ollama")?.cancelledAt, undefined);
  });
});

Deno.test("the official Anthropic SDK reads the emitter's Messages SSE to max_tokens", async () => {
  await withEmitter(async ({ url, streams }) => {
    const client = new Anthropic({ apiKey: "sk-ant-bench", baseURL: url, maxRetries: 0 });
    const from = wallNow();
    const tokens: string[] = [];
    const stream = client.messages.stream({
      model: "bench",
      max_tokens: 40,
      messages: [{ role: "user", content: "id=anthropic rate=0" }],
    });
    stream.on("text", (text) => tokens.push(text));
    const message = await stream.finalMessage();
    assertStamps(tokens, { count: 40, from, to: wallNow() });
    assert.equal(message.stop_reason, "max_tokens");
    assert.equal(message.usage.output_tokens, 40);
    assert.equal(streams.get("anthropic")?.tokens, 40);
    assert.notEqual(streams.get("anthropic")?.endedAt, undefined);
  });
});

Deno.test("the official OpenAI SDK reads the emitter's chat-completions SSE with usage", async () => {
  await withEmitter(async ({ url }) => {
    const client = new OpenAI({ apiKey: "sk-bench", baseURL: `${url}/v1`, maxRetries: 0 });
    const from = wallNow();
    const tokens: string[] = [];
    const finishes: string[] = [];
    let completionTokens: number | undefined;
    const stream = await client.chat.completions.create({
      model: "bench",
      messages: [{ role: "user", content: "id=openai rate=0" }],
      max_tokens: 40,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice?.delta.content) tokens.push(choice.delta.content);
      if (choice?.finish_reason) finishes.push(choice.finish_reason);
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
    }
    assertStamps(tokens, { count: 40, from, to: wallNow() });
    assert.deepEqual(finishes, ["length"]);
    assert.equal(completionTokens, 40);
  });
});

Deno.test("a cloud client that aborts mid-stream is recorded as cancelled", async () => {
  await withEmitter(async ({ url, streams, cancelled }) => {
    const anthropic = new Anthropic({ apiKey: "sk-ant-bench", baseURL: url, maxRetries: 0 });
    const message = anthropic.messages.stream({
      model: "bench",
      max_tokens: 1_000_000,
      messages: [{ role: "user", content: "id=abort-anthropic rate=1000" }],
    });
    const first = Promise.withResolvers<void>();
    message.on("text", () => first.resolve());
    await first.promise;
    message.abort();
    await message.done().catch(() => {});
    await cancelled("abort-anthropic");

    const openai = new OpenAI({ apiKey: "sk-bench", baseURL: `${url}/v1`, maxRetries: 0 });
    const chunks = await openai.chat.completions.create({
      model: "bench",
      messages: [{ role: "user", content: "id=abort-openai rate=1000" }],
      max_tokens: 1_000_000,
      stream: true,
    });
    for await (const chunk of chunks) {
      if (chunk.choices[0]?.delta.content) break;
    }
    await cancelled("abort-openai");

    for (const id of ["abort-anthropic", "abort-openai"]) {
      const record = streams.get(id)!;
      assert.notEqual(record.cancelledAt, undefined, id);
      assert.equal(record.endedAt, undefined, id);
      assert.ok(record.tokens >= 1 && record.tokens < 1_000_000, `${id}: ${record.tokens} tokens`);
    }
  });
});
