/**
 * `rune ai pull|ps|rm`, run as a real process against the Ollama double:
 * plain progress lines off a terminal, the progress bar and the delete
 * confirmation in a pseudo-terminal (util-linux `script`), `--json`, exit
 * codes, and Ctrl-C closing the pull upstream.
 *
 * @module
 */

import assert from "node:assert/strict";
import { frame, until } from "../../src/cli/manage.ts";
import type { Io } from "../../src/cli/output.ts";
import {
  LIBRARY_MODELS,
  type OllamaDouble,
  pullLayers,
  startOllamaDouble,
} from "../ollama_double.ts";
import { childEnv, MAIN, SERVE_PERMISSIONS } from "../stdio_client.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function rune(args: string[], host: string): Promise<Run> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...SERVE_PERMISSIONS, MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv({ OLLAMA_HOST: host }),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

const hasScript = (() => {
  try {
    return Deno.statSync("/usr/bin/script").isFile;
  } catch {
    return false;
  }
})();

/** Runs `rune ARGS` in a pseudo-terminal with `input` typed in; returns what the terminal showed. */
async function runInTerminal(args: string[], host: string, input = ""): Promise<Run> {
  const inner = [Deno.execPath(), "run", ...SERVE_PERMISSIONS, MAIN, ...args]
    .map((a) => `'${a}'`).join(" ");
  const child = new Deno.Command("/usr/bin/script", {
    args: ["-qec", inner, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv({ OLLAMA_HOST: host, TERM: "dumb" }),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  const output = await child.output();
  await writer.close().catch(() => {});
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

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

Deno.test("rune ai pull off a terminal prints a line per status and per tenth, then success", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "pull", "smollm2:135m"], double.host);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "");
    const lines = run.stderr.trimEnd().split("\n");
    const [weights, template, , params, config] = pullLayers(LIBRARY_MODELS[0]);
    const short = (layer: { digest: string }) => layer.digest.slice(7, 19);
    assert.deepEqual(lines.slice(0, -1), [
      "pulling manifest",
      `pulling ${short(weights)} 0% (0 B/271 MB)`,
      `pulling ${short(weights)} 24% (68 MB/271 MB)`,
      `pulling ${short(weights)} 49% (135 MB/271 MB)`,
      `pulling ${short(weights)} 74% (203 MB/271 MB)`,
      `pulling ${short(weights)} 89% (244 MB/271 MB)`,
      `pulling ${short(template)} 100% (271 MB/271 MB)`,
      `pulling ${short(params)} 100% (271 MB/271 MB)`,
      `pulling ${short(config)} 100% (271 MB/271 MB)`,
      "verifying sha256 digest 100% (271 MB/271 MB)",
      "writing manifest 100% (271 MB/271 MB)",
    ]);
    assert.match(lines.at(-1)!, /^success: pulled smollm2:135m \(271 MB\) in \d+\.\ds$/);
    assert.ok(double.installed.includes("smollm2:135m"));
  });
});

Deno.test("rune ai pull --json prints one object per new step on stdout, the last one done", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "pull", "smollm2:135m", "--json"], double.host);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, "");
    const steps = run.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    const last = steps.at(-1);
    assert.equal(typeof last.duration_ms, "number");
    assert.deepEqual({ ...last, duration_ms: 0 }, {
      model: "smollm2:135m",
      status: "success",
      completed: 270890961,
      total: 270890961,
      done: true,
      duration_ms: 0,
    });
    assert.deepEqual(steps[0], {
      model: "smollm2:135m",
      status: "pulling manifest",
      completed: 0,
      total: 0,
      done: false,
    });
    const completed = steps.map((s) => s.completed);
    assert.deepEqual(completed, [...completed].sort((a, b) => a - b), "never backwards");
    const texts = run.stdout.trimEnd().split("\n");
    assert.equal(new Set(texts).size, texts.length, "no line repeats");
    // 14 lines from Ollama, the repeated tick and the one held back by a backward value dropped.
    assert.equal(steps.length, 12);
  });
});

Deno.test("rune ai pull of a model the library lacks exits 1 with where to look", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "pull", "nosuch"], double.host);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      "pulling manifest\n" +
        `error: Ollama's library has no model "nosuch" (Ollama at ${double.host} answered: pull model manifest: file does not exist): check the name and tag at https://ollama.com/library.\n`,
    );
  });
});

Deno.test("Ctrl-C stops rune ai pull, exits 130 and closes the pull upstream", async () => {
  await withDouble(async (double) => {
    double.failNext({ kind: "stall", afterTokens: 3 });
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...SERVE_PERMISSIONS, MAIN, "ai", "pull", "smollm2:135m"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv({ OLLAMA_HOST: double.host }),
    }).spawn();
    await double.waitForOpenStreams(1);
    child.kill("SIGINT");
    const output = await child.output();
    assert.equal(output.code, 130);
    assert.match(new TextDecoder().decode(output.stderr), /\nInterrupted\.\n$/);
    await double.waitForOpenStreams(0);
    assert.ok(!double.installed.includes("smollm2:135m"));
  });
});

Deno.test({
  name: hasScript
    ? "rune ai pull on a terminal draws a progress bar in place on stderr"
    : "rune ai pull on a terminal (skipped: util-linux script is missing for a pseudo-terminal)",
  ignore: !hasScript,
  async fn() {
    await withDouble(async (double) => {
      const run = await runInTerminal(["ai", "pull", "smollm2:135m"], double.host);
      assert.equal(run.code, 0, run.stdout);
      const frames = run.stdout.split("\r\x1b[2K").slice(1);
      assert.equal(frames[0], "pulling manifest");
      // Every status gets a frame; the bar frames show the bar between ▕ and ▏.
      assert.ok(
        frames.some((f) => f.startsWith("verifying sha256 digest 100% ▕" + "█".repeat(25))),
      );
      assert.ok(
        frames.every((f) =>
          f === "pulling manifest" || / \d+% ▕[█ ]{25}▏ /.test(f) || f.startsWith("success")
        ),
        JSON.stringify(frames),
      );
      assert.match(frames.at(-1)!, /^success: pulled smollm2:135m \(271 MB\) in \d+\.\ds\r\n$/);
    });
  },
});

