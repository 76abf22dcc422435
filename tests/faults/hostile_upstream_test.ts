/**
 * The real daemon in front of a hostile upstream: a 300 MB model list, an
 * endless gzip bomb of embeddings, a 300 MB error page and a 300 MB streamed reply
 * in 1 MiB lines, each answered with the default byte budgets. Each call
 * ends in a tool error naming the limit, the upstream body is cancelled,
 * the daemon's resident memory stays under a stated bound throughout, and
 * the next call on the same session works.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startDaemon } from "../daemon.ts";
import { type HostileReply, startHostileUpstream } from "../hostile_upstream.ts";
import { callSampled, INITIALIZED, initializeRequest, openSocket, within } from "./support.ts";

const MiB = 1024 * 1024;
/** Each hostile reply: far beyond every default budget (64 MiB reply, 16 MiB stream). */
const HUGE = 300 * MiB;
/**
 * The daemon's resident memory must stay below this while a hostile reply
 * is read: an idle daemon is ~50 MiB, the largest reply it keeps is
 * --max-reply-bytes (64 MiB, held as text and parsed once), so 400 MiB
 * leaves room for V8's heap growth but not for a 300 MB body (issue 7
 * measured 1.2 GB at 100 MB and a crash at 300 MB before the budgets).
 */
const RSS_BOUND = 400 * MiB;
const STEP_MS = 60_000;

interface Case {
  what: string;
  path: string;
  reply: HostileReply;
  tool: string;
  args: Record<string, unknown>;
  error: (host: string) => string;
}

const CASES: Case[] = [
  {
    what: "a 300 MB model list",
    path: "/api/tags",
    reply: { kind: "huge-json", bytes: HUGE },
    tool: "ai_ollama_list_models",
    args: {},
    error: (host) =>
      `Ollama at ${host} sent a reply to /api/tags larger than 64 MiB (the --max-reply-bytes limit), so Rune stopped reading it: if the reply is genuine (a very long model list, a large batch of embeddings), raise --max-reply-bytes; otherwise check what answers at that address.`,
  },
  {
    // Endless, so only a cancel can end it: 300 MB of gzip fits in socket buffers.
    what: "an endless gzip bomb as the embedding reply",
    path: "/api/embed",
    reply: { kind: "huge-json", bytes: Infinity, gzip: true },
    tool: "ai_ollama_embed",
    args: { model: "all-minilm", input: "x" },
    error: (host) =>
      `Ollama at ${host} sent a reply to /api/embed larger than 64 MiB (the --max-reply-bytes limit), so Rune stopped reading it: if the reply is genuine (a very long model list, a large batch of embeddings), raise --max-reply-bytes; otherwise check what answers at that address.`,
  },
  {
    what: "a 300 MB error page",
    path: "/api/generate",
    reply: { kind: "huge-error", bytes: HUGE, status: 500 },
    tool: "ai_ollama_generate",
    args: { model: "llama3.2", prompt: "x" },
    error: (host) =>
      `Ollama at ${host} answered /api/generate with HTTP 500 and a body that is not an Ollama error (text/html; charset=utf-8, cut short: "<html><body><p>error error error error</p><p>error error error error</p><p>error…"): is OLLAMA_HOST pointing at Ollama and not at a proxy or another service?`,
  },
  {
    what: "a 300 MB streamed reply in 1 MiB lines",
    path: "/api/generate",
    reply: { kind: "huge-stream", lineBytes: MiB, bytes: HUGE },
    tool: "ai_ollama_generate",
    args: { model: "llama3.2", prompt: "x" },
    error: (host) =>
      `Ollama at ${host} streamed more than 16 MiB of text, thinking and tool calls in one reply (the --max-stream-bytes limit), so Rune stopped the call: ask for fewer tokens (num_predict), or raise --max-stream-bytes.`,
  },
];

Deno.test("hostile replies end in tool errors within the memory bound and the next call works", async () => {
  const upstream = await startHostileUpstream();
  const daemon = await startDaemon(upstream.host);
  const socket = await openSocket(daemon.wsUrl);
  try {
    socket.send(initializeRequest(0));
    await within(STEP_MS, "initialize", socket.next());
    socket.send(INITIALIZED);
    upstream.on("/api/show", { kind: "json", body: { capabilities: ["embedding"] } });
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
      upstream.on("/api/tags", {
        kind: "json",
        body: { models: [{ name: "llama3.2:latest", model: "llama3.2:latest", size: 1 }] },
      });
      const next = await callSampled(socket, daemon.child.pid, id++, "ai_ollama_list_models", {});
      assert.equal(next.isError, false, `after ${test.what}: ${next.text}`);
      assert.match(next.text, /llama3\.2:latest/);
    }
  } finally {
    await socket.close();
    await daemon.stop();
    await upstream.close();
  }
});
