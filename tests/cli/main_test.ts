/**
 * The `rune` command line, run as a real process against the Ollama double:
 * output, streaming, exit codes and `--json`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { embedText, type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { childEnv, MAIN, SERVE_PERMISSIONS } from "../stdio_client.ts";
import { VERSION } from "../../src/version.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function rune(
  args: string[],
  options: {
    host?: string;
    stdin?: string;
    env?: Record<string, string>;
    /** Deno permission flags. Default: those of `deno task rune`. */
    permissions?: string[];
  } = {},
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(options.permissions ?? SERVE_PERMISSIONS), MAIN, ...args],
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv({ ...(options.host && { OLLAMA_HOST: options.host }), ...options.env }),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function withDouble(fn: (double: OllamaDouble) => Promise<void>): Promise<void> {
  const double = await startOllamaDouble();
  try {
    await fn(double);
  } finally {
    await double.close();
  }
}

Deno.test("rune --version prints the version", async () => {
  const run = await rune(["--version"]);
  assert.equal(run.code, 0);
  assert.equal(run.stdout, `rune ${VERSION}\n`);
});

Deno.test("rune --help lists the commands and exit codes", async () => {
  const run = await rune(["--help"]);
  assert.equal(run.code, 0);
  for (
    const word of ["rune serve", "rune ai list", "rune ai generate", "rune ai chat", "Exit codes"]
  ) {
    assert.ok(run.stdout.includes(word), `help mentions ${word}`);
  }
});

Deno.test("usage errors exit 2 with a message and no stack trace", async () => {
  for (
    const args of [["frobnicate"], ["ai", "list", "--bogus"], ["ai", "generate", "hi"], [
      "ai",
      "generate",
      "hi",
      "-m",
      "x",
      "--temperature",
      "warm",
    ]]
  ) {
    const run = await rune(args, { env: { RUNE_MODEL: "" } });
    assert.equal(run.code, 2, `${args.join(" ")} exits 2`);
    assert.match(run.stderr, /^error: /m);
    assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
  }
});

Deno.test("rune ai list prints a table of models", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "list"], { host: double.host });
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split("\n");
    assert.match(lines[0], /^NAME\s+SIZE\s+PARAMS\s+QUANT\s+FAMILY\s+MODIFIED\s+LOADED$/);
    assert.equal(lines.length, 5, run.stdout);
    // The date is written in the machine's time zone, as Ollama does.
    assert.match(lines[1], /^llama3\.2:latest\s+2\.0 GB\s+3\.2B\s+Q4_K_M\s+llama\s+2025-10-1[34]$/);
    assert.match(lines[4], /^all-minilm:latest\s+46 MB\s+23M\s+F16\s+bert\s+2025-10-0[45]$/);
  });
});

Deno.test("rune ai list --json prints the models as JSON", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "list", "--json"], { host: double.host });
    assert.equal(run.code, 0);
    const models = JSON.parse(run.stdout) as Record<string, unknown>[];
    assert.deepEqual(models.map((m) => m.name), [
      "llama3.2:latest",
      "llava:latest",
      "qwen3:latest",
      "all-minilm:latest",
    ]);
    const { modified_at, ...first } = models[0];
    assert.deepEqual(first, {
      name: "llama3.2:latest",
      size: 2019393189,
      family: "llama",
      parameter_size: "3.2B",
      quantization: "Q4_K_M",
      loaded: false,
    });
    // Written in the machine's time zone, as Ollama does.
    assert.equal(
      Math.floor(Date.parse(modified_at as string) / 1000) * 1000,
      Date.UTC(2025, 9, 14, 9, 31, 7),
    );
  });
});

Deno.test("rune ai generate streams the reply to stdout", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "generate", "hello", "world", "--model", "llama3.2"], {
      host: double.host,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "Echo: hello world\n");
    assert.equal(run.stderr, "", "no spinner when stderr is not a terminal");
  });
});

Deno.test("rune ai generate reads the prompt from stdin and sends --system and --image", async () => {
  await withDouble(async (double) => {
    const image = await Deno.makeTempFile({ suffix: ".png" });
    await Deno.writeFile(image, new Uint8Array([137, 80, 78, 71]));
    try {
      const run = await rune(
        ["ai", "generate", "-m", "llava", "--system", "be terse", "--image", image],
        { host: double.host, stdin: "describe this\n" },
      );
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "Echo: describe this\n");
      const body = double.requests.find((r) => r.path === "/api/generate")?.body as Record<
        string,
        unknown
      >;
      assert.equal(body.system, "be terse");
      assert.deepEqual(body.images, ["iVBORw=="]);
    } finally {
      await Deno.remove(image);
    }
  });
});

Deno.test("rune ai generate --json prints one result object", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "generate", "hi", "-m", "llama3.2", "--json"], {
      host: double.host,
    });
    assert.equal(run.code, 0);
    const result = JSON.parse(run.stdout);
    assert.equal(result.response, "Echo: hi");
    assert.equal(result.done_reason, "stop");
  });
});

Deno.test("rune ai chat answers each piped line in order, keeping history", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "chat", "-m", "llama3.2"], {
      host: double.host,
      stdin: "first question\nsecond question\n",
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "Echo: first question\nEcho: second question\n");
    const chats = double.requests.filter((r) => r.path === "/api/chat");
    const last = chats.at(-1)?.body as { messages: { role: string; content: string }[] };
    assert.deepEqual(last.messages.map((m) => m.role), ["user", "assistant", "user"]);
  });
});

