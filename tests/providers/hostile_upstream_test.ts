/**
 * The Ollama provider against a hostile upstream: replies far over the
 * byte budgets (plain and gzip bombs), huge error pages, endless streams,
 * malformed shapes and redirect loops. Each call fails with a typed error
 * that names the limit or the problem, the upstream body is cancelled at
 * once (the server sees its reply cut short), and the next call works.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  InvalidResponseError,
  ProviderUnreachableError,
  UpstreamTooLargeError,
} from "../../src/providers/errors.ts";
import { createOllamaProvider } from "../../src/providers/ollama/mod.ts";
import { collect, type Provider } from "../../src/providers/types.ts";
import { type HostileUpstream, startHostileUpstream } from "../hostile_upstream.ts";

const MiB = 1024 * 1024;
/** A reply far beyond every budget below; it must cost only the budget. */
const HUGE = 300 * MiB;

async function withHostile(fn: (server: HostileUpstream) => Promise<void>): Promise<void> {
  const server = await startHostileUpstream();
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

function provider(server: HostileUpstream): Provider {
  return createOllamaProvider({
    baseUrl: server.url,
    cacheMs: 0,
    limits: { maxReplyBytes: 1 * MiB, maxStreamBytes: 1 * MiB, maxErrorBytes: 64 * 1024 },
  });
}

const TAGS = {
  models: [{ name: "llama3.2:latest", model: "llama3.2:latest", size: 1, details: {} }],
};

/** Serves a valid model list and checks the provider reads it: the next call works. */
async function assertNextCallWorks(server: HostileUpstream, ollama: Provider): Promise<void> {
  server.on("/api/tags", { kind: "json", body: TAGS });
  assert.deepEqual((await ollama.listModels()).map((m) => m.name), ["llama3.2:latest"]);
}

Deno.test("a 300 MB model list stops at --max-reply-bytes with the body cancelled", async () => {
  await withHostile(async (server) => {
    const ollama = provider(server);
    server.on("/api/tags", { kind: "huge-json", bytes: HUGE });
    await assert.rejects(ollama.listModels(), (error: Error) => {
      assert.ok(error instanceof UpstreamTooLargeError);
      assert.equal(error.limit, "reply");
      assert.equal(error.maxBytes, MiB);
      assert.equal(
        error.message,
        `Ollama at ${server.host} sent a reply to /api/tags larger than 1 MiB (the --max-reply-bytes limit), so Rune stopped reading it: if the reply is genuine (a very long model list, a large batch of embeddings), raise --max-reply-bytes; otherwise check what answers at that address.`,
      );
      return true;
    });
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 8 * MiB, `sent ${sent.bytes} bytes of ${HUGE}`);
    await assertNextCallWorks(server, ollama);
  });
});

Deno.test("an endless gzip bomb counts inflated bytes against --max-reply-bytes", async () => {
  await withHostile(async (server) => {
    const ollama = provider(server);
    // Endless: 300 MB of repeated JSON gzips small enough to sit in socket buffers whole.
    server.on("/api/tags", { kind: "huge-json", bytes: Infinity, gzip: true });
    await assert.rejects(
      ollama.listModels(),
      (error: Error) => error instanceof UpstreamTooLargeError && error.limit === "reply",
    );
    // How much the server generated is not asserted: at ~1,000:1 compression, socket buffers
    // hold hundreds of MB of it before the cancel arrives. The compressed bytes alone could
    // never pass the budget, so the refusal above shows the inflated bytes were counted.
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    await assertNextCallWorks(server, ollama);
  });
});

