/**
 * The Neovim plugin (`editors/nvim/`) in `nvim --headless --clean`, against
 * the real daemon (`src/main.ts serve --stdio` as the plugin's `cmd`) and
 * the Ollama double.
 *
 * Neovim loads the plugin from its runtimepath and the harness
 * `nvim_harness.lua`, which runs Lua chunks the test sends on stdin and
 * answers on stdout; waiting for a condition is checked after each of the
 * plugin's `User RuneProgress`/`RuneDone` events (no polling, no sleeps).
 * Where a step must happen between two tokens, the double stalls after its
 * first token, so "the buffer filled before the call ended" is a fact the
 * test observes rather than a race. The tests are ignored, with the reason
 * in their names, when `nvim` (0.7 or later) is missing.
 *
 * @module
 */

import assert from "node:assert/strict";
import { splitLines } from "../../src/providers/ndjson.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { childEnv, serveArgs } from "../stdio_client.ts";

const PLUGIN = new URL("../../editors/nvim", import.meta.url).pathname;
const HARNESS = new URL("./nvim_harness.lua", import.meta.url).pathname;

/** A token delay no test waits out: the double stalls after the first token. */
const STALL_MS = 3_600_000;

/** Failure bound of one wait inside Neovim. */
const WAIT_MS = 20_000;

/** Neovim's version, or why it cannot be used. */
function neovimVersion(): { version?: string; missing?: string } {
  try {
    const output = new Deno.Command("nvim", { args: ["--version"], stdout: "piped" }).outputSync();
    const match = /^NVIM v(\d+)\.(\d+)\.(\d+)/.exec(new TextDecoder().decode(output.stdout));
    if (!match) return { missing: "nvim --version printed no version" };
    if (Number(match[1]) === 0 && Number(match[2]) < 7) {
      return { missing: `nvim ${match[0]} is older than 0.7` };
    }
    return { version: match[0] };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { missing: "nvim is not installed; apt-get install neovim" };
    }
    throw error;
  }
}

const NEOVIM = neovimVersion();
const SKIP = NEOVIM.missing !== undefined;

function testName(name: string): string {
  return SKIP ? `${name} (ignored: ${NEOVIM.missing})` : name;
}

/** A Lua string literal holding `text`. */
function lua(text: string): string {
  assert.ok(!text.includes("]==]"));
  return `[==[${text}]==]`;
}

/** A headless Neovim driven through the harness. */
interface Neovim {
  /** Runs a Lua chunk and resolves to what it returns. */
  run<T = unknown>(chunk: string): Promise<T>;
  /** Resolves once the Lua chunk returns true (checked after each Rune event). */
  until(chunk: string): Promise<void>;
  /** What Neovim wrote on stderr. */
  stderr(): string;
  /** Quits Neovim (which stops the daemon). */
  close(): Promise<void>;
}

async function startNeovim(): Promise<Neovim> {
  const log = await Deno.makeTempFile({ suffix: ".nvim.log" });
  const child = new Deno.Command("nvim", {
    args: ["--headless", "--clean", "--cmd", `set rtp^=${PLUGIN}`, "-c", `luafile ${HARNESS}`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv({ NVIM_LOG_FILE: log }),
  }).spawn();
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let stderr = "";
  const stderrDone = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
  })();
  const waiting = new Map<number, PromiseWithResolvers<unknown>>();
  const ready = Promise.withResolvers<unknown>();
  waiting.set(0, ready);
  const stdoutDone = (async () => {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines());
    for await (const line of lines) {
      if (!line.startsWith("@@harness ")) continue;
      const reply = JSON.parse(line.slice("@@harness ".length)) as {
        id: number;
        ok: boolean;
        value?: unknown;
        error?: string;
      };
      const waiter = waiting.get(reply.id);
      waiting.delete(reply.id);
      if (reply.ok) waiter?.resolve(reply.value);
      else waiter?.reject(new Error(`in Neovim: ${reply.error}`));
    }
    for (const waiter of waiting.values()) {
      waiter.reject(new Error(`Neovim exited; stderr:\n${stderr}`));
    }
    waiting.clear();
  })();
  let next = 1;
  const send = async (request: Record<string, unknown>) => {
    const id = next++;
    const reply = Promise.withResolvers<unknown>();
    waiting.set(id, reply);
    await writer.write(encoder.encode(JSON.stringify({ id, ...request }) + "\n"));
    return await reply.promise;
  };
  await ready.promise;
  let closed: Promise<void> | undefined;
  return {
    run: <T>(chunk: string) => send({ lua: chunk }) as Promise<T>,
    until: async (chunk: string) => {
      await send({ until: chunk, ms: WAIT_MS });
    },
    stderr: () => stderr,
    close() {
      closed ??= (async () => {
        await writer.close();
        await child.status;
        await stdoutDone;
        await stderrDone;
        await Deno.remove(log);
      })();
      return closed;
    },
  };
}

