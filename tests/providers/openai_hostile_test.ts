/**
 * The OpenAI-compatible provider against a hostile upstream (real HTTP on
 * port 0): a model list and an embedding reply far over
 * --max-reply-bytes (plain and as gzip bombs), a huge error page, an
 * endless stream of well-formed `chat.completion.chunk` events past
 * --max-stream-bytes (plain and gzip), one event that never ends,
 * malformed chunk shapes and redirect loops. Each call fails with a typed
 * error that names the limit or the problem, the upstream body is
 * cancelled at once (the server sees its reply cut short), and the next
 * call works.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fixedCredential } from "../../src/providers/credential.ts";
import {
  InvalidResponseError,
  ProviderUnreachableError,
  UpstreamError,
  UpstreamTooLargeError,
} from "../../src/providers/errors.ts";
import { createOpenAiProvider } from "../../src/providers/openai/mod.ts";
import { collect, type Provider } from "../../src/providers/types.ts";
import { type HostileUpstream, type SseSpec, startHostileUpstream } from "../hostile_upstream.ts";

const MiB = 1024 * 1024;
/** A reply far beyond every budget below; it must cost only the budget. */
const HUGE = 300 * MiB;
const MODEL = "gpt-4o-mini";

async function withHostile(fn: (server: HostileUpstream) => Promise<void>): Promise<void> {
  const server = await startHostileUpstream();
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function provider(server: HostileUpstream): Provider {
  return createOpenAiProvider({
    baseUrl: `${server.url}/v1`,
    credential: fixedCredential("sk-hostile", "OPENAI_API_KEY"),
    // One attempt per call, so each reply in `sent` belongs to one call.
    retry: { maxRetries: 0 },
    limits: { maxReplyBytes: MiB, maxStreamBytes: MiB, maxErrorBytes: 64 * 1024 },
    maxEventLength: MiB,
  });
}

/** `127.0.0.1:PORT/v1`, as the provider names its address. */
const at = (server: HostileUpstream) => `${server.host}/v1`;

/** One model as `GET /models` lists it. */
const MODEL_JSON = { id: MODEL, object: "model", created: 1721172741, owned_by: "system" };

/** Serves a valid model list and checks the provider reads it: the next call works. */
async function assertNextCallWorks(server: HostileUpstream, openai: Provider): Promise<void> {
  server.on("/v1/models", { kind: "json", body: { object: "list", data: [MODEL_JSON] } });
  assert.deepEqual((await openai.listModels()).map((m) => m.name), [MODEL]);
}

const generate = (openai: Provider) => collect(openai.generate({ model: MODEL, prompt: "x" }));

const replyTooLarge = (server: HostileUpstream, path: string) =>
  `OpenAI at ${
    at(server)
  } sent a reply to ${path} larger than 1 MiB (the --max-reply-bytes limit), so Rune stopped reading it: if the reply is genuine (a very long model list, a large batch of embeddings), raise --max-reply-bytes; otherwise check what answers at that address.`;

Deno.test("openai: a 300 MB model list stops at --max-reply-bytes with the body cancelled", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/models", { kind: "huge-json", bytes: HUGE, list: "data", item: MODEL_JSON });
    await assert.rejects(openai.listModels(), (error: Error) => {
      assert.ok(error instanceof UpstreamTooLargeError, `${error.name}: ${error.message}`);
      assert.equal(error.limit, "reply");
      assert.equal(error.maxBytes, MiB);
      assert.equal(error.message, replyTooLarge(server, "/models"));
      return true;
    });
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 8 * MiB, `sent ${sent.bytes} bytes of ${HUGE}`);
    await assertNextCallWorks(server, openai);
  });
});

Deno.test("openai: an endless gzip bomb as the embedding reply counts inflated bytes against --max-reply-bytes", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/embeddings", {
      kind: "huge-json",
      bytes: Infinity,
      gzip: true,
      list: "data",
      item: { object: "embedding", index: 0, embedding: [0.1, 0.2, 0.3] },
    });
    await assert.rejects(
      openai.embed({ model: "text-embedding-3-small", input: "x" }),
      (error: Error) => {
        assert.ok(error instanceof UpstreamTooLargeError, `${error.name}: ${error.message}`);
        assert.equal(error.message, replyTooLarge(server, "/embeddings"));
        return true;
      },
    );
    // Cancelled. (How much the server generated says little with gzip: repeated JSON shrinks
    // a thousandfold, so hundreds of MB fit in the socket buffers unread.)
    assert.equal((await server.settled(0)).cancelled, true);
    await assertNextCallWorks(server, openai);
  });
});

