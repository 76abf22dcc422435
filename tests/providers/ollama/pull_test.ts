/**
 * Pulling a model from Ollama: the tally of Ollama's per-layer figures
 * into whole-pull figures that never go backwards, and the streamed
 * `/api/pull` against the Ollama double over real HTTP (progress, errors in
 * the middle, deadlines, cancellation).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ConnectionDroppedError,
  InvalidResponseError,
  ModelNotFoundError,
  ProviderTimeoutError,
  UpstreamError,
} from "../../../src/providers/errors.ts";
import { createOllamaProvider } from "../../../src/providers/ollama/mod.ts";
import { MAX_PULL_LAYERS, PullTally } from "../../../src/providers/ollama/pull.ts";
import type { PullProgress } from "../../../src/providers/types.ts";
import {
  DEFAULT_MODELS,
  LIBRARY_MODELS,
  type OllamaDouble,
  pullLayers,
  startOllamaDouble,
} from "../../ollama_double.ts";

async function withDouble(
  fn: (double: OllamaDouble) => Promise<void>,
  options: { tokenDelayMs?: number } = {},
): Promise<void> {
  const double = await startOllamaDouble(options);
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

/** Runs a pull to its end; returns its steps, and the error it ended with, if any. */
async function pullAll(
  steps: AsyncIterable<PullProgress>,
): Promise<{ steps: [string, number, number, boolean][]; error?: unknown }> {
  const seen: [string, number, number, boolean][] = [];
  try {
    for await (const s of steps) seen.push([s.status, s.completed, s.total, s.done]);
    return { steps: seen };
  } catch (error) {
    return { steps: seen, error };
  }
}

function tally(lines: { digest?: string; total?: number; completed?: number }[]): number[][] {
  const t = new PullTally();
  return lines.map((line) => {
    t.add(line);
    return [t.completed, t.total];
  });
}

Deno.test("a repeated value does not move the tally", () => {
  assert.deepEqual(
    tally([
      { digest: "sha256:a", total: 1000, completed: 400 },
      { digest: "sha256:a", total: 1000, completed: 400 },
    ]),
    [[400, 1000], [400, 1000]],
  );
});

Deno.test("a value that goes backwards (a restarted part) keeps the most reported", () => {
  assert.deepEqual(
    tally([
      { digest: "sha256:a", total: 1000, completed: 500 },
      { digest: "sha256:a", total: 1000, completed: 300 },
      { digest: "sha256:a", total: 1000, completed: 600 },
    ]),
    [[500, 1000], [500, 1000], [600, 1000]],
  );
});

Deno.test("each layer restarts at zero; the tally adds them, finishing a layer when the next starts", () => {
  assert.deepEqual(
    tally([
      { digest: "sha256:a", total: 1000 },
      { digest: "sha256:a", total: 1000, completed: 900 },
      { digest: "sha256:b", total: 2000 },
      { digest: "sha256:b", total: 2000, completed: 500 },
    ]),
    [[0, 1000], [900, 1000], [1000, 3000], [1500, 3000]],
  );
});

Deno.test("a line without a layer (verifying, writing, success) finishes every layer", () => {
  assert.deepEqual(
    tally([
      {},
      { digest: "sha256:a", total: 1000, completed: 100 },
      { digest: "sha256:b", total: 10, completed: 2 },
      {},
    ]),
    [[0, 0], [100, 1000], [1002, 1010], [1010, 1010]],
  );
});

Deno.test("completed past the total is capped, and a total never shrinks", () => {
  assert.deepEqual(
    tally([
      { digest: "sha256:a", total: 1000, completed: 1500 },
      { digest: "sha256:a", total: 800, completed: 900 },
      { digest: "sha256:b", completed: 50 },
    ]),
    [[1000, 1000], [1000, 1000], [1000, 1000]],
  );
});

Deno.test(`more than ${MAX_PULL_LAYERS} layers in one pull is refused`, () => {
  const t = new PullTally();
  for (let i = 0; i < MAX_PULL_LAYERS; i++) t.add({ digest: `sha256:${i}`, total: 1 });
  assert.throws(
    () => t.add({ digest: "sha256:one-more", total: 1 }),
    (error: Error) =>
      error instanceof InvalidResponseError &&
      error.message ===
        `Ollama announced more than ${MAX_PULL_LAYERS} layers in one pull: is it really Ollama?`,
  );
  assert.equal(t.completed, MAX_PULL_LAYERS);
});