/** Starts the double and Neovim with the plugin set up against a real daemon. */
async function withNeovim(
  fn: (nvim: Neovim, double: OllamaDouble) => Promise<void>,
  setup: Record<string, unknown> = {},
): Promise<void> {
  const double = await startOllamaDouble();
  const nvim = await startNeovim();
  try {
    const cmd = [Deno.execPath(), ...serveArgs(double.host, ["--stdio"])];
    const options = JSON.stringify({ cmd, model: "llama3.2", ...setup });
    await nvim.run(`require("rune").setup(vim.json.decode(${lua(options)}))`);
    await fn(nvim, double);
  } catch (error) {
    console.error(`Neovim stderr:\n${nvim.stderr()}`);
    throw error;
  } finally {
    await nvim.close();
    await double.close();
  }
}

/** Lines of buffer `buf`. */
function lines(nvim: Neovim, buf: number): Promise<string[]> {
  return nvim.run(`return vim.api.nvim_buf_get_lines(${buf}, 0, -1, false)`);
}

/** b:rune_state of buffer `buf`. */
function state(nvim: Neovim, buf: number): Promise<string> {
  return nvim.run(`return vim.b[${buf}].rune_state`);
}

/** Resolves once b:rune_state of every buffer is `wanted`. */
function untilState(nvim: Neovim, buffers: number[], wanted: string): Promise<void> {
  return nvim.until(
    `for _, b in ipairs({ ${buffers.join(", ")} }) do
       if vim.b[b].rune_state ~= ${lua(wanted)} then return false end
     end
     return true`,
  );
}

/** Runs an Ex command and returns the current buffer afterwards. */
function command(nvim: Neovim, ex: string): Promise<number> {
  return nvim.run(`vim.cmd(${lua(ex)}) return vim.api.nvim_get_current_buf()`);
}

/** Messages shown with vim.notify since the last call, at error level. */
async function errors(nvim: Neovim): Promise<string[]> {
  return await nvim.run(`
    local out = {}
    for _, n in ipairs(_G.notes) do
      if n.level == vim.log.levels.ERROR then table.insert(out, n.message) end
    end
    _G.notes = {}
    return out`);
}

