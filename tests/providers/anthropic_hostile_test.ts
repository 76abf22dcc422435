/**
 * The Anthropic provider against a hostile upstream (real HTTP on port 0):
 * a model list far over --max-reply-bytes (plain and as a gzip bomb), a
 * huge error page, an endless event stream of well-formed
 * `content_block_delta` events past --max-stream-bytes (plain and gzip),
 * one event that never ends, malformed event shapes and redirect loops.
 * Each call fails with a typed error that names the limit or the problem,
 * the upstream body is cancelled at once (the server sees its reply cut
 * short), and the next call works.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createAnthropicProvider } from "../../src/providers/anthropic/mod.ts";
import { fixedCredential } from "../../src/providers/credential.ts";
import {
  InvalidResponseError,
  ProviderUnreachableError,
  UpstreamError,
  UpstreamTooLargeError,
} from "../../src/providers/errors.ts";
import { collect, type Provider } from "../../src/providers/types.ts";
import { type HostileUpstream, type SseSpec, startHostileUpstream } from "../hostile_upstream.ts";

const MiB = 1024 * 1024;
/** A reply far beyond every budget below; it must cost only the budget. */
const HUGE = 300 * MiB;
const MODEL = "claude-haiku-4-5";

async function withHostile(fn: (server: HostileUpstream) => Promise<void>): Promise<void> {
  const server = await startHostileUpstream();
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function provider(server: HostileUpstream): Provider {
  return createAnthropicProvider({
    baseUrl: server.url,
    credential: fixedCredential("sk-ant-hostile", "ANTHROPIC_API_KEY"),
    // One attempt per call, so each reply in `sent` belongs to one call.
    retry: { maxRetries: 0 },
    limits: { maxReplyBytes: MiB, maxStreamBytes: MiB, maxErrorBytes: 64 * 1024 },
    maxEventLength: MiB,
  });
}

/** One model as `GET /v1/models` lists it. */
const MODEL_JSON = {
  type: "model",
  id: MODEL,
  display_name: "Claude Haiku 4.5",
  created_at: "2025-10-01T00:00:00Z",
};

/** Serves a valid model list and checks the provider reads it: the next call works. */
async function assertNextCallWorks(server: HostileUpstream, claude: Provider): Promise<void> {
  server.on("/v1/models", {
    kind: "json",
    body: { data: [MODEL_JSON], has_more: false, first_id: MODEL, last_id: MODEL },
  });
  assert.deepEqual((await claude.listModels()).map((m) => m.name), [MODEL]);
}

const generate = (claude: Provider) => collect(claude.generate({ model: MODEL, prompt: "x" }));

const REPLY_TOO_LARGE = (host: string) =>
  `Anthropic at ${host} sent a reply to /v1/models?limit=1000 larger than 1 MiB (the --max-reply-bytes limit), so Rune stopped reading it: if the reply is genuine (a very long model list, a large batch of embeddings), raise --max-reply-bytes; otherwise check what answers at that address.`;

Deno.test("anthropic: a 300 MB model list stops at --max-reply-bytes with the body cancelled", async () => {
  await withHostile(async (server) => {
    const claude = provider(server);
    server.on("/v1/models", { kind: "huge-json", bytes: HUGE, list: "data", item: MODEL_JSON });
    await assert.rejects(claude.listModels(), (error: Error) => {
      assert.ok(error instanceof UpstreamTooLargeError, `${error.name}: ${error.message}`);
      assert.equal(error.limit, "reply");
      assert.equal(error.maxBytes, MiB);
      assert.equal(error.message, REPLY_TOO_LARGE(server.host));
      return true;
    });
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 8 * MiB, `sent ${sent.bytes} bytes of ${HUGE}`);
    await assertNextCallWorks(server, claude);
  });
});

Deno.test("anthropic: an endless gzip bomb as the model list counts inflated bytes against --max-reply-bytes", async () => {
  await withHostile(async (server) => {
    const claude = provider(server);
    server.on("/v1/models", {
      kind: "huge-json",
      bytes: Infinity,
      gzip: true,
      list: "data",
      item: MODEL_JSON,
    });
    await assert.rejects(claude.listModels(), (error: Error) => {
      assert.ok(error instanceof UpstreamTooLargeError, `${error.name}: ${error.message}`);
      assert.equal(error.message, REPLY_TOO_LARGE(server.host));
      return true;
    });
    // Cancelled; what the server generated is no measure with gzip (see the stream test).
    assert.equal((await server.settled(0)).cancelled, true);
    await assertNextCallWorks(server, claude);
  });
});