Deno.test("pulling a new model reports Ollama's figures summed, never backwards, ending at the total", async () => {
  await withDouble(async (double) => {
    const model = LIBRARY_MODELS[0];
    const [weights, template, , params, config] = pullLayers(model);
    const w = weights.size;
    const digest = (layer: { digest: string }) => `pulling ${layer.digest.slice(7, 19)}`;
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.equal(error, undefined);
    const tick = (f: number) => Math.floor(w * f);
    const all = w + template.size + params.size + config.size;
    assert.deepEqual(steps, [
      ["pulling manifest", 0, 0, false],
      [digest(weights), 0, w, false],
      [digest(weights), tick(0.25), w, false],
      [digest(weights), tick(0.25), w, false],
      [digest(weights), tick(0.5), w, false],
      // Ollama's 0.4 (a part gave its bytes back) is not a step back.
      [digest(weights), tick(0.5), w, false],
      [digest(weights), tick(0.75), w, false],
      [digest(weights), tick(0.9), w, false],
      // The weights finished between two ticks: the next layer shows it.
      [digest(template), w + template.size, w + template.size, false],
      [digest(params), w + template.size + params.size, w + template.size + params.size, false],
      [digest(config), all, all, false],
      ["verifying sha256 digest", all, all, false],
      ["writing manifest", all, all, false],
      ["success", all, all, true],
    ]);
    assert.deepEqual(double.requests.find((r) => r.path === "/api/pull")?.body, {
      model: "smollm2:135m",
      stream: true,
    });
    assert.ok(double.installed.includes("smollm2:135m"));
  });
});

Deno.test("pulling an installed model ends at its whole size (every layer a cache hit)", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("llama3.2"));
    assert.equal(error, undefined);
    const size = DEFAULT_MODELS[0].size!;
    assert.deepEqual(steps.at(-1), ["success", size, size, true]);
    const completed = steps.map(([, c]) => c);
    assert.deepEqual(completed, [...completed].sort((a, b) => a - b), "never backwards");
  });
});

Deno.test("the models listed after a pull include the new one, cache or not", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url, cacheMs: 60_000 });
    assert.ok(!(await ollama.listModels()).some((m) => m.name === "smollm2:135m"));
    await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.ok((await ollama.listModels()).some((m) => m.name === "smollm2:135m"));
  });
});

Deno.test("a model the library does not have fails after 'pulling manifest' and says where to look", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("nosuch:7b"));
    assert.deepEqual(steps, [["pulling manifest", 0, 0, false]]);
    assert.ok(error instanceof ModelNotFoundError);
    assert.equal(error.model, "nosuch:7b");
    assert.equal(
      error.message,
      `Ollama's library has no model "nosuch:7b" (Ollama at ${double.host} answered: pull model manifest: file does not exist): check the name and tag at https://ollama.com/library.`,
    );
  });
});

Deno.test("an error line in the middle of a pull ends it with Ollama's message", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "error-in-stream",
      afterTokens: 4,
      error:
        "write /root/.ollama/models/blobs/sha256-20231ac07b4c-partial: no space left on device",
    });
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.equal(steps.length, 4);
    assert.ok(error instanceof UpstreamError);
    assert.equal(error.status, 200);
    assert.equal(
      error.message,
      `Ollama at ${double.host} reported an error in the middle of pulling "smollm2:135m": write /root/.ollama/models/blobs/sha256-20231ac07b4c-partial: no space left on device (check the Ollama server log; pulling again resumes the download).`,
    );
    assert.ok(!double.installed.includes("smollm2:135m"));
  });
});

Deno.test("Ollama unable to reach its registry says to check that machine's connection", async () => {
  await withDouble(async (double) => {
    const message =
      'pull model manifest: Get "https://registry.ollama.ai/v2/library/smollm2/manifests/135m": dial tcp: lookup registry.ollama.ai: no such host';
    double.failNext({ kind: "error-in-stream", afterTokens: 1, error: message });
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const { error } = await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.ok(error instanceof UpstreamError);
    assert.equal(
      error.message,
      `Ollama at ${double.host} could not reach its model registry to pull "smollm2:135m" (${message}): check that the machine running Ollama is online (and its HTTPS_PROXY, if it needs one), then pull again.`,
    );
  });
});