Deno.test({
  name: testName("the Neovim plugin lists, generates, compares, chats and cancels over MCP"),
  ignore: SKIP,
  async fn(t) {
    await withNeovim(async (nvim, double) => {
      await t.step(":Rune models lists every provider's models in a scratch buffer", async () => {
        const buf = await command(nvim, "Rune models");
        await untilState(nvim, [buf], "done");
        assert.deepEqual(await lines(nvim, buf), [
          "ollama/llama3.2:latest  3.2B  Q4_K_M",
          "ollama/llava:latest  7B  Q4_0",
          "ollama/qwen3:latest  8.2B  Q4_K_M",
          "ollama/all-minilm:latest  23M  F16",
        ]);
        assert.equal(await nvim.run(`return vim.bo[${buf}].buftype`), "nofile");
        assert.deepEqual(
          await nvim.run(`return require("rune").known_models()`),
          [
            "ollama/llama3.2:latest",
            "ollama/llava:latest",
            "ollama/qwen3:latest",
            "ollama/all-minilm:latest",
          ],
        );
      });

      await t.step(
        ":Rune generate fills the scratch buffer while the call runs, and :Rune cancel closes the upstream stream",
        async () => {
          double.tokenDelayMs = STALL_MS;
          const buf = await command(nvim, "Rune generate Tell me a long story");
          await untilState(nvim, [buf], "streaming");
          assert.deepEqual(await lines(nvim, buf), ["Echo:"]);
          // The call has not ended: the double holds the stream open and the plugin waits.
          assert.equal(double.openStreams, 1);
          assert.equal(await nvim.run(`return require("rune").running()`), 1);
          assert.equal(await nvim.run(`return vim.bo[${buf}].buftype`), "nofile");
          assert.equal(await nvim.run(`return vim.bo[${buf}].modifiable`), false);

          await command(nvim, "Rune cancel");
          assert.equal(await state(nvim, buf), "cancelled");
          await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
          assert.equal(await nvim.run(`return require("rune").running()`), 0);
          assert.deepEqual(await lines(nvim, buf), ["Echo:"]);
          assert.deepEqual(await errors(nvim), []);
        },
      );

      await t.step(":Rune generate ends with the whole reply", async () => {
        double.tokenDelayMs = 0;
        const buf = await command(nvim, "Rune generate hello there, friend");
        await untilState(nvim, [buf], "done");
        assert.deepEqual(await lines(nvim, buf), ["Echo: hello there, friend"]);
        const sent = double.requests.filter((r) => r.path === "/api/generate").at(-1)!
          .body as { model: string; prompt: string };
        assert.equal(sent.model, "llama3.2");
        assert.equal(sent.prompt, "hello there, friend");
      });

      await t.step(
        ":'<,'>Rune generate takes a characterwise selection as the prompt",
        async () => {
          await nvim.run(`
          vim.cmd("enew")
          vim.api.nvim_buf_set_lines(0, 0, -1, false, { "alpha beta", "gamma delta" })
          vim.cmd("normal! gg0wvj0e\\27")`);
          const buf = await command(nvim, "'<,'>Rune generate");
          await untilState(nvim, [buf], "done");
          assert.deepEqual(await lines(nvim, buf), ["Echo: beta", "gamma"]);

          // Linewise, with an instruction in front.
          await nvim.run(`vim.cmd("wincmd p") vim.cmd("normal! ggVj\\27")`);
          const second = await command(nvim, "'<,'>Rune generate Summarize:");
          await untilState(nvim, [second], "done");
          const prompt = (double.requests.filter((r) => r.path === "/api/generate").at(-1)!
            .body as { prompt: string }).prompt;
          assert.equal(prompt, "Summarize:\n\nalpha beta\ngamma delta");
          assert.deepEqual(await lines(nvim, second), [
            "Echo: Summarize:",
            "",
            "alpha beta",
            "gamma delta",
          ]);
        },
      );

      await t.step(
        ":Rune compare streams two models side by side in vertical splits, and cancels both",
        async () => {
          double.tokenDelayMs = STALL_MS;
          await command(nvim, "Rune compare llama3.2 llava -- a long story");
          const buffers = await nvim.run<number[]>(
            `return vim.tbl_map(vim.api.nvim_win_get_buf, vim.api.nvim_tabpage_list_wins(0))`,
          );
          assert.equal(buffers.length, 2);
          await untilState(nvim, buffers, "streaming");
          assert.deepEqual(await lines(nvim, buffers[0]), ["# llama3.2", "Echo:"]);
          assert.deepEqual(await lines(nvim, buffers[1]), ["# llava", "Echo:"]);
          assert.equal(double.openStreams, 2);
          // Side by side: the same top row, the second to the right of the first.
          const positions = await nvim.run<[number, number][]>(
            `return vim.tbl_map(vim.api.nvim_win_get_position, vim.api.nvim_tabpage_list_wins(0))`,
          );
          assert.equal(positions[0][0], positions[1][0]);
          assert.ok(positions[1][1] > positions[0][1], JSON.stringify(positions));

          await command(nvim, "Rune cancel");
          await untilState(nvim, buffers, "cancelled");
          await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
          assert.deepEqual(await lines(nvim, buffers[0]), [
            "# llama3.2",
            "Echo:",
            "",
            "-- cancelled",
          ]);
          assert.deepEqual(await lines(nvim, buffers[1]), ["# llava", "Echo:", "", "-- cancelled"]);
          await nvim.run(`vim.cmd("tabclose")`);
        },
      );

      await t.step(":Rune compare ends each split with its timings, or its error", async () => {
        double.tokenDelayMs = 0;
        await command(nvim, "Rune compare llama3.2 ollama/qwen3 nope -- hello there");
        const buffers = await nvim.run<number[]>(
          `return vim.tbl_map(vim.api.nvim_win_get_buf, vim.api.nvim_tabpage_list_wins(0))`,
        );
        await nvim.until(
          `for _, b in ipairs({ ${buffers.join(", ")} }) do
             local s = vim.b[b].rune_state
             if s ~= "done" and s ~= "failed" then return false end
           end
           return true`,
        );
        const [first, second, third] = await Promise.all(buffers.map((b) => lines(nvim, b)));
        assert.deepEqual(first.slice(0, 3), ["# llama3.2", "Echo: hello there", ""]);
        assert.match(first[3], /^-- ttft \d+ ms, total \d+ ms, \d+\.\d tokens\/s, 3 tokens$/);
        assert.equal(first.length, 4);
        assert.deepEqual(second.slice(0, 3), ["# ollama/qwen3", "Echo: hello there", ""]);
        assert.match(second[3], /^-- ttft \d+ ms, total \d+ ms, \d+\.\d tokens\/s, 12 tokens$/);
        assert.deepEqual(third, [
          "# nope",
          `-- error: Model "nope" is not installed on Ollama at ${double.host}: run "ollama ` +
          `pull nope", or pick one from "rune ai list".`,
        ]);
        assert.deepEqual(await Promise.all(buffers.map((b) => state(nvim, b))), [
          "done",
          "done",
          "failed",
        ]);
        await nvim.run(`vim.cmd("tabclose")`);
      });

      await t.step(":Rune chat keeps the history over two turns", async () => {
        const buf = await command(nvim, "Rune chat");
        assert.deepEqual(await lines(nvim, buf), ["# Chat with llama3.2", "", "## You", ""]);
        assert.equal(await nvim.run(`return vim.bo[${buf}].buftype`), "nofile");
        // The user types under "## You" and presses <CR> in normal mode.
        await nvim.run(`vim.api.nvim_buf_set_lines(${buf}, -2, -1, false, { "hello" })`);
        await nvim.run(
          `vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<CR>", true, false, true), "x", false)`,
        );
        await untilState(nvim, [buf], "idle");
        await nvim.run(`vim.api.nvim_buf_set_lines(${buf}, -2, -1, false, { "how are you?" })`);
        await command(nvim, "Rune send");
        await untilState(nvim, [buf], "idle");
        assert.deepEqual(await lines(nvim, buf), [
          "# Chat with llama3.2",
          "",
          "## You",
          "hello",
          "",
          "## llama3.2",
          "Echo: hello",
          "",
          "## You",
          "how are you?",
          "",
          "## llama3.2",
          "Echo: how are you?",
          "",
          "## You",
          "",
        ]);
        const sent = double.requests.filter((r) => r.path === "/api/chat").at(-1)!.body as {
          messages: { role: string; content: string }[];
        };
        assert.deepEqual(sent.messages.map(({ role, content }) => ({ role, content })), [
          { role: "user", content: "hello" },
          { role: "assistant", content: "Echo: hello" },
          { role: "user", content: "how are you?" },
        ]);
        assert.deepEqual(await errors(nvim), []);
      });

      await t.step("closing a generation's window stops it upstream", async () => {
        double.tokenDelayMs = STALL_MS;
        const buf = await command(nvim, "Rune generate another long story");
        await untilState(nvim, [buf], "streaming");
        assert.equal(double.openStreams, 1);
        await nvim.run(`vim.cmd("bwipeout ${buf}")`);
        await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
        await nvim.until(`return require("rune").running() == 0`);
      });
    });
  },
});

