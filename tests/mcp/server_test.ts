/**
 * The MCP layer in process, apart from any wire format: the server factory
 * with a fake provider, served over the SDK's in-memory transport pair in
 * both protocol eras and driven by the v2 SDK `Client`. What the server
 * writes is recorded, so ordering is asserted on the wire, not through the
 * client's notification dispatch.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  Client,
  type JSONRPCMessage,
  ProtocolError,
  ProtocolErrorCode,
} from "@modelcontextprotocol/client";
import { InMemoryTransport } from "@modelcontextprotocol/server";
import { z } from "zod";
import { RuneError } from "../../src/errors.ts";
import type { LogLevel } from "../../src/log.ts";
import { serveConnection } from "../../src/mcp/connection.ts";
import { createServerFactory, type ToolSet } from "../../src/mcp/server.ts";
import {
  chatOutput,
  embedOutput,
  generateOutput,
  listModelsOutput,
} from "../../src/mcp/tools/schemas.ts";
import { createFakeProvider, ENDLESS_CHUNK, type FakeProvider } from "../fake_provider.ts";
import { resultText } from "../mcp_calls.ts";

type Era = "legacy" | "modern";

interface Harness {
  client: Client;
  fake: FakeProvider;
  /** Every message the server wrote, in order. */
  wire: JSONRPCMessage[];
  /** Log lines the server wrote. */
  logs: [LogLevel, string][];
  /** While set, the server's writes wait for it (a client that stops reading). */
  gate?: Promise<void>;
}

async function withServer(
  era: Era,
  fn: (h: Harness) => Promise<void>,
  options: { tools?: ToolSet; others?: FakeProvider[] } = {},
): Promise<void> {
  const fake = createFakeProvider({ id: "fake", models: [{ name: "m1", family: "llama" }] });
  const [clientEnd, serverEnd] = InMemoryTransport.createLinkedPair();
  const harness = { fake, wire: [], logs: [] } as unknown as Harness;
  const send = serverEnd.send.bind(serverEnd);
  serverEnd.send = async (message, options) => {
    await harness.gate;
    harness.wire.push(message);
    return await send(message, options);
  };
  const connection = serveConnection(
    serverEnd,
    createServerFactory({
      providers: [fake, ...(options.others ?? [])],
      tools: options.tools ?? "per-provider",
      log: (level, text) => harness.logs.push([level, text]),
    }),
  );
  harness.client = new Client(
    { name: "rune-test", version: "1.0.0" },
    era === "modern" ? { versionNegotiation: { mode: { pin: "2026-07-28" } } } : {},
  );
  await harness.client.connect(clientEnd);
  try {
    assert.equal(harness.client.getProtocolEra(), era);
    await fn(harness);
  } finally {
    await harness.client.close();
    await connection.close();
  }
}

/** Progress notifications the server wrote for `token`, in wire order. */
function progressOf(wire: JSONRPCMessage[], token: string) {
  return wire.flatMap((m) =>
    "method" in m && m.method === "notifications/progress" &&
      (m.params as { progressToken?: unknown }).progressToken === token
      ? [m.params as { progress: number; message: string; _meta?: { thinking?: string } }]
      : []
  );
}

/** Names and JSON types of an object schema's properties. */
function shape(schema: unknown): Record<string, unknown> {
  const { properties } = schema as { properties: Record<string, { type?: unknown }> };
  return Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, v.type ?? "any"]));
}