Deno.test("a 300 MB error page is read only to its first 64 KiB", async () => {
  await withHostile(async (server) => {
    const ollama = provider(server);
    server.on("/api/generate", { kind: "huge-error", bytes: HUGE, status: 500 });
    await assert.rejects(
      collect(ollama.generate({ model: "llama3.2", prompt: "x" })),
      (error: Error) => {
        assert.ok(error instanceof InvalidResponseError);
        assert.equal(
          error.message,
          `Ollama at ${server.host} answered /api/generate with HTTP 500 and a body that is not an Ollama error (text/html; charset=utf-8, cut short: "<html><body><p>error error error error</p><p>error error error error</p><p>error…"): is OLLAMA_HOST pointing at Ollama and not at a proxy or another service?`,
        );
        return true;
      },
    );
    const sent = await server.settled(0);
    assert.equal(sent.cancelled, true);
    assert.ok(sent.bytes < 4 * MiB, `sent ${sent.bytes} bytes`);
    await assertNextCallWorks(server, ollama);
  });
});

for (const gzip of [false, true]) {
  Deno.test(`an endless stream of 1 KiB tokens stops at --max-stream-bytes${gzip ? " (gzip)" : ""}`, async () => {
    await withHostile(async (server) => {
      const ollama = provider(server);
      server.on("/api/generate", { kind: "huge-stream", lineBytes: 1024, gzip });
      let received = 0;
      await assert.rejects(
        (async () => {
          for await (const chunk of ollama.generate({ model: "llama3.2", prompt: "x" })) {
            if (chunk.type === "text") received += chunk.text.length;
          }
        })(),
        (error: Error) => {
          assert.ok(error instanceof UpstreamTooLargeError);
          assert.equal(error.limit, "stream");
          assert.equal(
            error.message,
            `Ollama at ${server.host} streamed more than 1 MiB of text, thinking and tool calls in one reply (the --max-stream-bytes limit), so Rune stopped the call: ask for fewer tokens (num_predict), or raise --max-stream-bytes.`,
          );
          return true;
        },
      );
      // Every token within the budget was delivered, and none past it.
      assert.equal(received, MiB);
      const sent = await server.settled(0);
      assert.equal(sent.cancelled, true);
      await assertNextCallWorks(server, ollama);
    });
  });
}

Deno.test("a redirect is followed and a redirect loop has its own message", async () => {
  await withHostile(async (server) => {
    const ollama = provider(server);
    server.on("/api/tags", { kind: "redirect", location: "/moved/api/tags", status: 307 });
    server.on("/moved/api/tags", { kind: "json", body: TAGS });
    assert.deepEqual((await ollama.listModels()).map((m) => m.name), ["llama3.2:latest"]);
    server.on("/api/tags", { kind: "redirect" });
    await assert.rejects(ollama.listModels(), (error: Error) => {
      assert.ok(error instanceof ProviderUnreachableError);
      assert.equal(error.reason, "redirect-loop");
      assert.equal(
        error.message,
        `Ollama at ${server.host} answered with redirects that never end (a redirect loop, Maximum number of redirects (20) reached): point OLLAMA_HOST or --ollama-host at the server itself, not at a proxy or login page that redirects.`,
      );
      return true;
    });
    await assertNextCallWorks(server, ollama);
  });
});

/** A malformed reply, the call that reads it, and the problem the error must name. */
interface Malformed {
  name: string;
  path: string;
  reply: { kind: "json"; body: unknown } | { kind: "ndjson"; lines: unknown[] };
  call: (ollama: Provider) => Promise<unknown>;
  problem: string;
}

const generate = (ollama: Provider) => collect(ollama.generate({ model: "llama3.2", prompt: "x" }));
const chat = (ollama: Provider) =>
  collect(ollama.chat({ model: "llama3.2", messages: [{ role: "user", content: "x" }] }));

