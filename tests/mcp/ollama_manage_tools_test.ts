/**
 * End-to-end tests of the model management tools: the real `src/main.ts
 * serve --stdio` process driven by the v1 SDK's `Client` against the Ollama
 * double, with and without `--allow-model-management` (or its
 * configuration key). The MCP layer alone is tested in
 * `tools/manage_tools_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { resultText, tapProgress } from "../mcp_calls.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import type { CallToolResult } from "../sdk_client.ts";
import { connectStdio, type StdioSession } from "../stdio_client.ts";

async function withSession(
  args: string[],
  fn: (session: StdioSession, double: OllamaDouble) => Promise<void>,
): Promise<void> {
  const double = await startOllamaDouble();
  const session = await connectStdio(double.host, { args });
  try {
    await fn(session, double);
  } finally {
    await session.close();
    await double.close();
  }
}

const MANAGE_TOOLS = ["ai_ollama_delete", "ai_ollama_ps", "ai_ollama_pull", "ai_ollama_show"];

function manageTools(names: string[]): string[] {
  return names.filter((name) => MANAGE_TOOLS.includes(name)).sort();
}

Deno.test("without --allow-model-management the daemon offers no pull or delete, and refuses a call", async () => {
  await withSession([], async ({ client }, double) => {
    const { tools } = await client.listTools();
    assert.deepEqual(manageTools(tools.map((t) => t.name)), ["ai_ollama_ps", "ai_ollama_show"]);
    await assert.rejects(
      client.callTool({ name: "ai_ollama_delete", arguments: { model: "llava" } }),
      /Tool ai_ollama_delete not found/,
    );
    assert.ok(double.installed.includes("llava:latest"));
    assert.equal(double.requests.filter((r) => r.path === "/api/delete").length, 0);
  });
});

Deno.test("with --allow-model-management a pull streams byte progress to the end and installs the model", async () => {
  await withSession(["--allow-model-management"], async ({ client }, double) => {
    const { tools } = await client.listTools();
    assert.deepEqual(manageTools(tools.map((t) => t.name)), MANAGE_TOOLS);
    // Read on the wire: the SDK client's onprogress drops what shares a read with the result.
    const wire = tapProgress(client);
    const result = await client.callTool(
      { name: "ai_ollama_pull", arguments: { model: "smollm2:135m" } },
      undefined,
      { onprogress: () => {} },
    ) as CallToolResult;
    const progress = wire.received.map(({ progressToken: _, ...rest }) => rest);
    assert.equal(result.isError, undefined, resultText(result));
    const { total } = result.structuredContent as { total: number };
    assert.equal(total, 270890961);
    assert.deepEqual(progress[0], { progress: 0, message: "pulling manifest" });
    assert.deepEqual(progress.at(-1), {
      progress: total,
      total,
      message: progress.at(-1)?.message,
    });
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i].progress > progress[i - 1].progress, "strictly increasing");
      assert.ok(progress[i].progress <= (progress[i].total ?? 0), "never past the total");
    }
    assert.ok(double.installed.includes("smollm2:135m"));
    const listed = await client.callTool({
      name: "ai_ollama_list_models",
      arguments: {},
    }) as CallToolResult;
    assert.match(resultText(listed), /smollm2:135m/);
  });
});

Deno.test("a pull error in the middle reaches the client as a tool error with Ollama's message", async () => {
  await withSession(["--allow-model-management"], async ({ client }, double) => {
    double.failNext({ kind: "error-in-stream", afterTokens: 3, error: "unexpected EOF" });
    const result = await client.callTool({
      name: "ai_ollama_pull",
      arguments: { model: "smollm2:135m" },
    }) as CallToolResult;
    assert.equal(result.isError, true);
    assert.equal(
      resultText(result),
      `Ollama at ${double.host} reported an error in the middle of pulling "smollm2:135m": unexpected EOF (check the Ollama server log; pulling again resumes the download).`,
    );
  });
});

Deno.test("cancelling a pull closes the pull's upstream stream", async () => {
  await withSession(["--allow-model-management"], async ({ client }, double) => {
    double.failNext({ kind: "stall", afterTokens: 3 });
    const controller = new AbortController();
    const call = client.callTool(
      { name: "ai_ollama_pull", arguments: { model: "smollm2:135m" } },
      undefined,
      { signal: controller.signal, onprogress: () => {} },
    );
    await double.waitForOpenStreams(1);
    controller.abort("cancelled by the test");
    await assert.rejects(call);
    await double.waitForOpenStreams(0);
    assert.ok(!double.installed.includes("smollm2:135m"));
  });
});

Deno.test("ai_ollama_delete deletes a model, and a missing one is a tool error", async () => {
  await withSession(["--allow-model-management"], async ({ client }, double) => {
    const deleted = await client.callTool({
      name: "ai_ollama_delete",
      arguments: { model: "llava" },
    }) as CallToolResult;
    assert.deepEqual(deleted.structuredContent, { model: "llava", deleted: true });
    assert.ok(!double.installed.includes("llava:latest"));
    const missing = await client.callTool({
      name: "ai_ollama_delete",
      arguments: { model: "llava" },
    }) as CallToolResult;
    assert.equal(missing.isError, true);
    assert.equal(
      resultText(missing),
      `Model "llava" is not installed on Ollama at ${double.host}, so there is nothing to delete: "rune ai list" shows the installed models.`,
    );
  });
});

Deno.test("ai_ollama_show and ai_ollama_ps answer from Ollama", async () => {
  await withSession([], async ({ client }) => {
    const shown = await client.callTool({
      name: "ai_ollama_show",
      arguments: { model: "qwen3" },
    }) as CallToolResult;
    const card = shown.structuredContent as Record<string, unknown>;
    assert.deepEqual(card.parameters, {
      stop: ["<|im_start|>", "<|im_end|>"],
      temperature: 0.6,
      top_k: 20,
      top_p: 0.95,
    });
    assert.deepEqual(card.capabilities, ["completion", "streaming", "tools", "thinking"]);
    assert.equal(
      card.license_summary,
      "qwen3 license: this model is served by the Rune test double.",
    );
    await client.callTool({
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "x", keep_alive: "10m" },
    });
    const ps = await client.callTool({ name: "ai_ollama_ps", arguments: {} }) as CallToolResult;
    const { models } = ps.structuredContent as { models: Record<string, unknown>[] };
    assert.deepEqual(models.map((m) => [m.name, m.size_vram, m.context_length]), [
      ["llama3.2:latest", 2019393189, 4096],
    ]);
  });
});

Deno.test('"allow_model_management": true in the configuration offers pull and delete too', async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(config, JSON.stringify({ allow_model_management: true }));
    await withSession(["--config", config], async ({ client }) => {
      const { tools } = await client.listTools();
      assert.deepEqual(manageTools(tools.map((t) => t.name)), MANAGE_TOOLS);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