for (const era of ["legacy", "modern"] as const) {
  Deno.test(`[${era}] tools/list shows each tool with its input, output schema and annotations`, async () => {
    await withServer(era, async ({ client }) => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name), [
        "ai_fake_list_models",
        "ai_fake_generate",
        "ai_fake_chat",
        "ai_fake_embed",
        "ai_compare",
      ]);
      const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
      const generate = byName.ai_fake_generate;
      assert.deepEqual(shape(generate.inputSchema), {
        model: "string",
        prompt: "string",
        system: "string",
        images: "array",
        format: "any",
        options: "object",
        think: "any",
        keep_alive: "any",
        provider_options: "object",
        cache: "boolean",
      });
      assert.deepEqual(generate.inputSchema.required, ["model", "prompt"]);
      assert.equal(
        (generate.inputSchema as { additionalProperties?: unknown }).additionalProperties,
        false,
      );
      assert.deepEqual(shape(generate.outputSchema), {
        model: "string",
        response: "string",
        thinking: "string",
        done_reason: "string",
        usage: "object",
        cached: "boolean",
      });
      assert.deepEqual(generate.outputSchema?.required, [
        "model",
        "response",
        "done_reason",
        "usage",
      ]);
      assert.deepEqual(generate.annotations, { readOnlyHint: true, openWorldHint: false });
      assert.deepEqual(shape(byName.ai_fake_chat.outputSchema), {
        model: "string",
        message: "object",
        done_reason: "string",
        usage: "object",
        cached: "boolean",
      });
      assert.deepEqual(shape(byName.ai_fake_embed.inputSchema), {
        model: "string",
        input: "any",
        provider_options: "object",
      });
      // Neutral option names on every provider's tools.
      const options = (generate.inputSchema.properties as Record<string, unknown>).options as {
        properties: Record<string, unknown>;
      };
      assert.deepEqual(Object.keys(options.properties), [
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "max_tokens",
        "stop",
        "context_length",
      ]);
      assert.deepEqual(shape(byName.ai_fake_list_models.outputSchema), {
        models: "array",
        errors: "array",
      });
      assert.deepEqual(byName.ai_fake_list_models.annotations, {
        readOnlyHint: true,
        idempotentHint: true,
        openWorldHint: false,
      });
    });
  });

  Deno.test(`[${era}] every tool result validates against its output schema`, async () => {
    await withServer(era, async ({ client, fake }) => {
      fake.toolCalls = [{ id: "call_1", name: "get_weather", arguments: { city: "Oslo" } }];
      const results = {
        list: await client.callTool({ name: "ai_fake_list_models", arguments: {} }),
        generate: await client.callTool({
          name: "ai_fake_generate",
          arguments: { model: "m1", prompt: "a b" },
        }),
        chat: await client.callTool({
          name: "ai_fake_chat",
          arguments: { model: "m1", messages: [{ role: "user", content: "weather?" }] },
        }),
        embed: await client.callTool({
          name: "ai_fake_embed",
          arguments: { model: "m1", input: ["ab", "c"] },
        }),
      };
      const schemas = {
        list: listModelsOutput,
        generate: generateOutput,
        chat: chatOutput,
        embed: embedOutput,
      };
      for (const [key, result] of Object.entries(results)) {
        const parsed = z.object(schemas[key as keyof typeof schemas]).strict().safeParse(
          result.structuredContent,
        );
        assert.ok(parsed.success, `${key}: ${parsed.error}`);
      }
      assert.deepEqual(results.list.structuredContent, {
        models: [{ name: "m1", family: "llama", loaded: false }],
      });
      assert.deepEqual(results.chat.structuredContent, {
        model: "m1",
        message: {
          role: "assistant",
          content: "weather?",
          tool_calls: [{
            id: "call_1",
            function: { name: "get_weather", arguments: { city: "Oslo" } },
          }],
        },
        done_reason: "tool_calls",
        usage: { prompt_tokens: 3, completion_tokens: 1, total_ms: 1 },
      });
      assert.equal(resultText(results.chat), 'weather?\nTool call: get_weather({"city":"Oslo"})');
      assert.deepEqual(results.embed.structuredContent, {
        model: "m1",
        embeddings: [[2, 0.5, -1], [1, 0.5, -1]],
        dimensions: 3,
        usage: { prompt_tokens: 2 },
      });
    });
  });

  Deno.test(`[${era}] generate streams every delta as progress, in order, before the result`, async () => {
    await withServer(era, async ({ client, fake, wire }) => {
      fake.thinking = ["hmm", " ok"];
      fake.script = ["one", " two", " three"];
      const result = await client.callTool({
        name: "ai_fake_generate",
        arguments: { model: "m1", prompt: "ignored" },
        _meta: { progressToken: "p1" },
      });
      assert.equal(resultText(result), "one two three");
      const progress = progressOf(wire, "p1");
      assert.equal(progress.map((p) => p.message).join(""), "one two three");
      assert.equal(progress.map((p) => p._meta?.thinking ?? "").join(""), "hmm ok");
      assert.deepEqual(progress.map((p) => p.progress), progress.map((_, i) => i + 1));
      // The result is written after the last progress notification.
      const resultAt = wire.findIndex((m) =>
        "result" in m &&
        (m.result as { structuredContent?: { response?: string } }).structuredContent?.response ===
          "one two three"
      );
      const lastProgress = wire.findLastIndex((m) =>
        "method" in m && m.method === "notifications/progress"
      );
      assert.ok(resultAt > lastProgress, "the result follows the progress");
    });
  });

  Deno.test(`[${era}] invalid arguments are a tool error naming the argument (SEP-1303)`, async () => {
    await withServer(era, async ({ client, fake }) => {
      const wrongType = await client.callTool({
        name: "ai_fake_generate",
        arguments: { model: 5, prompt: "x" },
      });
      assert.equal(wrongType.isError, true);
      assert.match(resultText(wrongType), /model/);
      assert.match(resultText(wrongType), /expected string/);
      const unknown = await client.callTool({
        name: "ai_fake_generate",
        arguments: { model: "m1", prompt: "x", options: { temprature: 1 } },
      });
      assert.equal(unknown.isError, true);
      assert.match(resultText(unknown), /temprature/);
      // Nothing reached the provider.
      assert.deepEqual(fake.calls.filter((c) => c.method === "generate"), []);
      // An unknown tool stays a protocol error.
      await assert.rejects(
        client.callTool({ name: "ai_fake_nope", arguments: {} }),
        (e: Error) => e instanceof ProtocolError && e.code === ProtocolErrorCode.InvalidParams,
      );
      const ok = await client.callTool({ name: "ai_fake_list_models", arguments: {} });
      assert.equal(ok.isError, undefined);
    });
  });

  Deno.test(`[${era}] upstream failures are tool errors with the provider's advice`, async () => {
    await withServer(era, async ({ client, fake, logs }) => {
      fake.failNext = new RuneError('Model "x" is not installed: run "ollama pull x".');
      const failed = await client.callTool({
        name: "ai_fake_generate",
        arguments: { model: "x", prompt: "p" },
      });
      assert.equal(failed.isError, true);
      assert.equal(resultText(failed), 'Model "x" is not installed: run "ollama pull x".');
      assert.deepEqual(logs, [[
        "info",
        'ai_fake_generate failed: Model "x" is not installed: run "ollama pull x".',
      ]]);
      // A bug is reported to the client too, and logged with its stack.
      fake.failNext = new TypeError("boom");
      const crashed = await client.callTool({
        name: "ai_fake_embed",
        arguments: { model: "m1", input: "x" },
      });
      assert.equal(crashed.isError, true);
      assert.match(resultText(crashed), /boom/);
      assert.equal(logs[1][0], "error");
      assert.match(logs[1][1], /ai_fake_embed crashed: TypeError: boom\n\s+at /);
    });
  });

  Deno.test(`[${era}] cancelling a call aborts the provider call and sends no reply`, async () => {
    await withServer(era, async ({ client, fake, wire }) => {
      fake.endless = true;
      const controller = new AbortController();
      const call = client.callTool(
        { name: "ai_fake_generate", arguments: { model: "m1", prompt: "x" } },
        { signal: controller.signal },
      );
      await fake.waitForPulled(3);
      const signal = fake.calls.find((c) => c.method === "generate")!.signal!;
      assert.equal(signal.aborted, false);
      controller.abort("stop");
      await assert.rejects(call);
      await new Promise<void>((resolve) =>
        signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve())
      );
      fake.endless = false;
      const next = await client.callTool({
        name: "ai_fake_generate",
        arguments: { model: "m1", prompt: "still here" },
      });
      assert.equal(resultText(next), "still here");
      // The cancelled request got no reply: only the second call's result is on the wire.
      const replies = wire.filter((m) => "result" in m && JSON.stringify(m).includes("response"));
      assert.equal(replies.length, 1);
    });
  });

  Deno.test(`[${era}] a client that stops reading holds the provider back`, async () => {
    await withServer(era, async (h) => {
      h.fake.endless = true;
      let open!: () => void;
      const controller = new AbortController();
      const call = h.client.callTool(
        {
          name: "ai_fake_generate",
          arguments: { model: "m1", prompt: "x" },
          _meta: { progressToken: "slow" },
        },
        { signal: controller.signal },
      );
      await h.fake.waitForPulled(1);
      h.gate = new Promise((resolve) => (open = resolve));
      // While writes are stuck, the relay reads at most the pending bound (64 Ki characters)
      // before it waits for the client.
      const bound = Math.ceil(64 * 1024 / ENDLESS_CHUNK.length) + 2;
      const before = h.fake.pulled;
      await h.fake.waitForPulled(before + bound - 4);
      // Give the provider many turns of the event loop: none of them may be used to read on.
      for (let i = 0; i < 50; i++) await new Promise((resolve) => setTimeout(resolve, 0));
      const stalled = h.fake.pulled;
      assert.ok(stalled - before <= bound, `read ${stalled - before} chunks, bound ${bound}`);
      for (let i = 0; i < 50; i++) await new Promise((resolve) => setTimeout(resolve, 0));
      assert.equal(h.fake.pulled, stalled, "no more chunks are read while the client is stuck");
      open();
      h.gate = undefined;
      await h.fake.waitForPulled(stalled + 100);
      controller.abort("done");
      await assert.rejects(call);
    });
  });
}