Deno.test("openai: a 300 MB error page is read only to its first 64 KiB and the message keeps the status", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/chat/completions", { kind: "huge-error", bytes: HUGE, status: 502 });
    await assert.rejects(generate(openai), (error: Error) => {
      assert.ok(error instanceof UpstreamError, `${error.name}: ${error.message}`);
      assert.equal(error.status, 502);
      assert.equal(
        error.message,
        `OpenAI at ${
          at(server)
        } failed (HTTP 502: text/html; charset=utf-8, cut short: "<html><body><p>error error error error</p><p>error error error error</p><p>error…"): a problem on the server's side; retry in a moment, and check its status page or log if it persists.`,
      );
      return true;
    });
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 4 * MiB, `sent ${sent.bytes} bytes`);
    await assertNextCallWorks(server, openai);
  });
});

for (const gzip of [false, true]) {
  Deno.test(`openai: an endless stream of 1 KiB content chunks stops at --max-stream-bytes${gzip ? " (gzip bomb)" : ""}`, async () => {
    await withHostile(async (server) => {
      const openai = provider(server);
      server.on("/v1/chat/completions", {
        kind: "huge-sse",
        dialect: "openai",
        tokenBytes: 1024,
        gzip,
      });
      let received = 0;
      await assert.rejects(
        (async () => {
          for await (const chunk of openai.generate({ model: MODEL, prompt: "x" })) {
            if (chunk.type === "text") received += chunk.text.length;
          }
        })(),
        (error: Error) => {
          assert.ok(error instanceof UpstreamTooLargeError, `${error.name}: ${error.message}`);
          assert.equal(error.limit, "stream");
          assert.equal(
            error.message,
            `OpenAI at ${
              at(server)
            } streamed more than 1 MiB of text, thinking and tool calls in one reply (the --max-stream-bytes limit), so Rune stopped the call: ask for fewer tokens (num_predict), or raise --max-stream-bytes.`,
          );
          return true;
        },
      );
      // Every token within the budget was delivered, and none past it.
      assert.equal(received, MiB);
      assert.equal((await server.settled(0)).cancelled, true);
      await assertNextCallWorks(server, openai);
    });
  });
}

Deno.test("openai: a stream within the budget is read whole", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/chat/completions", {
      kind: "huge-sse",
      dialect: "openai",
      tokenBytes: 1024,
      bytes: MiB / 2,
      gzip: true,
    });
    const result = await generate(openai);
    // Half a MiB on the wire (give or take a generated chunk), most of it text.
    const text = result.text.length;
    assert.ok(text > MiB / 4 && text < MiB / 2 + 64 * 1024, `${text} bytes of text`);
    assert.equal(result.doneReason, "stop");
    assert.equal((await server.settled(0)).completed, true);
  });
});

Deno.test("openai: an event that never ends is an invalid response at the event bound", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/chat/completions", { kind: "huge-event", dialect: "openai" });
    await assert.rejects(generate(openai), (error: Error) => {
      assert.ok(error instanceof InvalidResponseError, `${error.name}: ${error.message}`);
      assert.equal(
        error.message,
        `Invalid response from OpenAI at ${
          at(server)
        }: /chat/completions: the server sent an event longer than ${MiB} characters; is OPENAI_BASE_URL pointing at an OpenAI-compatible API?`,
      );
      return true;
    });
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 8 * MiB, `sent ${sent.bytes} bytes`);
    await assertNextCallWorks(server, openai);
  });
});

Deno.test("openai: a redirect is followed and a redirect loop has its own message", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/models", { kind: "redirect", location: "/moved/v1/models", status: 307 });
    server.on("/moved/v1/models", { kind: "json", body: { object: "list", data: [MODEL_JSON] } });
    assert.deepEqual((await openai.listModels()).map((m) => m.name), [MODEL]);
    server.on("/v1/models", { kind: "redirect" });
    server.on("/v1/chat/completions", { kind: "redirect", status: 307 });
    const loop = (error: Error) => {
      assert.ok(error instanceof ProviderUnreachableError, `${error.name}: ${error.message}`);
      assert.equal(error.reason, "redirect-loop");
      assert.equal(
        error.message,
        `OpenAI at ${
          at(server)
        } answered with redirects that never end (a redirect loop, Maximum number of redirects (20) reached): point OPENAI_BASE_URL at the server itself, not at a proxy or login page that redirects.`,
      );
      return true;
    };
    await assert.rejects(openai.listModels(), loop);
    await assert.rejects(generate(openai), loop);
    await assertNextCallWorks(server, openai);
  });
});

/** A `chat.completion.chunk` carrying `delta`, or with the given `choices`. */
const chunk = (delta: unknown, extra: Record<string, unknown> = {}): SseSpec => ({
  data: {
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1760000000,
    model: MODEL,
    choices: [{ index: 0, delta, finish_reason: null }],
    ...extra,
  },
});