Deno.test({
  name: testName("the Neovim plugin shows failures with vim.notify"),
  ignore: SKIP,
  async fn(t) {
    await withNeovim(async (nvim, double) => {
      await t.step("an unknown model's error", async () => {
        const buf = await command(nvim, "Rune generate hi");
        await untilState(nvim, [buf], "failed");
        assert.deepEqual(await errors(nvim), [
          `Rune: Model "nope" is not installed on Ollama at ${double.host}: run "ollama pull ` +
          `nope", or pick one from "rune ai list".`,
        ]);
      });

      await t.step("a compare with one model", async () => {
        await command(nvim, "Rune compare llama3.2 -- hi");
        assert.deepEqual(await errors(nvim), [
          "Rune: compare takes 2 to 8 models, got 1: :Rune compare MODEL MODEL [...] [-- PROMPT]",
        ]);
      });

      await t.step("a chat turn that fails comes back as the next input", async () => {
        double.failNext({ kind: "status", status: 500, error: "llama runner process died" });
        const buf = await command(nvim, "Rune chat llama3.2");
        await nvim.run(`vim.api.nvim_buf_set_lines(${buf}, -1, -1, false, { "hello" })`);
        await command(nvim, "Rune send");
        await untilState(nvim, [buf], "idle");
        const shown = await errors(nvim);
        assert.equal(shown.length, 1);
        assert.match(shown[0], /^Rune: .*llama runner process died/);
        const text = await lines(nvim, buf);
        assert.deepEqual(text.slice(0, 6), [
          "# Chat with llama3.2",
          "",
          "## You",
          "hello",
          "",
          "## llama3.2",
        ]);
        assert.match(text[6], /^\[error: .*llama runner process died.*\]$/);
        assert.deepEqual(text.slice(7), ["", "## You", "hello"]);
        assert.deepEqual(await nvim.run(`return require("rune.chat").history(${buf})`), []);
      });

      await t.step("a message longer than max_line_bytes stops the daemon", async () => {
        await nvim.run(`require("rune").stop()`);
        const cmd = [Deno.execPath(), ...serveArgs(double.host, ["--stdio"])];
        await nvim.run(
          `require("rune").setup({ cmd = vim.json.decode(${
            lua(JSON.stringify(cmd))
          }), max_line_bytes = 300 })`,
        );
        const buf = await command(nvim, "Rune models");
        await untilState(nvim, [buf], "failed");
        assert.deepEqual(await errors(nvim), [
          "Rune: The Rune daemon sent a message longer than 300 bytes (max_line_bytes in setup()); it was stopped.",
        ]);
      });

      await t.step("a daemon that cannot start", async () => {
        await nvim.run(
          `require("rune").setup({ cmd = { "/nonexistent/rune", "serve", "--stdio" }, model = "m" })`,
        );
        await command(nvim, "Rune generate hi");
        const shown = await errors(nvim);
        assert.equal(shown.length, 1);
        assert.match(
          shown[0],
          /^Rune: Cannot start the Rune daemon \{ "\/nonexistent\/rune", "serve", "--stdio" \}: .*Install rune/,
        );
      });
    }, { model: "nope" });
  },
});