Deno.test({
  name: hasScript
    ? "rune ai rm on a terminal asks first: n keeps the model, y deletes it"
    : "rune ai rm on a terminal (skipped: util-linux script is missing for a pseudo-terminal)",
  ignore: !hasScript,
  async fn() {
    await withDouble(async (double) => {
      const no = await runInTerminal(["ai", "rm", "llava"], double.host, "n\n");
      assert.equal(no.code, 1, no.stdout);
      assert.match(
        no.stdout,
        new RegExp(
          `Delete llava from Ollama at ${double.host}\\? This cannot be undone\\. \\[y/N\\] .*Nothing deleted\\.`,
          "s",
        ),
      );
      assert.ok(double.installed.includes("llava:latest"));
      const yes = await runInTerminal(["ai", "rm", "llava"], double.host, "y\n");
      assert.equal(yes.code, 0, yes.stdout);
      assert.match(yes.stdout, /Deleted llava from Ollama\.\r\n$/);
      assert.ok(!double.installed.includes("llava:latest"));
    });
  },
});

Deno.test("rune ai rm without a terminal refuses without --yes and deletes with it", async () => {
  await withDouble(async (double) => {
    const refused = await rune(["ai", "rm", "llava"], double.host);
    assert.equal(refused.code, 2);
    assert.equal(
      refused.stderr,
      "error: rune ai rm deletes models for good: pass --yes to delete without a terminal to ask on.\n",
    );
    assert.ok(double.installed.includes("llava:latest"));
    assert.equal(double.requests.filter((r) => r.path === "/api/delete").length, 0);
    const run = await rune(["ai", "rm", "llava", "qwen3", "--yes"], double.host);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "Deleted llava from Ollama.\nDeleted qwen3 from Ollama.\n");
    assert.deepEqual(double.installed, ["llama3.2:latest", "all-minilm:latest"]);
    const json = await rune(["ai", "rm", "-y", "all-minilm", "--json"], double.host);
    assert.equal(json.stdout, '{"model":"all-minilm","deleted":true}\n');
  });
});

Deno.test("rune ai rm of a model that is not installed exits 1 and says so", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "rm", "nosuch", "--yes"], double.host);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `error: Model "nosuch" is not installed on Ollama at ${double.host}, so there is nothing to delete: "rune ai list" shows the installed models.\n`,
    );
  });
});

Deno.test("rune ai ps shows the loaded models as a table, or says none is loaded", async () => {
  await withDouble(async (double) => {
    const none = await rune(["ai", "ps"], double.host);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, "");
    assert.equal(none.stderr, `No model is loaded in Ollama at ${double.host} right now.\n`);
    await (await fetch(`${double.url}/api/generate`, {
      method: "POST",
      body: JSON.stringify({ model: "llama3.2", prompt: "x", stream: false, keep_alive: "3h" }),
    })).body?.cancel();
    const run = await rune(["ai", "ps"], double.host);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      "NAME             SIZE    PROCESSOR  CONTEXT  UNTIL\n" +
        "llama3.2:latest  2.0 GB  100% GPU   4096     in 3 hours\n",
    );
    const json = await rune(["ai", "ps", "--json"], double.host);
    const { models } = JSON.parse(json.stdout);
    assert.equal(models.length, 1);
    assert.deepEqual({ ...models[0], expires_at: "" }, {
      name: "llama3.2:latest",
      size: 2019393189,
      size_vram: 2019393189,
      expires_at: "",
      context_length: 4096,
      family: "llama",
      parameter_size: "3.2B",
      quantization: "Q4_K_M",
    });
  });
});

Deno.test("when a model unloads reads in the largest unit, forever for centuries", () => {
  const now = Date.parse("2025-10-14T09:00:00Z");
  assert.equal(until("2025-10-14T09:00:30Z", now), "in 30 seconds");
  assert.equal(until("2025-10-14T09:01:00Z", now), "in 1 minute");
  assert.equal(until("2025-10-14T11:04:07+02:00", now), "in 4 minutes");
  assert.equal(until("2025-10-14T12:00:00Z", now), "in 3 hours");
  assert.equal(until("2025-10-14T09:59:59Z", now), "in 1 hour");
  assert.equal(until("2025-10-16T09:00:00Z", now), "in 2 days");
  assert.equal(until("2318-02-22T23:59:59Z", now), "forever");
  assert.equal(until("2025-10-14T08:00:00Z", now), "now");
  assert.equal(until("soon", now), "soon");
  assert.equal(until(undefined, now), "");
});

Deno.test("a progress frame shows status, percent, bar, bytes and speed", () => {
  const io: Io = {
    out: () => Promise.resolve(),
    err: () => {},
    isTerminal: { stdin: true, stdout: true, stderr: true },
    color: false,
  };
  const step = { status: "pulling 20231ac07b4c", completed: 122_000_000, total: 271_000_000 };
  assert.equal(
    frame(io, { ...step, done: false }, 35_000_000),
    `pulling 20231ac07b4c  45% ▕${"█".repeat(11)}${" ".repeat(14)}▏ 122 MB/271 MB  35 MB/s`,
  );
  assert.equal(
    frame(io, { status: "pulling manifest", completed: 0, total: 0, done: false }),
    "pulling manifest",
  );
});