Deno.test("tools/list carries ttlMs and cacheScope in the 2026-07-28 era only", async () => {
  for (const era of ["legacy", "modern"] as const) {
    await withServer(era, async ({ client, wire }) => {
      await client.listTools();
      const reply = wire.find((m) =>
        "result" in m && Array.isArray((m.result as { tools?: unknown }).tools)
      ) as { result: Record<string, unknown> };
      if (era === "modern") {
        assert.equal(reply.result.ttlMs, 60_000);
        assert.equal(reply.result.cacheScope, "private");
      } else {
        assert.equal("ttlMs" in reply.result, false);
        assert.equal("cacheScope" in reply.result, false);
      }
    });
  }
});

Deno.test("--tools all registers each provider's tools and the router set", async () => {
  const other = createFakeProvider({ id: "cloud", embeddings: false });
  await withServer("modern", async ({ client }) => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name), [
      "ai_fake_list_models",
      "ai_fake_generate",
      "ai_fake_chat",
      "ai_fake_embed",
      // A provider without embeddings gets no embed tool.
      "ai_cloud_list_models",
      "ai_cloud_generate",
      "ai_cloud_chat",
      "ai_list_models",
      "ai_generate",
      "ai_chat",
      "ai_embed",
      "ai_compare",
    ]);
  }, { tools: "all", others: [other] });
});