Deno.test("anthropic: a 300 MB error page is read only to its first 64 KiB and the message keeps the status", async () => {
  await withHostile(async (server) => {
    const claude = provider(server);
    server.on("/v1/messages", { kind: "huge-error", bytes: HUGE, status: 502 });
    await assert.rejects(generate(claude), (error: Error) => {
      assert.ok(error instanceof UpstreamError, `${error.name}: ${error.message}`);
      assert.equal(error.status, 502);
      assert.equal(
        error.message,
        `Anthropic at ${server.host} answered /v1/messages with HTTP 502 and a reply that is not an Anthropic error (text/html; charset=utf-8, cut short: "<html><body><p>error error error error</p><p>error error error error</p><p>error…"): a proxy or gateway between Rune and Anthropic may have failed; retry, and check ANTHROPIC_BASE_URL (or base_url in the configuration file).`,
      );
      return true;
    });
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 4 * MiB, `sent ${sent.bytes} bytes`);
    await assertNextCallWorks(server, claude);
  });
});

for (const gzip of [false, true]) {
  Deno.test(`anthropic: an endless stream of 1 KiB text deltas stops at --max-stream-bytes${gzip ? " (gzip bomb)" : ""}`, async () => {
    await withHostile(async (server) => {
      const claude = provider(server);
      server.on("/v1/messages", { kind: "huge-sse", dialect: "anthropic", tokenBytes: 1024, gzip });
      let received = 0;
      await assert.rejects(
        (async () => {
          for await (const chunk of claude.generate({ model: MODEL, prompt: "x" })) {
            if (chunk.type === "text") received += chunk.text.length;
          }
        })(),
        (error: Error) => {
          assert.ok(error instanceof UpstreamTooLargeError, `${error.name}: ${error.message}`);
          assert.equal(error.limit, "stream");
          assert.equal(
            error.message,
            `Anthropic at ${server.host} streamed more than 1 MiB of text, thinking and tool calls in one reply (the --max-stream-bytes limit), so Rune stopped the call: ask for fewer tokens (num_predict), or raise --max-stream-bytes.`,
          );
          return true;
        },
      );
      // Every token within the budget was delivered, and none past it.
      assert.equal(received, MiB);
      // The body was cancelled. (How much the server generated says little with gzip: repeated
      // events shrink a thousandfold, so hundreds of MB fit in the socket buffers unread.)
      assert.equal((await server.settled(0)).cancelled, true);
      await assertNextCallWorks(server, claude);
    });
  });
}

Deno.test("anthropic: a stream within the budget is read whole", async () => {
  await withHostile(async (server) => {
    const claude = provider(server);
    server.on("/v1/messages", {
      kind: "huge-sse",
      dialect: "anthropic",
      tokenBytes: 1024,
      bytes: MiB / 2,
      gzip: true,
    });
    const result = await generate(claude);
    // Half a MiB on the wire (give or take a generated chunk), most of it text.
    const text = result.text.length;
    assert.ok(text > MiB / 4 && text < MiB / 2 + 64 * 1024, `${text} bytes of text`);
    assert.equal(result.doneReason, "stop");
    assert.equal((await server.settled(0)).completed, true);
  });
});

Deno.test("anthropic: an event that never ends is an invalid response at the event bound", async () => {
  await withHostile(async (server) => {
    const claude = provider(server);
    server.on("/v1/messages", { kind: "huge-event", dialect: "anthropic" });
    await assert.rejects(generate(claude), (error: Error) => {
      assert.ok(error instanceof InvalidResponseError, `${error.name}: ${error.message}`);
      assert.equal(
        error.message,
        `Invalid response from Anthropic at ${server.host}: /v1/messages: the server sent an event longer than ${MiB} characters. Is ANTHROPIC_BASE_URL (or base_url in the configuration file) pointing at Anthropic's API, or a gateway that speaks it faithfully?`,
      );
      return true;
    });
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 8 * MiB, `sent ${sent.bytes} bytes`);
    await assertNextCallWorks(server, claude);
  });
});