const MALFORMED: Malformed[] = [
  {
    name: "a tool call without function",
    path: "/api/chat",
    reply: {
      kind: "ndjson",
      lines: [{ model: "m", message: { role: "assistant", content: "", tool_calls: [{}] } }],
    },
    call: chat,
    problem:
      "/api/chat line 1: message.tool_calls[0].function: expected object, received undefined",
  },
  {
    name: "a tool call whose arguments are a string",
    path: "/api/chat",
    reply: {
      kind: "ndjson",
      lines: [{
        message: { content: "", tool_calls: [{ function: { name: "f", arguments: "{}" } }] },
      }],
    },
    call: chat,
    problem:
      "/api/chat line 1: message.tool_calls[0].function.arguments: expected record, received string",
  },
  {
    name: "a response that is an object",
    path: "/api/generate",
    reply: { kind: "ndjson", lines: [{ response: "ok", done: false }, { response: { a: 1 } }] },
    call: generate,
    problem: "/api/generate line 2: response: expected string, received object",
  },
  {
    name: "a line that is a number",
    path: "/api/generate",
    reply: { kind: "ndjson", lines: [5] },
    call: generate,
    problem: "/api/generate line 1: the reply: expected object, received number",
  },
  {
    name: "an error line whose error is an object",
    path: "/api/generate",
    reply: { kind: "ndjson", lines: [{ error: { message: "boom" } }] },
    call: generate,
    problem: "/api/generate line 1: error: expected string, received object",
  },
  {
    name: "embeddings that are not numbers",
    path: "/api/embed",
    reply: { kind: "json", body: { model: "m", embeddings: [[0.1, "x"]] } },
    call: (ollama) => ollama.embed({ model: "all-minilm", input: "x" }),
    problem: "/api/embed: embeddings[0][1]: expected number, received string",
  },
  {
    name: "a model list that is not a list",
    path: "/api/tags",
    reply: { kind: "json", body: { models: "many" } },
    call: (ollama) => ollama.listModels(),
    problem: "/api/tags: models: expected array, received string",
  },
  {
    name: "capabilities that are not a list",
    path: "/api/show",
    reply: { kind: "json", body: { capabilities: "tools" } },
    call: (ollama) => ollama.showModel("llama3.2"),
    problem: "/api/show: capabilities: expected array, received string",
  },
  {
    name: "a version that is a number",
    path: "/api/version",
    reply: { kind: "json", body: { version: 12 } },
    call: (ollama) => ollama.ping(),
    problem: "/api/version: version: expected string, received number",
  },
];

for (const malformed of MALFORMED) {
  Deno.test(`${malformed.name} is an invalid response naming the field`, async () => {
    await withHostile(async (server) => {
      const ollama = provider(server);
      // embed checks capabilities first: say the model can embed.
      server.on("/api/show", { kind: "json", body: { capabilities: ["embedding"] } });
      server.on(malformed.path, malformed.reply);
      await assert.rejects(malformed.call(ollama), (error: Error) => {
        assert.ok(error instanceof InvalidResponseError, `${error.name}: ${error.message}`);
        assert.equal(
          error.message,
          `Invalid response from Ollama at ${server.host}: ${malformed.problem}. Is it a current Ollama, and does the address point at Ollama itself?`,
        );
        return true;
      });
      await assertNextCallWorks(server, ollama);
    });
  });
}

Deno.test("a line past the line bound is an invalid response from Ollama, with the body cancelled", async () => {
  await withHostile(async (server) => {
    const ollama = createOllamaProvider({ baseUrl: server.url, cacheMs: 0, maxLineLength: MiB });
    server.on("/api/generate", { kind: "huge-stream", lineBytes: 2 * MiB, bytes: HUGE });
    await assert.rejects(generate(ollama), (error: Error) => {
      assert.ok(error instanceof InvalidResponseError, `${error.name}: ${error.message}`);
      assert.equal(
        error.message,
        `Invalid response from Ollama at ${server.host}: /api/generate after line 0: a reply line is longer than ${MiB} characters: no model server sends lines that long (the bound is fixed), so the server is not speaking NDJSON. Is OLLAMA_HOST or --ollama-host pointing at Ollama itself?`,
      );
      return true;
    });
    assert.equal((await server.settled(0)).cancelled, true);
    await assertNextCallWorks(server, ollama);
  });
});