Deno.test("an invalid model name is refused with Ollama's 400 and what a name looks like", async () => {
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("no spaces!"));
    assert.deepEqual(steps, []);
    assert.ok(error instanceof UpstreamError);
    assert.equal(error.status, 400);
    assert.equal(
      error.message,
      `Ollama at ${double.host} refused to pull "no spaces!" (HTTP 400: invalid model name): a model name looks like "llama3.2", "llama3.2:1b" or "namespace/model:tag".`,
    );
  });
});

Deno.test("a connection dropped in the middle of a pull says so and that pulling again resumes", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "drop", afterTokens: 3 });
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.equal(steps.length, 3);
    assert.ok(error instanceof ConnectionDroppedError);
    assert.match(
      error.message,
      new RegExp(
        `^Ollama at ${double.host} closed the connection in the middle of pulling "smollm2:135m" \\(at "pulling [0-9a-f]{12}"\\): it may have crashed; check the Ollama server log and pull again \\(the download resumes where it stopped\\)\\.$`,
      ),
    );
  });
});

Deno.test("a pull whose stream ends without success is an error, not a success", async () => {
  await withDouble(async (double) => {
    // A proxy that cuts the body cleanly: the lines stop, the stream ends.
    const cut: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const text = (await response.text()).split("\n").slice(0, 2).join("\n") + "\n";
      return new Response(text, { status: response.status, headers: response.headers });
    };
    const ollama = createOllamaProvider({ baseUrl: double.url, fetch: cut });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.equal(steps.length, 2);
    assert.ok(error instanceof ConnectionDroppedError);
    assert.match(
      error.message,
      /ended the pull of "smollm2:135m" without "success" \(last status "pulling [0-9a-f]{12}"\)/,
    );
  });
});

Deno.test("a reply that is not NDJSON is an invalid response", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "non-json", status: 200, body: "<html>proxy</html>" });
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const { error } = await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.ok(error instanceof InvalidResponseError);
    assert.match(error.message, /\/api\/pull answered with text\/html/);
  });
});

Deno.test("aborting a pull closes the upstream stream", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "stall", afterTokens: 3 });
    const ollama = createOllamaProvider({ baseUrl: double.url });
    const controller = new AbortController();
    const seen: string[] = [];
    const pulling = (async () => {
      for await (
        const step of ollama.modelManagement!.pull("smollm2:135m", { signal: controller.signal })
      ) {
        seen.push(step.status);
        if (seen.length === 3) controller.abort(new DOMException("stop", "AbortError"));
      }
    })();
    await assert.rejects(pulling, (error: Error) => error.name === "AbortError");
    await double.waitForOpenStreams(0);
    assert.equal(seen.length, 3);
    assert.ok(!double.installed.includes("smollm2:135m"));
  });
});

Deno.test("Ollama silent in the middle of a pull trips the pull's idle limit, and the message says pulling", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "stall", afterTokens: 2 });
    // Long enough that the two lines, written back to back, never take it on a busy machine.
    const ollama = createOllamaProvider({ baseUrl: double.url, pullIdleMs: 1_000 });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.equal(steps.length, 2);
    assert.ok(error instanceof ProviderTimeoutError);
    assert.equal(error.phase, "idle");
    assert.match(
      error.message,
      new RegExp(
        `^Ollama at ${double.host} sent nothing for 1s while pulling "smollm2:135m" \\(at "pulling [0-9a-f]{12}"\\): it may be stuck; check the Ollama server log and pull again \\(the download resumes where it stopped\\)\\.$`,
      ),
    );
    await double.waitForOpenStreams(0);
  });
});

Deno.test("a pull is not bound by the total timeout of ordinary calls", async () => {
  // 14 lines 10 ms apart take at least 130 ms, well past a 50 ms total limit.
  await withDouble(async (double) => {
    const ollama = createOllamaProvider({ baseUrl: double.url, timeouts: { totalMs: 50 } });
    const { steps, error } = await pullAll(ollama.modelManagement!.pull("smollm2:135m"));
    assert.equal(error, undefined);
    assert.equal(steps.at(-1)?.[0], "success");
  }, { tokenDelayMs: 10 });
});