Deno.test("anthropic: a redirect is followed and a redirect loop has its own message", async () => {
  await withHostile(async (server) => {
    const claude = provider(server);
    server.on("/v1/models", { kind: "redirect", location: "/moved/v1/models", status: 307 });
    server.on("/moved/v1/models", {
      kind: "json",
      body: { data: [MODEL_JSON], has_more: false, first_id: MODEL, last_id: MODEL },
    });
    assert.deepEqual((await claude.listModels()).map((m) => m.name), [MODEL]);
    server.on("/v1/models", { kind: "redirect" });
    server.on("/v1/messages", { kind: "redirect", status: 307 });
    const loop = (error: Error) => {
      assert.ok(error instanceof ProviderUnreachableError, `${error.name}: ${error.message}`);
      assert.equal(error.reason, "redirect-loop");
      assert.equal(
        error.message,
        `Anthropic at ${server.host} answered with redirects that never end (a redirect loop, Maximum number of redirects (20) reached): point ANTHROPIC_BASE_URL (or base_url in the configuration file) at the server itself, not at a proxy or login page that redirects.`,
      );
      return true;
    };
    await assert.rejects(claude.listModels(), loop);
    await assert.rejects(generate(claude), loop);
    await assertNextCallWorks(server, claude);
  });
});

/** The events that open a reply with a text block, before the malformed one. */
const OPENING: SseSpec[] = [
  {
    event: "message_start",
    data: {
      type: "message_start",
      message: {
        id: "msg_1",
        type: "message",
        role: "assistant",
        model: MODEL,
        content: [],
        stop_reason: null,
        usage: { input_tokens: 1, output_tokens: 1 },
      },
    },
  },
  {
    event: "content_block_start",
    data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
  },
];

const delta = (delta: unknown, index: unknown = 0): SseSpec => ({
  event: "content_block_delta",
  data: { type: "content_block_delta", index, delta },
});

/** A malformed reply and the problem the error must name. */
interface Malformed {
  name: string;
  events: (SseSpec | string)[];
  problem: string;
}

const MALFORMED: Malformed[] = [
  {
    name: "a text delta whose text is an object",
    events: [...OPENING, delta({ type: "text_delta", text: { a: 1 } })],
    problem:
      "/v1/messages event 3 (content_block_delta): delta.text: expected string, received object",
  },
  {
    name: "a delta whose index is a string",
    events: [...OPENING, delta({ type: "text_delta", text: "x" }, "0")],
    problem: "/v1/messages event 3 (content_block_delta): index: expected number, received string",
  },
  {
    name: "a message_start without message",
    events: [{ event: "message_start", data: { type: "message_start" } }],
    problem: "/v1/messages event 1 (message_start): message: expected object, received undefined",
  },
  {
    name: "an event that is a number",
    events: [{ event: "content_block_delta", data: 5 }],
    problem: "/v1/messages event 1: the reply: expected object, received number",
  },
  {
    name: "an error event whose error is a string",
    events: [...OPENING, { event: "error", data: { type: "error", error: "boom" } }],
    problem: "/v1/messages event 3 (error): error: expected object, received string",
  },
  {
    name: "a content block that is not an object",
    events: [{
      event: "content_block_start",
      data: { type: "content_block_start", index: 0, content_block: "text" },
    }],
    problem:
      "/v1/messages event 1 (content_block_start): content_block: expected object, received string",
  },
];

for (const malformed of MALFORMED) {
  Deno.test(`anthropic: ${malformed.name} is an invalid response naming the field`, async () => {
    await withHostile(async (server) => {
      const claude = provider(server);
      server.on("/v1/messages", { kind: "sse", events: malformed.events });
      await assert.rejects(generate(claude), (error: Error) => {
        assert.ok(error instanceof InvalidResponseError, `${error.name}: ${error.message}`);
        assert.equal(
          error.message,
          `Invalid response from Anthropic at ${server.host}: ${malformed.problem}. Is it a current Anthropic, and does the address point at Anthropic itself?`,
        );
        return true;
      });
      await assertNextCallWorks(server, claude);
    });
  });
}

Deno.test("anthropic: a model list of the wrong shape is an invalid response naming the field", async () => {
  await withHostile(async (server) => {
    const claude = provider(server);
    server.on("/v1/models", { kind: "json", body: { data: "many" } });
    await assert.rejects(claude.listModels(), (error: Error) => {
      assert.ok(error instanceof InvalidResponseError, `${error.name}: ${error.message}`);
      assert.match(
        error.message,
        new RegExp(
          `^Invalid response from Anthropic at ${server.host}: /v1/models\\?limit=1000: data: expected array, received string`,
        ),
      );
      return true;
    });
    await assertNextCallWorks(server, claude);
  });
});