Deno.test("router tools route provider/model names and list every provider's models", async () => {
  const cloud = createFakeProvider({
    id: "cloud",
    models: [{ name: "org/model:v1" }],
    embeddings: false,
  });
  await withServer("legacy", async ({ client, fake }) => {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name), [
      "ai_list_models",
      "ai_generate",
      "ai_chat",
      "ai_embed",
      "ai_compare",
    ]);
    const listed = await client.callTool({ name: "ai_list_models", arguments: {} });
    assert.deepEqual(listed.structuredContent, {
      models: [
        { name: "fake/m1", provider: "fake", family: "llama", loaded: false },
        { name: "cloud/org/model:v1", provider: "cloud", loaded: false },
      ],
    });
    // Split at the first "/": the model name keeps its own slashes and colons.
    const generated = await client.callTool({
      name: "ai_generate",
      arguments: { model: "cloud/org/model:v1", prompt: "hi there" },
    });
    assert.equal(resultText(generated), "hi there");
    assert.deepEqual(
      cloud.calls.filter((c) => c.method === "generate").map((c) =>
        (c.request as { model: string }).model
      ),
      ["org/model:v1"],
    );
    assert.deepEqual(fake.calls.filter((c) => c.method === "generate"), []);
    const unknown = await client.callTool({
      name: "ai_chat",
      arguments: { model: "nope/x", messages: [{ role: "user", content: "hi" }] },
    });
    assert.equal(unknown.isError, true);
    assert.equal(
      resultText(unknown),
      'Unknown provider "nope" in "nope/x": the configured providers are fake, cloud.',
    );
    const noEmbeddings = await client.callTool({
      name: "ai_embed",
      arguments: { model: "cloud/org/model:v1", input: "x" },
    });
    assert.equal(noEmbeddings.isError, true);
    assert.equal(
      resultText(noEmbeddings),
      'Fake cloud (provider "cloud") has no embeddings: use one of fake.',
    );
    const embedded = await client.callTool({
      name: "ai_embed",
      arguments: { model: "fake/m1", input: ["ab"] },
    });
    assert.deepEqual((embedded.structuredContent as { embeddings: number[][] }).embeddings, [[
      2,
      0.5,
      -1,
    ]]);
  }, { tools: "router", others: [cloud] });
});

