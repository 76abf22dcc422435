/**
 * The model management tools in process, apart from any wire format: the
 * server factory with a fake provider that manages models, over the SDK's
 * in-memory transport pair in both protocol eras. What the server writes is
 * recorded, so progress is asserted on the wire.
 *
 * The fake yields each pull step on a macrotask while the in-memory
 * transport delivers on microtasks, so without a gate every step that moves
 * `progress` is written before the next step arrives.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client, type JSONRPCMessage } from "@modelcontextprotocol/client";
import { InMemoryTransport } from "@modelcontextprotocol/server";
import { serveConnection } from "../../../src/mcp/connection.ts";
import { createServerFactory } from "../../../src/mcp/server.ts";
import { createMemoryTaskStore } from "../../../src/mcp/tasks/store.ts";
import { licenseSummary, processorOf } from "../../../src/mcp/tools/manage_tools.ts";
import { UpstreamError } from "../../../src/providers/errors.ts";
import type { PullProgress } from "../../../src/providers/types.ts";
import { createFakeProvider, type FakeProvider } from "../../fake_provider.ts";
import { resultText } from "../../mcp_calls.ts";

type Era = "legacy" | "modern";

interface Harness {
  client: Client;
  fake: FakeProvider;
  /** Every message the server wrote, in order. */
  wire: JSONRPCMessage[];
  /** While set, the server's writes wait for it (a client that stops reading). */
  gate?: Promise<void>;
}

async function withServer(
  era: Era,
  fn: (h: Harness) => Promise<void>,
  options: { allow?: boolean; tasks?: boolean } = {},
): Promise<void> {
  const fake = createFakeProvider({ id: "fake", management: true });
  const [clientEnd, serverEnd] = InMemoryTransport.createLinkedPair();
  const harness = { fake, wire: [] } as unknown as Harness;
  const send = serverEnd.send.bind(serverEnd);
  serverEnd.send = async (message, sendOptions) => {
    await harness.gate;
    harness.wire.push(message);
    return await send(message, sendOptions);
  };
  const connection = serveConnection(
    serverEnd,
    createServerFactory({
      providers: [fake],
      tools: "per-provider",
      allowModelManagement: options.allow ?? true,
      ...(options.tasks && { tasks: createMemoryTaskStore() }),
    }),
  );
  harness.client = new Client(
    { name: "rune-test", version: "1.0.0" },
    era === "modern" ? { versionNegotiation: { mode: { pin: "2026-07-28" } } } : {},
  );
  await harness.client.connect(clientEnd);
  try {
    await fn(harness);
  } finally {
    await harness.client.close();
    await connection.close();
  }
}

interface ProgressParams {
  progress: number;
  total?: number;
  message?: string;
}

/** Progress notifications the server wrote for `token`, in wire order, without the token. */
function progressOf(wire: JSONRPCMessage[], token: string): ProgressParams[] {
  return wire.flatMap((m) => {
    if (!("method" in m) || m.method !== "notifications/progress") return [];
    const { progressToken, ...rest } = m.params as unknown as ProgressParams & {
      progressToken?: unknown;
    };
    return progressToken === token ? [rest] : [];
  });
}

function step(status: string, completed: number, total: number, done = false): PullProgress {
  return { status, completed, total, done };
}

/**
 * What a provider may hand over: a step that does not move, a step back
 * (the Ollama provider never yields one; the tool drops it anyway), a total
 * that grows as a second layer is announced, and status-only steps at the
 * end.
 */
const WOBBLY_PULL: PullProgress[] = [
  step("pulling manifest", 0, 0),
  step("pulling aaaaaaaaaaaa", 0, 1000),
  step("pulling aaaaaaaaaaaa", 400, 1000),
  step("pulling aaaaaaaaaaaa", 400, 1000),
  step("pulling aaaaaaaaaaaa", 300, 1000),
  step("pulling aaaaaaaaaaaa", 1000, 1000),
  step("pulling bbbbbbbbbbbb", 1000, 1500),
  step("pulling bbbbbbbbbbbb", 1500, 1500),
  step("verifying sha256 digest", 1500, 1500),
  step("writing manifest", 1500, 1500),
  step("success", 1500, 1500, true),
];

