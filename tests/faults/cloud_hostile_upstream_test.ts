/**
 * The real daemon in front of a hostile upstream posing as the cloud
 * providers (ANTHROPIC_BASE_URL and OPENAI_BASE_URL point at it): a 300 MB
 * model list, endless server-sent event streams of well-formed
 * `content_block_delta` and `chat.completion.chunk` events (plain and as
 * gzip bombs), and an event that never ends, each answered with the
 * default byte budgets. Each call ends in a tool error naming the limit,
 * the upstream body is cancelled, the daemon's resident memory stays
 * under a stated bound throughout, and the next call on the same session
 * works.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startDaemon } from "../daemon.ts";
import { type HostileReply, startHostileUpstream } from "../hostile_upstream.ts";
import { callSampled, INITIALIZED, initializeRequest, openSocket, within } from "./support.ts";

const MiB = 1024 * 1024;
/** A finite hostile reply: far beyond every default budget (64 MiB reply, 16 MiB stream). */
const HUGE = 300 * MiB;
/**
 * The daemon's resident memory must stay below this while a hostile reply
 * is read: an idle daemon is ~50 MiB; the most one call may hold is a
 * --max-reply-bytes reply (64 MiB, held as text and parsed once), a
 * --max-stream-bytes reply (16 MiB of text, kept for the final result) or
 * one 16 Mi-character event buffered by the SSE parser. 400 MiB leaves
 * room for V8's heap growth but not for an unbounded read of any of these.
 */
const RSS_BOUND = 400 * MiB;
const STEP_MS = 60_000;
const ANTHROPIC_MODEL = "claude-haiku-4-5";
const OPENAI_MODEL = "gpt-4o-mini";

interface Case {
  what: string;
  path: string;
  reply: HostileReply;
  tool: string;
  args: Record<string, unknown>;
  error: (host: string) => string;
}

const streamTooLarge = (name: string, address: string) =>
  `${name} at ${address} streamed more than 16 MiB of text, thinking and tool calls in one reply (the --max-stream-bytes limit), so Rune stopped the call: ask for fewer tokens (num_predict), or raise --max-stream-bytes.`;

const ANTHROPIC_MODEL_JSON = {
  type: "model",
  id: ANTHROPIC_MODEL,
  display_name: "Claude Haiku 4.5",
  created_at: "2025-10-01T00:00:00Z",
};

const CASES: Case[] = [
  {
    what: "a 300 MB Anthropic model list",
    path: "/v1/models",
    reply: { kind: "huge-json", bytes: HUGE, list: "data", item: ANTHROPIC_MODEL_JSON },
    tool: "ai_anthropic_list_models",
    args: {},
    error: (host) =>
      `Anthropic at ${host} sent a reply to /v1/models?limit=1000 larger than 64 MiB (the --max-reply-bytes limit), so Rune stopped reading it: if the reply is genuine (a very long model list, a large batch of embeddings), raise --max-reply-bytes; otherwise check what answers at that address.`,
  },
  {
    what: "an endless Anthropic event stream of 1 KiB text deltas",
    path: "/v1/messages",
    reply: { kind: "huge-sse", dialect: "anthropic", tokenBytes: 1024 },
    tool: "ai_anthropic_generate",
    args: { model: ANTHROPIC_MODEL, prompt: "x" },
    error: (host) => streamTooLarge("Anthropic", host),
  },
  {
    // Endless, so only a cancel can end it: gzip shrinks it a thousandfold.
    what: "an endless Anthropic event stream as a gzip bomb",
    path: "/v1/messages",
    reply: { kind: "huge-sse", dialect: "anthropic", tokenBytes: 1024, gzip: true },
    tool: "ai_anthropic_generate",
    args: { model: ANTHROPIC_MODEL, prompt: "x" },
    error: (host) => streamTooLarge("Anthropic", host),
  },
  {
    what: "an Anthropic event that never ends",
    path: "/v1/messages",
    reply: { kind: "huge-event", dialect: "anthropic" },
    tool: "ai_anthropic_generate",
    args: { model: ANTHROPIC_MODEL, prompt: "x" },
    error: (host) =>
      `Invalid response from Anthropic at ${host}: /v1/messages: the server sent an event longer than 16777216 characters. Is ANTHROPIC_BASE_URL (or base_url in the configuration file) pointing at Anthropic's API, or a gateway that speaks it faithfully?`,
  },
  {
    what: "a 300 MB OpenAI model list",
    path: "/v1/models",
    reply: {
      kind: "huge-json",
      bytes: HUGE,
      list: "data",
      item: { id: OPENAI_MODEL, object: "model", created: 1721172741, owned_by: "system" },
    },
    tool: "ai_openai_list_models",
    args: {},
    error: (host) =>
      `OpenAI at ${host}/v1 sent a reply to /models larger than 64 MiB (the --max-reply-bytes limit), so Rune stopped reading it: if the reply is genuine (a very long model list, a large batch of embeddings), raise --max-reply-bytes; otherwise check what answers at that address.`,
  },
  {
    what: "an endless OpenAI chunk stream as a gzip bomb",
    path: "/v1/chat/completions",
    reply: { kind: "huge-sse", dialect: "openai", tokenBytes: 1024, gzip: true },
    tool: "ai_openai_generate",
    args: { model: OPENAI_MODEL, prompt: "x" },
    error: (host) => streamTooLarge("OpenAI", `${host}/v1`),
  },
];

Deno.test("hostile cloud replies end in tool errors within the memory bound and the next call works", async () => {
  const upstream = await startHostileUpstream();
  const daemon = await startDaemon(upstream.host, [], {
    env: {
      ANTHROPIC_API_KEY: "sk-ant-hostile",
      ANTHROPIC_BASE_URL: upstream.url,
      OPENAI_API_KEY: "sk-hostile",
      OPENAI_BASE_URL: `${upstream.url}/v1`,
    },
  });
  const socket = await openSocket(daemon.wsUrl);
  try {
    socket.send(initializeRequest(0));
    await within(STEP_MS, "initialize", socket.next());
    socket.send(INITIALIZED);
    let id = 1;
    for (const test of CASES) {
      upstream.on(test.path, test.reply);
      const before = upstream.sent.length;
      const reply = await callSampled(socket, daemon.child.pid, id++, test.tool, test.args);
      assert.equal(reply.isError, true, test.what);
      assert.equal(reply.text, test.error(upstream.host), test.what);
      const sent = await within(STEP_MS, `${test.what} cancelled`, upstream.settled(before));
      assert.equal(sent.cancelled, true, `${test.what}: the upstream body was cancelled`);
      assert.ok(
        reply.peakRss < RSS_BOUND,
        `${test.what}: peak RSS ${(reply.peakRss / MiB).toFixed(0)} MiB over ${
          RSS_BOUND / MiB
        } MiB`,
      );
      // The next call on the same session works.
      upstream.on("/v1/models", {
        kind: "json",
        body: {
          data: [ANTHROPIC_MODEL_JSON],
          has_more: false,
          first_id: ANTHROPIC_MODEL,
          last_id: ANTHROPIC_MODEL,
        },
      });
      const next = await callSampled(
        socket,
        daemon.child.pid,
        id++,
        "ai_anthropic_list_models",
        {},
      );
      assert.equal(next.isError, false, `after ${test.what}: ${next.text}`);
      assert.match(next.text, /claude-haiku-4-5/);
    }
  } finally {
    await socket.close();
    await daemon.stop();
    await upstream.close();
  }
});
