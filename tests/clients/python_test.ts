/**
 * The standard-library Python client (`examples/python/rune_client.py`), run
 * with the machine's `python3` against the real daemon and the Ollama
 * double: over stdio (the client starts `src/main.ts serve --stdio` through
 * `--cmd`) and over Streamable HTTP (`--url` to a `rune serve --port 0`
 * with a token). Models are listed, a generation is printed as it streams
 * (the double stalls after its first token, so the token is on stdout while
 * the process is still running), a chat keeps its history over two turns
 * read from stdin, and SIGINT cancels the request, closing the upstream
 * stream. The tests are ignored, with the reason in their names, when
 * `python3` (3.9 or later) is missing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startDaemon } from "../daemon.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { childEnv, serveArgs } from "../stdio_client.ts";

const CLIENT = new URL("../../examples/python/rune_client.py", import.meta.url).pathname;

/** A token delay no test waits out: the double stalls after the first token. */
const STALL_MS = 3_600_000;

const WAIT_MS = 20_000;

function pythonMissing(): string | undefined {
  try {
    const output = new Deno.Command("python3", {
      args: ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
      stdout: "piped",
    }).outputSync();
    const [major, minor] = new TextDecoder().decode(output.stdout).trim().split(".").map(Number);
    if (major < 3 || (major === 3 && minor < 9)) return `python3 is ${major}.${minor}, not 3.9+`;
    return undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return "python3 is not installed; apt-get install python3";
    }
    throw error;
  }
}

const MISSING = pythonMissing();

function testName(name: string): string {
  return MISSING ? `${name} (ignored: ${MISSING})` : name;
}

/** POSIX shell quoting, for `--cmd`. */
function shellQuote(words: string[]): string {
  return words.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(" ");
}

/** The client's arguments to start the daemon on stdio against the double. */
function stdioArgs(double: OllamaDouble): string[] {
  return ["--cmd", shellQuote([Deno.execPath(), ...serveArgs(double.host, ["--stdio"])])];
}

function spawnClient(args: string[], stdin?: string): Deno.ChildProcess {
  const child = new Deno.Command("python3", {
    args: [CLIENT, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv({ PYTHONUNBUFFERED: "1" }),
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    writer.write(new TextEncoder().encode(stdin)).then(() => writer.close());
  }
  return child;
}

async function runClient(args: string[], stdin?: string) {
  const output = await spawnClient(args, stdin).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

const MODELS = [
  "ollama/llama3.2:latest  3.2B  Q4_K_M",
  "ollama/llava:latest  7B  Q4_0",
  "ollama/qwen3:latest  8.2B  Q4_K_M",
  "ollama/all-minilm:latest  23M  F16",
].join("\n") + "\n";

/**
 * Starts a generation that stalls after its first token, checks the token
 * is printed while the client still runs, interrupts it like Ctrl-C, and
 * checks the upstream stream closes.
 */
async function interruptedGeneration(double: OllamaDouble, args: string[]): Promise<void> {
  double.tokenDelayMs = STALL_MS;
  try {
    const child = spawnClient([...args, "generate", "a long story", "--model", "llama3.2"]);
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const stderr = new Response(child.stderr).text();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("Echo:")) {
      const { value, done } = await reader.read();
      assert.equal(done, false, `stdout ended early: ${JSON.stringify(seen)}`);
      seen += value;
    }
    assert.equal(seen, "Echo:");
    await double.waitForOpenStreams(1, AbortSignal.timeout(WAIT_MS));
    assert.equal(exited, false, "the token is printed before the generation ends");
    child.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assert.equal((await status).code, 130);
    assert.equal(seen, "Echo:\n");
    assert.match(await stderr, /\nInterrupted\.\n$/);
    await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
  } finally {
    double.tokenDelayMs = 0;
  }
}

/** Two chat turns from stdin; the second request carries the first turn. */
async function chatTwoTurns(double: OllamaDouble, args: string[]): Promise<void> {
  const run = await runClient([...args, "chat", "-m", "llama3.2"], "hello\nhow are you?\n");
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, "Echo: hello\nEcho: how are you?\n");
  const sent = double.requests.filter((r) => r.path === "/api/chat").at(-1)!.body as {
    messages: { role: string; content: string }[];
  };
  assert.deepEqual(sent.messages.map(({ role, content }) => ({ role, content })), [
    { role: "user", content: "hello" },
    { role: "assistant", content: "Echo: hello" },
    { role: "user", content: "how are you?" },
  ]);
}

Deno.test({
  name: testName("the Python client lists, streams, chats and cancels over stdio"),
  ignore: MISSING !== undefined,
  async fn(t) {
    const double = await startOllamaDouble();
    const args = stdioArgs(double);
    try {
      await t.step("models are listed", async () => {
        const run = await runClient([...args, "models"]);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout, MODELS);
      });

      await t.step("a generation is printed whole", async () => {
        const run = await runClient([...args, "generate", "hello there", "--model", "llama3.2"]);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout, "Echo: hello there\n");
      });

      await t.step(
        "tokens are printed as they arrive, and SIGINT cancels the upstream call",
        () => interruptedGeneration(double, args),
      );

      await t.step("a chat keeps its history over two turns", () => chatTwoTurns(double, args));

      await t.step("an unknown model fails with the daemon's message", async () => {
        const run = await runClient([...args, "generate", "hi", "--model", "nope"]);
        assert.equal(run.code, 1);
        assert.equal(run.stdout, "");
        assert.equal(
          run.stderr,
          `error: Model "nope" is not installed on Ollama at ${double.host}: run "ollama pull ` +
            `nope", or pick one from "rune ai list".\n`,
        );
      });

      await t.step("a daemon that cannot start is a clear error", async () => {
        const run = await runClient(["--cmd", "/nonexistent/rune serve --stdio", "models"]);
        assert.equal(run.code, 1);
        assert.match(
          run.stderr,
          /^error: Cannot start the Rune daemon '\/nonexistent\/rune': .*pass --cmd\.\n$/,
        );
      });
    } finally {
      await double.close();
    }
  },
});

Deno.test({
  name: testName("the Python client lists, streams, chats and cancels over Streamable HTTP"),
  ignore: MISSING !== undefined,
  async fn(t) {
    const token = "python-test-token";
    const double = await startOllamaDouble();
    const daemon = await startDaemon(double.host, [], { env: { RUNE_TOKEN: token } });
    const args = ["--url", daemon.mcpUrl, "--token", token];
    try {
      await t.step("a missing token is refused with advice", async () => {
        const run = await runClient(["--url", daemon.mcpUrl, "models"]);
        assert.equal(run.code, 1);
        assert.equal(
          run.stderr,
          `error: The daemon at ${daemon.mcpUrl} wants a bearer token (401): pass --token or ` +
            "set RUNE_TOKEN.\n",
        );
      });

      await t.step("models are listed", async () => {
        const run = await runClient([...args, "models"]);
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout, MODELS);
      });

      await t.step(
        "tokens are printed as they arrive, and SIGINT cancels the upstream call",
        () => interruptedGeneration(double, args),
      );

      await t.step("a chat keeps its history over two turns", () => chatTwoTurns(double, args));

      await t.step("every session was closed with DELETE", async () => {
        const health = await fetch(`${daemon.url}/healthz`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const body = await health.json() as { sessions: Record<string, number> };
        assert.equal(body.sessions.http ?? 0, 0, JSON.stringify(body));
      });
    } finally {
      await daemon.stop();
      await double.close();
    }
  },
});