for (const era of ["legacy", "modern"] as const) {
  Deno.test(`[${era}] without --allow-model-management, show and ps are listed but not pull or delete`, async () => {
    await withServer(era, async ({ client }) => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name), [
        "ai_fake_list_models",
        "ai_fake_generate",
        "ai_fake_chat",
        "ai_fake_embed",
        "ai_compare",
        "ai_fake_show",
        "ai_fake_ps",
      ]);
      const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
      assert.deepEqual(byName.ai_fake_show.annotations, {
        readOnlyHint: true,
        idempotentHint: true,
        openWorldHint: false,
      });
      assert.deepEqual(byName.ai_fake_ps.annotations, { readOnlyHint: true, openWorldHint: false });
    }, { allow: false });
  });

  Deno.test(`[${era}] with --allow-model-management, pull and delete are listed, delete annotated destructive`, async () => {
    await withServer(era, async ({ client }) => {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name), [
        "ai_fake_list_models",
        "ai_fake_generate",
        "ai_fake_chat",
        "ai_fake_embed",
        "ai_compare",
        "ai_fake_show",
        "ai_fake_ps",
        "ai_fake_pull",
        "ai_fake_delete",
      ]);
      const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
      assert.deepEqual(byName.ai_fake_delete.annotations, {
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: true,
        openWorldHint: false,
      });
      assert.deepEqual(byName.ai_fake_pull.annotations, {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: true,
      });
      for (const name of ["ai_fake_show", "ai_fake_pull", "ai_fake_delete"]) {
        assert.deepEqual(byName[name].inputSchema.required, ["model"], name);
      }
      assert.deepEqual(byName.ai_fake_pull.outputSchema?.required, [
        "model",
        "status",
        "total",
        "duration_ms",
      ]);
      assert.deepEqual(byName.ai_fake_delete.outputSchema?.required, ["model", "deleted"]);
    });
  });

  Deno.test(`[${era}] ai_fake_pull forwards only progress that moves forward, and ends at the total`, async () => {
    await withServer(era, async ({ client, fake, wire }) => {
      fake.pullScript = WOBBLY_PULL;
      const result = await client.callTool({
        name: "ai_fake_pull",
        arguments: { model: "m2" },
        _meta: { progressToken: "pull-1" },
      });
      assert.equal(result.isError, undefined, resultText(result));
      assert.deepEqual(progressOf(wire, "pull-1"), [
        { progress: 0, message: "pulling manifest" },
        { progress: 400, total: 1000, message: "pulling aaaaaaaaaaaa" },
        { progress: 1000, total: 1000, message: "pulling aaaaaaaaaaaa" },
        { progress: 1500, total: 1500, message: "pulling bbbbbbbbbbbb" },
      ]);
      const structured = result.structuredContent as Record<string, unknown>;
      assert.equal(typeof structured.duration_ms, "number");
      assert.deepEqual({ ...structured, duration_ms: 0 }, {
        model: "m2",
        status: "success",
        total: 1500,
        duration_ms: 0,
      });
      assert.match(resultText(result), /^Pulled m2 into Fake fake \(1\.5 KB\) in \d+\.\d s\.$/);
      assert.ok(fake.installed.has("m2"));
    });
  });

  Deno.test(`[${era}] a client that stops reading gets the latest progress, not a backlog, and the pull runs on`, async () => {
    await withServer(era, async (h) => {
      h.fake.pullScript = WOBBLY_PULL;
      let open!: () => void;
      h.gate = new Promise((resolve) => (open = resolve));
      const ended = h.fake.waitForPullEnd();
      const call = h.client.callTool({
        name: "ai_fake_pull",
        arguments: { model: "m2" },
        _meta: { progressToken: "pull-2" },
      });
      // The provider is read to the end although the first notification is still unwritten.
      await ended;
      open();
      const result = await call;
      assert.equal(result.isError, undefined, resultText(result));
      assert.deepEqual(progressOf(h.wire, "pull-2"), [
        { progress: 0, message: "pulling manifest" },
        { progress: 1500, total: 1500, message: "pulling bbbbbbbbbbbb" },
      ]);
    });
  });

  Deno.test(`[${era}] a pull error in the middle is a tool error with the provider's message`, async () => {
    await withServer(era, async ({ client, fake, wire }) => {
      fake.pullScript = WOBBLY_PULL.slice(0, 3);
      fake.pullError = new UpstreamError(
        200,
        'Ollama at 127.0.0.1:11434 reported an error in the middle of pulling "m2": write /root/.ollama/models/blobs: no space left on device (check the Ollama server log; pulling again resumes the download).',
      );
      const result = await client.callTool({
        name: "ai_fake_pull",
        arguments: { model: "m2" },
        _meta: { progressToken: "pull-3" },
      });
      assert.equal(result.isError, true);
      assert.equal(
        resultText(result),
        'Ollama at 127.0.0.1:11434 reported an error in the middle of pulling "m2": write /root/.ollama/models/blobs: no space left on device (check the Ollama server log; pulling again resumes the download).',
      );
      assert.equal(result.structuredContent, undefined);
      assert.deepEqual(progressOf(wire, "pull-3"), [
        { progress: 0, message: "pulling manifest" },
        { progress: 400, total: 1000, message: "pulling aaaaaaaaaaaa" },
      ]);
      assert.ok(!fake.installed.has("m2"));
    });
  });

  Deno.test(`[${era}] a pull that ends without success is a tool error`, async () => {
    await withServer(era, async ({ client, fake }) => {
      fake.pullScript = WOBBLY_PULL.slice(0, 6);
      const result = await client.callTool({ name: "ai_fake_pull", arguments: { model: "m2" } });
      assert.equal(result.isError, true);
      assert.equal(
        resultText(result),
        'Fake fake ended the pull of "m2" without reporting success: pull it again.',
      );
    });
  });

  Deno.test(`[${era}] cancelling a pull aborts the provider's pull`, async () => {
    await withServer(era, async ({ client, fake }) => {
      fake.endlessPull = true;
      const controller = new AbortController();
      const ended = fake.waitForPullEnd();
      const call = client.callTool(
        { name: "ai_fake_pull", arguments: { model: "m2" } },
        { signal: controller.signal, onprogress: () => {} },
      );
      await fake.waitForPull();
      controller.abort("cancelled by the test");
      await assert.rejects(call);
      await ended;
      const pull = fake.calls.find((c) => c.method === "pull");
      assert.equal(pull?.signal?.aborted, true);
      assert.ok(!fake.installed.has("m2"));
    });
  });

  Deno.test(`[${era}] ai_fake_delete deletes an installed model and says so`, async () => {
    await withServer(era, async ({ client, fake }) => {
      const result = await client.callTool({ name: "ai_fake_delete", arguments: { model: "m1" } });
      assert.equal(result.isError, undefined, resultText(result));
      assert.deepEqual(result.structuredContent, { model: "m1", deleted: true });
      assert.equal(resultText(result), "Deleted m1 from Fake fake.");
      assert.deepEqual([...fake.installed], []);
    });
  });

  Deno.test(`[${era}] deleting a model that is not installed is a tool error that names it`, async () => {
    await withServer(era, async ({ client }) => {
      const result = await client.callTool({
        name: "ai_fake_delete",
        arguments: { model: "nosuch" },
      });
      assert.equal(result.isError, true);
      assert.equal(resultText(result), 'Model "nosuch" is not installed on Fake fake.');
    });
  });

  Deno.test(`[${era}] ai_fake_show returns details, capabilities, parameters, template and a license summary`, async () => {
    await withServer(era, async ({ client }) => {
      const result = await client.callTool({ name: "ai_fake_show", arguments: { model: "m1" } });
      assert.equal(result.isError, undefined, resultText(result));
      assert.deepEqual(result.structuredContent, {
        name: "m1",
        family: "llama",
        parameter_size: "3.2B",
        quantization: "Q4_K_M",
        context_length: 131072,
        capabilities: ["completion", "streaming", "tools"],
        parameters: { stop: ["<|eot_id|>"], temperature: 0.6 },
        template: "{{ .Prompt }}",
        license_summary:
          "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT Llama 3.2 Version Release Date: September 25, 2024",
        license_length: 102,
      });
      assert.equal(
        resultText(result),
        [
          "m1",
          "family: llama",
          "parameters: 3.2B",
          "quantization: Q4_K_M",
          "context length: 131072",
          "capabilities: completion, streaming, tools",
          "default parameters:",
          '  stop ["<|eot_id|>"]',
          "  temperature 0.6",
          "license: LLAMA 3.2 COMMUNITY LICENSE AGREEMENT Llama 3.2 Version Release Date: September 25, 2024 (102 characters)",
          "template:",
          "{{ .Prompt }}",
        ].join("\n"),
      );
    });
  });

  Deno.test(`[${era}] ai_fake_ps lists the loaded models with VRAM and expiry`, async () => {
    await withServer(era, async ({ client, fake }) => {
      const empty = await client.callTool({ name: "ai_fake_ps", arguments: {} });
      assert.deepEqual(empty.structuredContent, { models: [] });
      assert.equal(resultText(empty), "No model is loaded in Fake fake right now.");
      fake.loaded = [
        {
          name: "llama3.2:latest",
          size: 3_400_000_000,
          sizeVram: 3_400_000_000,
          expiresAt: "2025-10-14T09:36:07.123456789+02:00",
          contextLength: 4096,
          family: "llama",
          parameterSize: "3.2B",
          quantization: "Q4_K_M",
        },
        { name: "qwen3:latest", size: 6_000_000_000, sizeVram: 3_000_000_000 },
      ];
      const result = await client.callTool({ name: "ai_fake_ps", arguments: {} });
      assert.deepEqual(result.structuredContent, {
        models: [
          {
            name: "llama3.2:latest",
            size: 3_400_000_000,
            size_vram: 3_400_000_000,
            expires_at: "2025-10-14T09:36:07.123456789+02:00",
            context_length: 4096,
            family: "llama",
            parameter_size: "3.2B",
            quantization: "Q4_K_M",
          },
          { name: "qwen3:latest", size: 6_000_000_000, size_vram: 3_000_000_000 },
        ],
      });
      assert.equal(
        resultText(result),
        "llama3.2:latest  3.4 GB  100% GPU  context 4096  until 2025-10-14T09:36:07.123456789+02:00\n" +
          "qwen3:latest  6.0 GB  50%/50% CPU/GPU",
      );
    });
  });
}

