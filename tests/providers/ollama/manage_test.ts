/**
 * Ollama's model management against the Ollama double over real HTTP:
 * deleting (and deleting what is not there), the loaded models, and one
 * model's card.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ModelNotFoundError } from "../../../src/providers/errors.ts";
import { createOllamaProvider } from "../../../src/providers/ollama/mod.ts";
import { type OllamaDouble, startOllamaDouble } from "../../ollama_double.ts";

async function withDouble(fn: (double: OllamaDouble) => Promise<void>): Promise<void> {
  const double = await startOllamaDouble();
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

Deno.test("delete() sends DELETE /api/delete and the model is gone, from a cached list too", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url, cacheMs: 60_000 });
    assert.ok((await ollama.listModels()).some((m) => m.name === "llava:latest"));
    await ollama.modelManagement!.delete("llava");
    const request = double.requests.find((r) => r.path === "/api/delete");
    assert.deepEqual(request, { method: "DELETE", path: "/api/delete", body: { model: "llava" } });
    assert.deepEqual(double.installed, ["llama3.2:latest", "qwen3:latest", "all-minilm:latest"]);
    assert.deepEqual((await ollama.listModels()).map((m) => m.name).sort(), [
      "all-minilm:latest",
      "llama3.2:latest",
      "qwen3:latest",
    ]);
  });
});

Deno.test("delete() of a model that is not installed says there is nothing to delete", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url });
    await assert.rejects(
      ollama.modelManagement!.delete("nosuch"),
      (error: Error) =>
        error instanceof ModelNotFoundError && error.model === "nosuch" &&
        error.message ===
          `Model "nosuch" is not installed on Ollama at ${double.host}, so there is nothing to delete: "rune ai list" shows the installed models.` &&
        (error.cause as ModelNotFoundError).cause instanceof Error &&
        ((error.cause as ModelNotFoundError).cause as Error).message === "model 'nosuch' not found",
    );
  });
});

Deno.test("running() lists the loaded models with size, VRAM, context and expiry", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url });
    assert.deepEqual(await ollama.modelManagement!.running(), []);
    await (await fetch(`${double.url}/api/generate`, {
      method: "POST",
      body: JSON.stringify({ model: "llama3.2", prompt: "x", stream: false }),
    })).body?.cancel();
    const [loaded, ...rest] = await ollama.modelManagement!.running();
    assert.deepEqual(rest, []);
    assert.match(loaded.expiresAt ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d)$/);
    assert.deepEqual({ ...loaded, expiresAt: "" }, {
      name: "llama3.2:latest",
      size: 2019393189,
      sizeVram: 2019393189,
      expiresAt: "",
      contextLength: 4096,
      family: "llama",
      parameterSize: "3.2B",
      quantization: "Q4_K_M",
    });
  });
});

Deno.test("inspect() returns details, parsed default parameters, template and license", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const card = await ollama.modelManagement!.inspect("qwen3");
    assert.equal(card.name, "qwen3:latest");
    assert.equal(card.family, "qwen3");
    assert.equal(card.contextLength, 131072);
    assert.deepEqual(card.capabilities, {
      completion: true,
      streaming: true,
      vision: false,
      tools: true,
      embeddings: false,
      thinking: true,
    });
    assert.deepEqual(card.parameters, {
      stop: ["<|im_start|>", "<|im_end|>"],
      temperature: 0.6,
      top_k: 20,
      top_p: 0.95,
    });
    assert.match(card.template ?? "", /^\{\{- if \.Messages \}\}/);
    assert.equal(card.license, "qwen3 license: this model is served by the Rune test double.");
    const embedder = await ollama.modelManagement!.inspect("all-minilm");
    assert.deepEqual(embedder.parameters, {});
  });
});

Deno.test("inspect() of a model that is not installed is ModelNotFoundError", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url });
    await assert.rejects(
      ollama.modelManagement!.inspect("nosuch"),
      (error: Error) => error instanceof ModelNotFoundError && error.model === "nosuch",
    );
  });
});