Deno.test("router listing reports a failing provider beside the others' models", async () => {
  const cloud = createFakeProvider({ id: "cloud" });
  cloud.failNext = new RuneError("Cannot reach cloud: check the network.");
  await withServer("modern", async ({ client }) => {
    const listed = await client.callTool({ name: "ai_list_models", arguments: {} });
    assert.equal(listed.isError, undefined);
    assert.deepEqual(listed.structuredContent, {
      models: [{ name: "fake/m1", provider: "fake", family: "llama", loaded: false }],
      errors: [{ provider: "cloud", error: "Cannot reach cloud: check the network." }],
    });
  }, { tools: "router", others: [cloud] });
});

Deno.test("ai_compare runs the models at once and returns each answer in the order asked", async () => {
  const events: string[] = [];
  const a = createFakeProvider({ id: "a", events });
  const b = createFakeProvider({ id: "b", events });
  const c = createFakeProvider({ id: "c", events });
  c.failNext = new RuneError("Model c/m is not installed: pull it first.");
  await withServer("modern", async ({ client, wire }) => {
    const result = await client.callTool({
      name: "ai_compare",
      arguments: { prompt: "one two three", models: ["a/m", "b/m", "c/m"], system: "terse" },
      _meta: { progressToken: "cmp" },
    });
    assert.equal(result.isError, undefined);
    const { results } = result.structuredContent as {
      results: Record<string, unknown>[];
    };
    assert.deepEqual(results.map((r) => [r.model, r.response, r.error]), [
      ["a/m", "one two three", undefined],
      ["b/m", "one two three", undefined],
      ["c/m", "", "Model c/m is not installed: pull it first."],
    ]);
    for (const r of results.slice(0, 2)) {
      assert.equal(typeof r.ttft_ms, "number");
      assert.ok((r.total_ms as number) >= (r.ttft_ms as number));
      assert.deepEqual(r.usage, { prompt_tokens: 3, completion_tokens: 3 });
    }
    // Concurrent: every model started before any of them finished.
    const firstEnd = events.findIndex((e) => e.startsWith("end:"));
    assert.deepEqual(events.slice(0, 3).sort(), ["start:a", "start:b", "start:c"]);
    assert.ok(firstEnd >= 3, events.join(" "));
    // The system prompt reached every model.
    assert.equal((a.calls[0].request as { system?: string }).system, "terse");
    // One strictly increasing progress sequence, each notification tagged with its model.
    const progress = progressOf(wire, "cmp") as {
      progress: number;
      message: string;
      _meta?: { model?: string };
    }[];
    assert.deepEqual(progress.map((p) => p.progress), progress.map((_, i) => i + 1));
    for (const model of ["a/m", "b/m"]) {
      assert.equal(
        progress.filter((p) => p._meta?.model === model).map((p) => p.message).join(""),
        "one two three",
      );
    }
    assert.equal(progress.filter((p) => p._meta?.model === "c/m").length, 0);
  }, { tools: "router", others: [a, b, c] });
});

Deno.test("ai_compare is an error only when every model failed, and cancel stops them all", async () => {
  const a = createFakeProvider({ id: "a" });
  const b = createFakeProvider({ id: "b" });
  await withServer("legacy", async ({ client }) => {
    const failed = await client.callTool({
      name: "ai_compare",
      arguments: { prompt: "x", models: ["nope/m", "zzz/m"] },
    });
    assert.equal(failed.isError, true);
    assert.match(resultText(failed), /Unknown provider "nope"/);
    const invalid = await client.callTool({
      name: "ai_compare",
      arguments: { prompt: "x", models: ["a/m"] },
    });
    assert.equal(invalid.isError, true, "one model is not a comparison");
    a.endless = true;
    b.endless = true;
    const controller = new AbortController();
    const call = client.callTool({
      name: "ai_compare",
      arguments: { prompt: "x", models: ["a/m", "b/m"] },
    }, { signal: controller.signal });
    await a.waitForPulled(2);
    await b.waitForPulled(2);
    controller.abort("stop");
    await assert.rejects(call);
    for (const fake of [a, b]) {
      const signal = fake.calls.at(-1)!.signal!;
      await new Promise<void>((resolve) =>
        signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve())
      );
    }
  }, { tools: "router", others: [a, b] });
});