Deno.test("ai_fake_pull is task-capable where tasks are offered; show, ps and delete are not", async () => {
  await withServer("legacy", async ({ client }) => {
    const { tools } = await client.listTools();
    const execution = Object.fromEntries(
      tools.map((t) => [t.name, (t as { execution?: unknown }).execution]),
    );
    assert.deepEqual(execution.ai_fake_pull, { taskSupport: "optional" });
    for (const name of ["ai_fake_show", "ai_fake_ps", "ai_fake_delete"]) {
      assert.equal(execution[name], undefined, name);
    }
  }, { tasks: true });
});

Deno.test("a pull without a progress token sends no notifications and returns the result", async () => {
  await withServer("legacy", async ({ client, fake, wire }) => {
    fake.pullScript = WOBBLY_PULL;
    const result = await client.callTool({ name: "ai_fake_pull", arguments: { model: "m2" } });
    assert.equal((result.structuredContent as { total: number }).total, 1500);
    assert.equal(
      wire.filter((m) => "method" in m && m.method === "notifications/progress").length,
      0,
    );
  });
});

Deno.test("the license summary is the first lines up to 40 characters, at most 200", () => {
  assert.equal(
    licenseSummary(
      "MIT License\n\nCopyright (c) Meta Platforms, Inc. and affiliates.\n\nPermission is hereby",
    ),
    "MIT License Copyright (c) Meta Platforms, Inc. and affiliates.",
  );
  assert.equal(
    licenseSummary(
      "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n\nTERMS",
    ),
    "Apache License Version 2.0, January 2004",
  );
  assert.equal(licenseSummary("a\nb\nc\nd"), "a b c");
  assert.equal(licenseSummary(""), "");
  const long = licenseSummary("x".repeat(500));
  assert.equal(long.length, 200);
  assert.ok(long.endsWith("…"));
});

Deno.test("where a loaded model runs reads as ollama ps says it", () => {
  assert.equal(processorOf(100, 100), "100% GPU");
  assert.equal(processorOf(100, 0), "100% CPU");
  assert.equal(processorOf(100, 52), "48%/52% CPU/GPU");
  assert.equal(processorOf(undefined, 5), "");
});