/** A malformed reply and the problem the error must name. */
interface Malformed {
  name: string;
  events: (SseSpec | string)[];
  problem: string;
}

const MALFORMED: Malformed[] = [
  {
    name: "choices that are not a list",
    events: [chunk({}, { choices: "many" })],
    problem: "/chat/completions chunk 1: choices: expected array, received string",
  },
  {
    name: "content that is an object",
    events: [chunk({ role: "assistant", content: "" }), chunk({ content: { text: "x" } })],
    problem:
      "/chat/completions chunk 2: choices[0].delta.content: expected string, received object",
  },
  {
    name: "tool calls that are not a list",
    events: [chunk({ tool_calls: { id: "call_1" } })],
    problem:
      "/chat/completions chunk 1: choices[0].delta.tool_calls: expected array, received object",
  },
  {
    name: "tool call arguments that are an object",
    events: [chunk({ tool_calls: [{ index: 0, function: { name: "f", arguments: {} } }] })],
    problem:
      "/chat/completions chunk 1: choices[0].delta.tool_calls[0].function.arguments: expected string, received object",
  },
  {
    name: "a chunk that is a number",
    events: [{ data: 5 }],
    problem: "/chat/completions chunk 1: the reply: expected object, received number",
  },
  {
    name: "usage that is a string",
    events: [chunk({ content: "x" }), chunk({}, { choices: [], usage: "lots" })],
    problem: "/chat/completions chunk 2: usage: expected object, received string",
  },
];

for (const malformed of MALFORMED) {
  Deno.test(`openai: ${malformed.name} is an invalid response naming the field`, async () => {
    await withHostile(async (server) => {
      const openai = provider(server);
      server.on("/v1/chat/completions", { kind: "sse", events: [...malformed.events, "[DONE]"] });
      await assert.rejects(generate(openai), (error: Error) => {
        assert.ok(error instanceof InvalidResponseError, `${error.name}: ${error.message}`);
        assert.equal(
          error.message,
          `Invalid response from OpenAI at ${
            at(server)
          }: ${malformed.problem}. Is it a current OpenAI, and does the address point at OpenAI itself?`,
        );
        return true;
      });
      await assertNextCallWorks(server, openai);
    });
  });
}

Deno.test("openai: embeddings that are not numbers are an invalid response naming the field", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/embeddings", {
      kind: "json",
      body: { object: "list", data: [{ object: "embedding", index: 0, embedding: [0.1, "x"] }] },
    });
    await assert.rejects(
      openai.embed({ model: "text-embedding-3-small", input: "x" }),
      (error: Error) => {
        assert.ok(error instanceof InvalidResponseError, `${error.name}: ${error.message}`);
        assert.match(
          error.message,
          /^Invalid response from OpenAI at [^:]+:\d+\/v1: \/embeddings: data\[0\]\.embedding/,
        );
        return true;
      },
    );
    await assertNextCallWorks(server, openai);
  });
});

Deno.test("openai: a 300 MB whole JSON reply instead of a stream stops at --max-stream-bytes", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/chat/completions", {
      kind: "huge-json",
      bytes: HUGE,
      list: "choices",
      item: { index: 0, message: { role: "assistant", content: "x".repeat(1024) } },
    });
    await assert.rejects(generate(openai), (error: Error) => {
      assert.ok(error instanceof UpstreamTooLargeError, `${error.name}: ${error.message}`);
      assert.equal(error.limit, "stream");
      assert.match(error.message, /the --max-stream-bytes limit/);
      return true;
    });
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 8 * MiB, `sent ${sent.bytes} bytes of ${HUGE}`);
    await assertNextCallWorks(server, openai);
  });
});

Deno.test("openai: a model list of the wrong shape says the server has no model listing", async () => {
  await withHostile(async (server) => {
    const openai = provider(server);
    server.on("/v1/models", { kind: "json", body: { data: "many" } });
    await assert.rejects(openai.listModels(), (error: Error) => {
      assert.ok(error instanceof UpstreamError, `${error.name}: ${error.message}`);
      assert.equal(
        error.message,
        `OpenAI at ${
          at(server)
        } has no model listing (/models answered with something that is not a model list): name the server's models in the "models" of provider "openai", or check that OPENAI_BASE_URL is the API's base URL (usually ending in /v1).`,
      );
      assert.ok(error.cause instanceof InvalidResponseError);
      assert.match((error.cause as Error).message, /\/models: data: expected array/);
      return true;
    });
    await assertNextCallWorks(server, openai);
  });
});