Deno.test("rune ai chat stops at /exit", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "chat", "-m", "llama3.2"], {
      host: double.host,
      stdin: "one\n/exit\ntwo\n",
    });
    assert.equal(run.code, 0);
    assert.equal(run.stdout, "Echo: one\n");
  });
});

Deno.test("rune ai embed prints one vector per text", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "embed", "a", "b", "-m", "all-minilm"], { host: double.host });
    assert.equal(run.code, 0, run.stderr);
    const vectors = run.stdout.trim().split("\n").map((l) => JSON.parse(l) as number[]);
    // The wire carries float32 values as their shortest decimals.
    assert.deepEqual(vectors.map((v) => v.map(Math.fround)), [
      Array.from(embedText("a")),
      Array.from(embedText("b")),
    ]);
  });
});

Deno.test("rune ai show prints capabilities", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "show", "qwen3"], { host: double.host });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /capabilities\s+completion, streaming, tools, thinking/);
  });
});

Deno.test("failures the user can fix exit 1 with an actionable message", async () => {
  await withDouble(async (double) => {
    const missing = await rune(["ai", "generate", "x", "-m", "nosuch"], { host: double.host });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ollama pull nosuch/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /);
  });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const down = await rune(["ai", "list"], { host: `127.0.0.1:${port}` });
  assert.equal(down.code, 1);
  assert.match(down.stderr, new RegExp(`Cannot reach Ollama at 127\\.0\\.0\\.1:${port}`));
});

Deno.test("a mid-stream error ends the partial line on stdout, then goes to stderr", async () => {
  await withDouble(async (double) => {
    double.failNext({
      kind: "error-in-stream",
      afterTokens: 2,
      error: "llama runner process has terminated",
    });
    const run = await rune(["ai", "generate", "hello", "world", "-m", "llama3.2"], {
      host: double.host,
    });
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "Echo: hello\n", "the partial reply, its line ended");
    assert.equal(
      run.stderr,
      `error: Ollama at ${double.host} reported an error in the middle of the reply: llama ` +
        "runner process has terminated (check the Ollama server log)\n",
    );
  });
});

Deno.test("a refused Deno permission says which one and how to grant it", async () => {
  const run = await rune(["ai", "list"], {
    permissions: ["--allow-net=127.0.0.1", "--allow-env=NO_COLOR", "--allow-read"],
  });
  assert.equal(run.code, 1);
  assert.equal(
    run.stderr,
    'error: Deno refused env access to "OLLAMA_HOST": Rune was started without that ' +
      "permission. Grant it by adding --allow-env=OLLAMA_HOST to the command that starts Rune " +
      '(or widen the --allow-env it has); see "Permissions" in README.md for what each way of ' +
      "running Rune grants.\n",
  );
});

Deno.test("rune serve on an address outside --allow-net names the permission, not Ollama", async () => {
  for (const [host, port, target] of [["0.0.0.0", "0", "0.0.0.0"], ["::", "9", "[::]:9"]]) {
    const run = await rune(["serve", "--host", host, "--port", port], {
      env: { RUNE_TOKEN: "a-token" },
    });
    assert.equal(run.code, 1, run.stderr);
    assert.equal(
      run.stderr,
      `error: Deno's permissions do not let Rune listen on ${target}: it was started with ` +
        "--allow-net for other addresses only (the deno tasks allow loopback only). Add " +
        `--allow-net=${target} to the "deno run" command that starts Rune, or use the installed ` +
        'rune ("deno task install"), which may listen on any address you give it.\n',
    );
  }
});

Deno.test("NO_COLOR output has no escape sequences", async () => {
  await withDouble(async (double) => {
    const run = await rune(["ai", "generate", "x", "-m", "nosuch"], { host: double.host });
    assert.ok(!(run.stderr + run.stdout).includes("\x1b["), "no ANSI escape");
  });
});

const hasScript = (() => {
  try {
    return Deno.statSync("/usr/bin/script").isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: hasScript
    ? "rune ai chat on a terminal prompts, streams replies and quits at /exit"
    : "rune ai chat on a terminal (skipped: util-linux script is missing for a pseudo-terminal)",
  ignore: !hasScript,
  async fn() {
    await withDouble(async (double) => {
      const inner = [
        Deno.execPath(),
        "run",
        ...SERVE_PERMISSIONS,
        MAIN,
        "ai",
        "chat",
        "-m",
        "llama3.2",
      ]
        .map((a) => `'${a}'`).join(" ");
      // `script` gives the command a pseudo-terminal, so rune sees an interactive session.
      const child = new Deno.Command("/usr/bin/script", {
        args: ["-qec", inner, "/dev/null"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        clearEnv: true,
        env: childEnv({ OLLAMA_HOST: double.host, TERM: "dumb" }),
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode("hi there\n/exit\n"));
      const output = await child.output();
      await writer.close().catch(() => {});
      const screen = new TextDecoder().decode(output.stdout);
      assert.equal(output.code, 0, screen);
      assert.match(screen, /Chatting with llama3\.2/);
      assert.match(screen, /> /);
      assert.match(screen, /Echo: hi there/);
    });
  },
});
