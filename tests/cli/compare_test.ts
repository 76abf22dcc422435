/**
 * `rune ai compare`: as a real process against the Ollama double (stacked
 * sections when stdout is a pipe, `--json`, exit codes, Ctrl-C closing every
 * upstream stream), in process with a terminal-sized fake stdout (side by
 * side), and its pieces (stacked ordering, wrapping, the summary table).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { childEnv, MAIN, SERVE_PERMISSIONS } from "../stdio_client.ts";
import type { CompareEntry } from "../../src/providers/compare_entry.ts";
import { fitsColumns, runCompare, stackedView, summaryTable, wrap } from "../../src/cli/compare.ts";
import type { Io } from "../../src/cli/output.ts";

/** A token delay no test waits out: the double stalls after the first token. */
const STALL_MS = 3_600_000;

/** The table's header line. */
const TABLE_HEADER = /^MODEL\s+TTFT\s+TOTAL\s+TOKENS\/S\s+TOKENS\s+ERROR$/;

async function withDouble(fn: (double: OllamaDouble) => Promise<void>): Promise<void> {
  const double = await startOllamaDouble();
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

function spawnRune(args: string[], host: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...SERVE_PERMISSIONS, MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv({ OLLAMA_HOST: host }),
  }).spawn();
}

async function rune(args: string[], host: string) {
  const output = await spawnRune(args, host).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** An Io whose stdout is a terminal (or not) and records everything written. */
function fakeIo(terminal: boolean): Io & { stdout: string; stderr: string } {
  const io = {
    stdout: "",
    stderr: "",
    out(text: string) {
      io.stdout += text;
      return Promise.resolve();
    },
    err(text: string) {
      io.stderr += text;
    },
    isTerminal: { stdin: false, stdout: terminal, stderr: false },
    color: false,
  };
  return io;
}

/** Moves up over the live region and clears it. */
// deno-lint-ignore no-control-regex
const ERASE = /\r\x1b\[\d+A\x1b\[J/g;

Deno.test("rune ai compare streams stacked sections, then the timings, when stdout is a pipe", async () => {
  await withDouble(async (double) => {
    const run = await rune([
      "ai",
      "compare",
      "hello there",
      "-m",
      "llama3.2",
      "--model",
      "ollama/qwen3",
      "-m",
      "nope",
    ], double.host);
    assert.equal(run.code, 0, run.stderr);
    const missing = `Model "nope" is not installed on Ollama at ${double.host}: run "ollama ` +
      `pull nope", or pick one from "rune ai list".`;
    const [sections, table] = run.stdout.split("\n\nMODEL");
    assert.equal(
      sections,
      "## llama3.2\nEcho: hello there\n\n## ollama/qwen3\nEcho: hello there\n\n" +
        `## nope\nerror: ${missing}`,
    );
    const rows = ("MODEL" + table).trimEnd().split("\n");
    assert.match(rows[0], TABLE_HEADER);
    assert.match(rows[1], /^llama3\.2\s+\d+ ms\s+\d+ ms\s+\d+\.\d\s+3$/);
    // The thinking model's tokens include its reasoning (Ollama's eval_count).
    assert.match(rows[2], /^ollama\/qwen3\s+\d+ ms\s+\d+ ms\s+\d+\.\d\s+12$/);
    assert.match(rows[3], /^nope\s+-\s+\d+ ms\s+-\s+-\s+Model "nope" is not installed/);
    assert.ok(rows[3].endsWith(missing), rows[3]);
    assert.equal(rows.length, 4);
    assert.equal(run.stderr, "");
    // Both models were asked at once, each once.
    const asked = double.requests.filter((r) => r.path === "/api/generate").map((r) =>
      (r.body as { model: string }).model
    );
    assert.deepEqual(asked.toSorted(), ["llama3.2", "nope", "qwen3"]);
  });
});

Deno.test("rune ai compare --json prints the ai_compare result shape in the order asked", async () => {
  await withDouble(async (double) => {
    const run = await rune(
      ["ai", "compare", "hi", "-m", "qwen3", "-m", "llama3.2", "--max-tokens", "2", "--json"],
      double.host,
    );
    assert.equal(run.code, 0, run.stderr);
    const { results } = JSON.parse(run.stdout) as { results: CompareEntry[] };
    const timings = results.map(({ ttft_ms, total_ms, tokens_per_second }) => ({
      ttft_ms,
      total_ms,
      tokens_per_second,
    }));
    for (const t of timings) {
      assert.equal(typeof t.ttft_ms, "number");
      assert.ok(t.ttft_ms! <= t.total_ms, `first token before the end: ${JSON.stringify(t)}`);
      assert.ok(t.tokens_per_second! > 0);
    }
    assert.deepEqual(
      results.map(({ ttft_ms: _t, total_ms: _m, tokens_per_second: _s, ...rest }) => rest),
      [
        {
          model: "qwen3",
          // Two tokens in all, both spent thinking.
          response: "",
          thinking: "Okay, the",
          done_reason: "length",
          usage: { prompt_tokens: 11, completion_tokens: 2 },
        },
        {
          model: "llama3.2",
          response: "Echo: hi",
          done_reason: "length",
          usage: { prompt_tokens: 11, completion_tokens: 2 },
        },
      ],
    );
  });
});

Deno.test("rune ai compare exits 1 when every model failed, 2 on a usage error", async () => {
  await withDouble(async (double) => {
    const failed = await rune(
      ["ai", "compare", "hi", "-m", "nope", "-m", "nobody/x", "--json"],
      double.host,
    );
    assert.equal(failed.code, 1);
    assert.equal(failed.stderr, "error: every model failed.\n");
    const { results } = JSON.parse(failed.stdout) as { results: CompareEntry[] };
    assert.deepEqual(results.map((r) => [r.model, r.response, r.error]), [
      [
        "nope",
        "",
        `Model "nope" is not installed on Ollama at ${double.host}: run "ollama pull nope", ` +
        `or pick one from "rune ai list".`,
      ],
      [
        "nobody/x",
        "",
        'Unknown provider "nobody" in "nobody/x": the configured providers are ollama.',
      ],
    ]);

    const one = await rune(["ai", "compare", "hi", "-m", "llama3.2"], double.host);
    assert.equal(one.code, 2);
    assert.equal(
      one.stderr,
      'error: Compare takes 2 to 8 models, got 1: rune ai compare "PROMPT" --model A --model B\n',
    );
    const nine = await rune(
      ["ai", "compare", "hi", ...Array.from({ length: 9 }, (_, i) => ["-m", `m${i}`]).flat()],
      double.host,
    );
    assert.equal(nine.code, 2);
    assert.match(nine.stderr, /^error: Compare takes 2 to 8 models, got 9:/);
  });
});

Deno.test("rune ai compare shows the first answer before the others end, and Ctrl-C closes every upstream stream", async () => {
  await withDouble(async (double) => {
    // Every model's first token comes at once, the next an hour later.
    double.tokenDelayMs = STALL_MS;
    const child = spawnRune(
      ["ai", "compare", "a long story", "-m", "llama3.2", "-m", "llava"],
      double.host,
    );
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("Echo:")) {
      const { value, done } = await reader.read();
      assert.equal(done, false, `stdout ended early: ${JSON.stringify(seen)}`);
      seen += value;
    }
    assert.equal(seen, "## llama3.2\nEcho:");
    await double.waitForOpenStreams(2, AbortSignal.timeout(15_000));
    child.kill("SIGINT");
    const status = await child.status;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assert.equal(status.code, 130);
    assert.equal(seen, "## llama3.2\nEcho:\n");
    assert.equal(await stderr, "\nInterrupted.\n");
    await double.waitForOpenStreams(0, AbortSignal.timeout(15_000));
  });
});

Deno.test("rune ai compare draws side by side on a wide terminal and ends with the full columns", async () => {
  await withDouble(async (double) => {
    const config = await Deno.makeTempFile({ suffix: ".json" });
    try {
      await Deno.writeTextFile(config, "{}");
      const io = fakeIo(true);
      const code = await runCompare(
        [
          "The quick brown fox jumps over the lazy dog and keeps running",
          "-m",
          "llama3.2",
          "-m",
          "llava",
          "--ollama-host",
          double.host,
          "--config",
          config,
        ],
        io,
        { consoleSize: () => ({ columns: 63, rows: 10 }) },
      );
      assert.equal(code, 0, io.stderr);
      assert.ok(io.stdout.startsWith("\x1b[?25l"), "the cursor is hidden while drawing");
      assert.ok(io.stdout.endsWith("\x1b[?25h"), "and shown again at the end");
      const frames = io.stdout.slice("\x1b[?25l".length, -"\x1b[?25h".length).split(ERASE);
      // The first frame: both models waiting.
      assert.equal(
        frames[0],
        "llama3.2 …                     │ llava …\n" +
          "───────────────────────────────┼───────────────────────────────\n",
      );
      const [grid, table] = frames.at(-1)!.split("\n\n");
      // Columns of 30 cells, wrapped at spaces.
      assert.equal(
        grid,
        "llama3.2 ✓                     │ llava ✓\n" +
          "───────────────────────────────┼───────────────────────────────\n" +
          "Echo: The quick brown fox      │ Echo: The quick brown fox\n" +
          "jumps over the lazy dog and    │ jumps over the lazy dog and\n" +
          "keeps running                  │ keeps running",
      );
      const rows = table.trimEnd().split("\n");
      assert.match(rows[0], TABLE_HEADER);
      assert.match(rows[1], /^llama3\.2\s+\d+ ms\s+\d+ ms\s+\d+\.\d\s+13$/);
      assert.match(rows[2], /^llava\s+\d+ ms\s+\d+ ms\s+\d+\.\d\s+13$/);
      assert.equal(rows.length, 3);
    } finally {
      await Deno.remove(config);
    }
  });
});

Deno.test("rune ai compare stacks the answers on a terminal too narrow for columns", async () => {
  await withDouble(async (double) => {
    const config = await Deno.makeTempFile({ suffix: ".json" });
    try {
      await Deno.writeTextFile(config, "{}");
      const io = fakeIo(true);
      const code = await runCompare(
        ["hi", "-m", "llama3.2", "-m", "llava", "--ollama-host", double.host, "--config", config],
        io,
        { consoleSize: () => ({ columns: 58, rows: 40 }) },
      );
      assert.equal(code, 0, io.stderr);
      assert.ok(io.stdout.startsWith("## llama3.2\nEcho: hi\n\n## llava\nEcho: hi\n\nMODEL"));
    } finally {
      await Deno.remove(config);
    }
  });
});

Deno.test("columns fit from 28 cells each and 6 lines", () => {
  assert.equal(fitsColumns(2, { columns: 59, rows: 6 }), true);
  assert.equal(fitsColumns(2, { columns: 58, rows: 6 }), false);
  assert.equal(fitsColumns(2, { columns: 59, rows: 5 }), false);
  assert.equal(fitsColumns(3, { columns: 90, rows: 24 }), true);
  assert.equal(fitsColumns(3, { columns: 89, rows: 24 }), false);
});

Deno.test("stacked view streams the first section and holds the others until their turn", async () => {
  const io = fakeIo(false);
  const view = stackedView(io, ["a", "b", "c"]);
  const entry = (model: string, error?: string): CompareEntry => ({
    model,
    response: "",
    total_ms: 1,
    usage: {},
    ...(error && { error }),
  });
  view.text(1, "b says");
  view.text(0, "a1 ");
  view.text(2, "c says\n");
  view.done(2, entry("c"));
  // What was written so far: the first section only; the later ones wait for it.
  await view.abort();
  assert.equal(io.stdout, "## a\na1 \n");
  io.stdout = "";
  const again = stackedView(io, ["a", "b", "c"]);
  again.text(1, "b says");
  again.text(0, "a1 ");
  again.text(2, "c says\n");
  again.done(2, entry("c"));
  again.text(0, "a2");
  again.done(0, entry("a"));
  again.text(1, " more");
  again.done(1, entry("b", "it broke"));
  await again.finish([entry("a"), entry("b", "it broke"), entry("c")]);
  assert.equal(
    io.stdout,
    "## a\na1 a2\n\n## b\nb says more\nerror: it broke\n\n## c\nc says\n\n" +
      "MODEL  TTFT  TOTAL  TOKENS/S  TOKENS  ERROR\n" +
      "a      -     1 ms   -         -\n" +
      "b      -     1 ms   -         -       it broke\n" +
      "c      -     1 ms   -         -\n",
  );
});

Deno.test("wrap breaks at spaces, cuts longer words, and keeps blank lines", () => {
  assert.deepEqual(wrap("the quick brown fox", 10), ["the quick", "brown fox"]);
  assert.deepEqual(wrap("abcdefghijklmnop", 6), ["abcdef", "ghijkl", "mnop"]);
  assert.deepEqual(wrap("one\n\ntwo", 10), ["one", "", "two"]);
  assert.deepEqual(wrap("", 10), [""]);
  assert.deepEqual(wrap("héllo wörld", 5), ["héllo", "wörld"]);
  // A line already complete does not change when the text grows.
  assert.deepEqual(
    wrap("the quick brown f", 10).slice(0, 1),
    wrap("the quick brown fox", 10).slice(0, 1),
  );
});

Deno.test("summary table lines up timings, tokens and errors", () => {
  assert.equal(
    summaryTable([
      {
        model: "ollama/llama3.2",
        response: "x",
        ttft_ms: 12.4,
        total_ms: 1234.5,
        tokens_per_second: 41.25,
        usage: { completion_tokens: 20 },
      },
      { model: "b", response: "", total_ms: 3, usage: {}, error: "no such model" },
    ]),
    "MODEL            TTFT   TOTAL    TOKENS/S  TOKENS  ERROR\n" +
      "ollama/llama3.2  12 ms  1235 ms  41.3      20\n" +
      "b                -      3 ms     -         -       no such model\n",
  );
});
