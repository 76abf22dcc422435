/**
 * End-to-end tests of the playground (`GET /`, its script and stylesheet)
 * in headless Chromium.
 *
 * Most tests start the Ollama double and a real `rune serve --port 0`,
 * then drive Debian's `/usr/bin/chromium` through `playwright-core` (which
 * never downloads a browser here): the page must connect over WebSocket
 * MCP, list the models, stream a generation, cancel one (closing the
 * upstream Ollama stream), show errors plainly and work under its
 * Content-Security-Policy; its chat view keeps history, a system prompt
 * and tool calls, and its compare view streams models side by side. Where
 * a step must happen between two tokens,
 * the double stalls after its first token (no timing involved). The
 * thinking and model-filter tests serve the page in-process from
 * `createHandler` with a scripted provider, so the test hands the page
 * each chunk and model list itself. The tests are ignored, with the reason
 * in their names, when `/usr/bin/chromium` is missing.
 *
 * Browser-side code is passed to playwright as strings: the test runs under
 * Deno's types, which have no DOM.
 *
 * @module
 */

import assert from "node:assert/strict";
import fs from "node:fs";
import type { Browser, BrowserType, Page } from "playwright-core";
import { type Daemon, startDaemon } from "../daemon.ts";
import { type OllamaDouble, startOllamaDouble, tokenize } from "../ollama_double.ts";
import { createHandler } from "../../src/transports/http.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import { PLAYGROUND_HEADERS } from "../../src/transports/playground.ts";
import type {
  Capabilities,
  Chunk,
  FinalResult,
  ModelInfo,
  Provider,
} from "../../src/providers/types.ts";

const CHROMIUM = "/usr/bin/chromium";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

/** How long any single wait in the page may take. */
const WAIT_MS = 15_000;

/** A token delay no test waits out: the double stalls after the first token. */
const STALL_MS = 3_600_000;

function chromiumMissing(): boolean {
  try {
    return !Deno.statSync(CHROMIUM).isFile;
  } catch {
    return true;
  }
}

const SKIP = chromiumMissing();
const SKIP_REASON = ` (ignored: ${CHROMIUM} is not installed; apt-get install chromium)`;

/** The test's name, with the reason appended when it is ignored. */
function testName(name: string): string {
  return SKIP ? name + SKIP_REASON : name;
}

let chromiumType: Promise<BrowserType> | undefined;

/**
 * Imports playwright-core's `chromium` once. While the module loads,
 * `fs.existsSync` is made to return false instead of throwing: playwright
 * probes `/proc/sys/fs/binfmt_misc/WSLInterop` at import, and Deno 2.9's
 * `existsSync` throws `NotCapable` for `/proc/sys` paths unless the test
 * runs with `--allow-all` (Node's `existsSync` never throws).
 */
function loadChromium(): Promise<BrowserType> {
  chromiumType ??= (async () => {
    const existsSync = fs.existsSync;
    fs.existsSync = (path: fs.PathLike) => {
      try {
        return existsSync(path);
      } catch {
        return false;
      }
    };
    try {
      return (await import("playwright-core")).chromium;
    } finally {
      fs.existsSync = existsSync;
    }
  })();
  return chromiumType;
}

/** The text the double streams for `prompt`, cut or cycled to `numPredict` tokens. */
function expectedEcho(prompt: string, numPredict?: number): string {
  const tokens = tokenize(`Echo: ${prompt}`);
  if (numPredict === undefined) return tokens.join("");
  return Array.from({ length: numPredict }, (_, i) => tokens[i % tokens.length]).join("");
}

/** A browser page and what it reported. */
interface Browsing {
  browser: Browser;
  page: Page;
  /** Page errors, console errors and CSP violations seen so far. */
  problems: string[];
}

/** Launches Chromium with a fresh page, runs `fn`, and always closes the browser. */
async function withBrowser(fn: (b: Browsing) => Promise<void>): Promise<void> {
  // launch() gives the browser a fresh temporary profile and deletes it on close.
  const chromium = await loadChromium();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    await fn({ browser, page, problems });
  } finally {
    await browser.close();
  }
}

/** Everything a test against the real daemon needs. */
interface Fixture extends Browsing {
  double: OllamaDouble;
  daemon: Daemon;
}

/** Starts the double, the daemon and Chromium, runs `fn`, and always cleans up. */
async function withPlayground(
  fn: (f: Fixture) => Promise<void>,
  options: { env?: Record<string, string> } = {},
): Promise<void> {
  const double = await startOllamaDouble();
  let daemon: Daemon | undefined;
  try {
    daemon = await startDaemon(double.host, [], { env: options.env });
    const started = daemon;
    await withBrowser((b) => fn({ ...b, double, daemon: started }));
  } catch (error) {
    if (daemon) console.error(`daemon stderr:\n${daemon.stderr()}`);
    throw error;
  } finally {
    await daemon?.stop();
    await double.close();
  }
}

/** A generate call the scripted provider received; the test feeds its chunks. */
interface ScriptedCall {
  /** The model asked for. */
  model: string;
  /** Hands the page one chunk. */
  push(chunk: Chunk): void;
  /** Resolves when the call's signal aborts (the page cancelled). */
  aborted: Promise<void>;
}

/** A provider whose models the test sets and whose generations the test writes. */
interface ScriptedProvider extends Provider {
  /** What `listModels` returns. */
  models: ModelInfo[];
  /** Resolves with the next generate call. */
  nextCall(): Promise<ScriptedCall>;
}

const TEXT_ONLY: Capabilities = {
  completion: true,
  streaming: true,
  vision: false,
  tools: false,
  embeddings: false,
  thinking: false,
};

function scriptedProvider(models: ModelInfo[]): ScriptedProvider {
  const calls: ScriptedCall[] = [];
  let waiter: ((call: ScriptedCall) => void) | undefined;
  const unsupported = () => Promise.reject(new Error("not scripted"));
  return {
    id: "ollama",
    type: "ollama",
    label: "Ollama",
    address: "scripted",
    models,
    capabilities: () => TEXT_ONLY,
    listModels() {
      return Promise.resolve(this.models);
    },
    showModel: unsupported,
    embed: unsupported,
    ping: () => Promise.resolve("scripted"),
    chat: () => ({
      [Symbol.asyncIterator]: () => ({ next: unsupported }),
    }),
    generate(request, options = {}) {
      const queue: Chunk[] = [];
      let wake: (() => void) | undefined;
      const aborted = Promise.withResolvers<void>();
      const signal = options.signal;
      signal?.addEventListener("abort", () => {
        aborted.resolve();
        wake?.();
      }, { once: true });
      const call: ScriptedCall = {
        model: request.model,
        push(chunk) {
          queue.push(chunk);
          wake?.();
        },
        aborted: aborted.promise,
      };
      if (waiter) waiter(call);
      else calls.push(call);
      waiter = undefined;
      return (async function* () {
        for (;;) {
          while (queue.length === 0) {
            signal?.throwIfAborted();
            await new Promise<void>((resolve) => (wake = resolve));
          }
          signal?.throwIfAborted();
          const chunk = queue.shift()!;
          yield chunk;
          if (chunk.type === "done") return;
        }
      })();
    },
    nextCall() {
      const queued = calls.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve) => (waiter = resolve));
    },
  };
}

/** A final result for a scripted generation. */
function done(model: string, text: string, thinking?: string): Chunk {
  const result: FinalResult = {
    model,
    text,
    ...(thinking !== undefined && { thinking }),
    toolCalls: [],
    doneReason: "stop",
    usage: {},
  };
  return { type: "done", result };
}

/**
 * Serves the playground and MCP in this process over `provider` (on
 * 127.0.0.1, port 0) and opens it in Chromium.
 */
async function withScriptedPlayground(
  provider: ScriptedProvider,
  fn: (b: Browsing & { url: string }) => Promise<void>,
): Promise<void> {
  const handler = createHandler({
    factory: () => createMcpServer({ providers: [provider] }),
    providers: [provider],
    security: { hostname: "127.0.0.1" },
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await withBrowser((b) => fn({ ...b, url: `http://127.0.0.1:${server.addr.port}/` }));
  } finally {
    await handler.closeAll();
    await server.shutdown();
  }
}

/** Records the length of `#output` after every change, in `globalThis.outputLengths`. */
async function recordOutputLengths(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    const output = document.getElementById("output");
    globalThis.outputLengths = [];
    globalThis.outputObserver?.disconnect();
    globalThis.outputObserver = new MutationObserver(() => {
      const state = document.getElementById("run-status").dataset.state;
      globalThis.outputLengths.push([output.textContent.length, state]);
    });
    globalThis.outputObserver.observe(output, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  })()`);
}

async function outputLengths(page: Page): Promise<[number, string][]> {
  return await page.evaluate("globalThis.outputLengths") as [number, string][];
}

/**
 * Resolves once the element `#id` holds at least `length` characters. (The
 * page's CSP forbids `eval`, so `page.waitForFunction` with a string cannot
 * poll; a MutationObserver installed through `page.evaluate` can.)
 */
async function waitForLength(page: Page, id: string, length: number): Promise<void> {
  await page.evaluate(`new Promise((resolve, reject) => {
    const element = document.getElementById(${JSON.stringify(id)});
    const timer = setTimeout(() => {
      observer.disconnect();
      reject(new Error("#${id} stayed shorter than ${length} characters"));
    }, ${WAIT_MS});
    const check = () => {
      if (element.textContent.length < ${length}) return;
      clearTimeout(timer);
      observer.disconnect();
      resolve();
    };
    const observer = new MutationObserver(check);
    observer.observe(element, { childList: true, characterData: true, subtree: true });
    check();
  })`);
}

async function text(page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector)) ?? "";
}

/** Whether the thinking box is shown and open. */
async function thinkingBox(page: Page): Promise<{ hidden: boolean; open: boolean }> {
  return await page.evaluate(`(() => {
    const box = document.getElementById("thinking-box");
    return { hidden: box.hidden, open: box.open };
  })()`) as { hidden: boolean; open: boolean };
}

/** Fills the form and clicks Generate. */
async function generate(
  page: Page,
  input: { model?: string; prompt: string; maxTokens?: string },
): Promise<void> {
  if (input.model) await page.selectOption("#model", input.model);
  await page.fill("#prompt", input.prompt);
  await page.fill("#max-tokens", input.maxTokens ?? "");
  await page.click("#generate");
}

async function runState(page: Page, state: string): Promise<void> {
  await page.waitForSelector(`#run-status[data-state="${state}"]`, { state: "attached" });
}

/** Waits for the models reloaded with `#refresh`: a full round trip over the socket. */
async function roundTrip(page: Page): Promise<void> {
  const loads = await page.getAttribute("#model", "data-loads");
  await page.click("#refresh");
  await page.waitForSelector(`#model:not([data-loads="${loads}"])`, { state: "attached" });
}

async function modelOptions(page: Page): Promise<string[]> {
  return await page.evaluate(
    `Array.from(document.querySelectorAll("#model option"), (o) => o.value)`,
  ) as string[];
}

/**
 * Resolves once the first element matching `selector` holds at least
 * `length` characters (a MutationObserver, as in {@linkcode waitForLength}).
 */
async function waitForText(page: Page, selector: string, length: number): Promise<void> {
  await page.waitForSelector(selector, { state: "attached" });
  await page.evaluate(`new Promise((resolve, reject) => {
    const element = document.querySelector(${JSON.stringify(selector)});
    const timer = setTimeout(() => {
      observer.disconnect();
      reject(new Error(${JSON.stringify(selector)} + " stayed shorter than ${length} characters"));
    }, ${WAIT_MS});
    const check = () => {
      if (element.textContent.length < ${length}) return;
      clearTimeout(timer);
      observer.disconnect();
      resolve();
    };
    const observer = new MutationObserver(check);
    observer.observe(element, { childList: true, characterData: true, subtree: true });
    check();
  })`);
}

/** The chat log: each entry's role, state, text and tool calls. */
async function chatLog(page: Page): Promise<
  { role: string; state: string; who: string; text: string; calls: string[] }[]
> {
  return await page.evaluate(`Array.from(document.querySelectorAll("#chat-log li"), (li) => ({
    role: li.dataset.role,
    state: li.dataset.state,
    who: li.querySelector(".who").textContent,
    text: li.querySelector(".text").textContent,
    calls: Array.from(li.querySelectorAll(".tool-call"), (c) => c.textContent),
  }))`) as { role: string; state: string; who: string; text: string; calls: string[] }[];
}

/** Types `text` into the chat input and sends it. */
async function chatSend(page: Page, text: string): Promise<void> {
  await page.fill("#chat-input", text);
  await page.click("#chat-send");
}

async function chatState(page: Page, state: string): Promise<void> {
  await page.waitForSelector(`#chat-status[data-state="${state}"]`, { state: "attached" });
}

async function compareState(page: Page, state: string): Promise<void> {
  await page.waitForSelector(`#compare-status[data-state="${state}"]`, { state: "attached" });
}

/** The messages of the last request the double got on `path`. */
function lastMessages(double: OllamaDouble): Record<string, unknown>[] {
  const body = double.requests.filter((r) => r.path === "/api/chat").at(-1)!.body as {
    messages: Record<string, unknown>[];
  };
  return body.messages;
}

/** Whether the visible view is `name` (its tab selected, the others' panels hidden). */
async function visibleView(page: Page): Promise<string[]> {
  return await page.evaluate(`["generate", "chat", "compare"].filter((name) =>
    !document.getElementById("view-" + name).hidden &&
    document.getElementById("tab-" + name).getAttribute("aria-selected") === "true"
  )`) as string[];
}

Deno.test({
  name: testName("playground connects, streams, cancels and shows errors in Chromium"),
  ignore: SKIP,
  async fn(t) {
    await withPlayground(async (f) => {
      const { page, double } = f;

      await t.step("playground is served with its security headers", async () => {
        for (
          const [path, type] of [
            ["/", "text/html; charset=utf-8"],
            ["/playground.js", "text/javascript; charset=utf-8"],
            ["/playground.css", "text/css; charset=utf-8"],
          ]
        ) {
          const response = await fetch(`${f.daemon.url}${path}`);
          await response.body?.cancel();
          assert.equal(response.status, 200, path);
          assert.equal(response.headers.get("content-type"), type, path);
          for (const [name, value] of Object.entries(PLAYGROUND_HEADERS)) {
            assert.equal(response.headers.get(name), value, `${path} ${name}`);
          }
        }
        assert.equal(
          PLAYGROUND_HEADERS["content-security-policy"],
          "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        );
        assert.equal(PLAYGROUND_HEADERS["x-content-type-options"], "nosniff");
        assert.equal(PLAYGROUND_HEADERS["referrer-policy"], "no-referrer");
      });

      await t.step("playground connects and lists the models", async () => {
        const response = await page.goto(`${f.daemon.url}/`);
        assert.equal(response?.status(), 200);
        await page.waitForSelector('#status[data-state="connected"]');
        assert.match(await text(page, "#status"), /^connected to rune /);
        await page.waitForSelector('#model option[value="llama3.2:latest"]', {
          state: "attached",
        });
        // The double answers /api/tags as Ollama 0.12 does, without capabilities: every model
        // is offered (the scripted test below covers leaving out those that cannot generate).
        assert.deepEqual(await modelOptions(page), [
          "llama3.2:latest",
          "llava:latest",
          "qwen3:latest",
          "all-minilm:latest",
        ]);
        assert.equal(await text(page, "#model-hint"), "");
        assert.equal(await page.isEnabled("#generate"), true);
        assert.equal(await page.isDisabled("#cancel"), true);
        assert.equal(await page.isHidden("#error"), true);
      });

      await t.step("playground shows the reply while it streams, and cancels it", async () => {
        // The first token comes at once, the next an hour later.
        double.tokenDelayMs = STALL_MS;
        await generate(page, { model: "llama3.2:latest", prompt: "Tell me a long story" });
        await waitForLength(page, "output", "Echo:".length);
        assert.equal(await text(page, "#output"), "Echo:");
        assert.equal(await text(page, "#run-status"), "generating\u2026");
        assert.equal(double.openStreams, 1);
        assert.deepEqual(await thinkingBox(page), { hidden: true, open: false });
        await page.click("#cancel");
        await runState(page, "cancelled");
        assert.equal(await text(page, "#run-status"), "cancelled");
        await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
        // Anything the daemon sent before the upstream closed has arrived after a round trip.
        await roundTrip(page);
        assert.equal(await text(page, "#output"), "Echo:", "the output stopped growing");
        assert.equal(await page.isHidden("#output-note"), true, "a partial output needs no note");
        assert.equal(await page.isHidden("#error"), true);
        assert.equal(await page.isEnabled("#generate"), true);
        assert.equal(await page.isDisabled("#cancel"), true);
      });

      await t.step("playground ends with the whole reply", async () => {
        double.tokenDelayMs = 0;
        const prompt = "Hello from the playground";
        await recordOutputLengths(page);
        await generate(page, { model: "llama3.2:latest", prompt, maxTokens: "24" });
        await runState(page, "done");
        const expected = expectedEcho(prompt, 24);
        assert.equal(await text(page, "#output"), expected);
        assert.match(await text(page, "#run-status"), /^done \(length, 24 tokens, \d+ ms\)$/);
        const lengths = await outputLengths(page);
        // Cleared at the start, then only growing while generating, ending with the whole reply.
        assert.deepEqual(lengths[0], [0, "generating"]);
        for (let i = 1; i < lengths.length; i++) {
          assert.ok(lengths[i][0] >= lengths[i - 1][0], `the output only grows: ${lengths}`);
        }
        assert.deepEqual(lengths.at(-1), [expected.length, "done"]);
      });

      await t.step(
        "playground shows a thinking model's reasoning open while it thinks",
        async () => {
          double.tokenDelayMs = STALL_MS;
          await generate(page, { model: "qwen3:latest", prompt: "ponder this" });
          await waitForLength(page, "thinking", "Okay,".length);
          assert.equal(await text(page, "#thinking"), "Okay,");
          assert.deepEqual(await thinkingBox(page), { hidden: false, open: true });
          assert.equal(await text(page, "#run-status"), "thinking\u2026");
          assert.equal(await page.getAttribute("#run-status", "data-state"), "thinking");
          assert.equal(await text(page, "#output"), "");

          await page.click("#cancel");
          await runState(page, "cancelled");
          await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
          assert.equal(await text(page, "#output"), "");
          assert.equal(await page.isVisible("#output-note"), true);
          assert.equal(
            await text(page, "#output-note"),
            "Cancelled while the model was thinking, before any output.",
          );
        },
      );

      await t.step(
        "playground says why the output is empty when thinking used every token",
        async () => {
          double.tokenDelayMs = 0;
          await generate(page, { model: "qwen3:latest", prompt: "ponder this", maxTokens: "3" });
          await runState(page, "done");
          assert.equal(await text(page, "#output"), "");
          assert.equal(await text(page, "#thinking"), "Okay, the user");
          assert.deepEqual(await thinkingBox(page), { hidden: false, open: true });
          assert.equal(
            await text(page, "#output-note"),
            "No output: the model spent the whole token limit thinking. Raise Max tokens.",
          );
          // The next generation starts clean.
          await generate(page, { model: "llama3.2:latest", prompt: "plain" });
          await runState(page, "done");
          assert.equal(await text(page, "#output"), expectedEcho("plain"));
          assert.equal(await page.isHidden("#output-note"), true);
          assert.deepEqual(await thinkingBox(page), { hidden: true, open: false });
        },
      );

      await t.step("playground shows an unknown model's error plainly", async () => {
        await page.evaluate(`(() => {
          const select = document.getElementById("model");
          select.add(new Option("nope:latest", "nope:latest"));
        })()`);
        await generate(page, { model: "nope:latest", prompt: "hi" });
        await runState(page, "failed");
        assert.equal(await page.isVisible("#error"), true);
        assert.equal(
          await text(page, "#error"),
          `Model "nope:latest" is not installed on Ollama at ${double.host}: run "ollama pull ` +
            `nope:latest", or pick one from "rune ai list".`,
        );
        assert.equal(await text(page, "#output"), "");
      });

      await t.step("playground shows an Ollama failure plainly", async () => {
        double.failNext({ kind: "status", status: 500, error: "llama runner process died" });
        await generate(page, { model: "llama3.2:latest", prompt: "hi" });
        await runState(page, "failed");
        assert.match(await text(page, "#error"), /llama runner process died/);
      });

      await t.step("playground shows an invalid-argument tool error plainly", async () => {
        await generate(page, { prompt: "hi", maxTokens: "1.5" });
        await runState(page, "failed");
        // SEP-1303: invalid arguments are a tool error naming the argument, not -32602.
        assert.match(
          await text(page, "#error"),
          /^Input validation error: Invalid arguments for tool ai_ollama_generate: .*num_predict/s,
        );
        // A new generation clears the error.
        await generate(page, { prompt: "fine again" });
        await runState(page, "done");
        assert.equal(await page.isHidden("#error"), true);
        assert.equal(await text(page, "#output"), expectedEcho("fine again"));
      });

      await t.step("playground shows the close code and reason when rune stops", async () => {
        const stopped = f.daemon.stop();
        await page.waitForSelector('#status[data-state="disconnected"]');
        // Rune closes with "server shutting down"; Deno's server shutdown may win the race
        // with its own "Server shutting down".
        assert.match(
          await text(page, "#status"),
          /^disconnected \(code 1001: server shutting down\)$/i,
        );
        assert.match(
          await text(page, "#error"),
          /^The connection closed \(code 1001: server shutting down\)\.$/i,
        );
        assert.equal(await page.isDisabled("#generate"), true);
        assert.equal((await stopped).code, 0);
      });

      await t.step("playground runs under its CSP without page errors", () => {
        assert.deepEqual(f.problems, []);
      });

      await t.step("playground's CSP refuses a script injected into the page", async () => {
        const violated = await page.evaluate(`new Promise((resolve) => {
          document.addEventListener("securitypolicyviolation", (event) => {
            resolve(event.violatedDirective);
          }, { once: true });
          const script = document.createElement("script");
          script.textContent = "globalThis.injected = true";
          document.body.append(script);
        })`);
        assert.equal(violated, "script-src-elem");
        assert.equal(await page.evaluate("globalThis.injected"), undefined);
      });
    });
  },
});

Deno.test({
  name: testName("playground lists only the models that can generate text"),
  ignore: SKIP,
  async fn() {
    const provider = scriptedProvider([
      { name: "writer:latest", capabilities: TEXT_ONLY },
      {
        name: "embedder:latest",
        capabilities: { ...TEXT_ONLY, completion: false, embeddings: true },
      },
      { name: "unknown:latest" },
    ]);
    await withScriptedPlayground(provider, async ({ page, url, problems }) => {
      await page.goto(url);
      await page.waitForSelector('#model[data-loads="1"]', { state: "attached" });
      assert.deepEqual(await modelOptions(page), ["writer:latest", "unknown:latest"]);
      assert.equal(
        await text(page, "#model-hint"),
        "(1 model that cannot generate text is not listed)",
      );
      assert.equal(await page.isHidden("#error"), true);

      provider.models = [
        { name: "embedder:latest", capabilities: { ...TEXT_ONLY, completion: false } },
        { name: "other-embedder:latest", capabilities: { ...TEXT_ONLY, completion: false } },
      ];
      await roundTrip(page);
      assert.deepEqual(await modelOptions(page), []);
      assert.equal(
        await text(page, "#model-hint"),
        "(2 models that cannot generate text are not listed)",
      );
      assert.equal(
        await text(page, "#error"),
        "No installed model can generate text (embedder:latest, other-embedder:latest " +
          'cannot): run "ollama pull llama3.2".',
      );
      assert.equal(await page.isDisabled("#generate"), true);
      assert.deepEqual(problems, []);
    });
  },
});

Deno.test({
  name: testName("playground opens the reasoning while a model thinks and folds it for the answer"),
  ignore: SKIP,
  async fn() {
    const provider = scriptedProvider([
      { name: "thinker:latest", capabilities: { ...TEXT_ONLY, thinking: true } },
    ]);
    await withScriptedPlayground(provider, async ({ page, url, problems }) => {
      await page.goto(url);
      await page.waitForSelector('#status[data-state="connected"]');
      await page.waitForSelector('#model[data-loads="1"]', { state: "attached" });

      await generate(page, { model: "thinker:latest", prompt: "why?" });
      const call = await provider.nextCall();
      assert.equal(call.model, "thinker:latest");
      assert.equal(await text(page, "#run-status"), "generating\u2026");
      assert.deepEqual(await thinkingBox(page), { hidden: true, open: false });

      call.push({ type: "thinking", text: "Let me see." });
      await waitForLength(page, "thinking", "Let me see.".length);
      assert.deepEqual(await thinkingBox(page), { hidden: false, open: true });
      assert.equal(await text(page, "#run-status"), "thinking\u2026");
      assert.equal(await text(page, "#output"), "");

      call.push({ type: "text", text: "Because." });
      await waitForLength(page, "output", "Because.".length);
      assert.deepEqual(await thinkingBox(page), { hidden: false, open: false });
      assert.equal(await text(page, "#run-status"), "generating\u2026");

      call.push(done("thinker:latest", "Because.", "Let me see."));
      await runState(page, "done");
      assert.equal(await text(page, "#output"), "Because.");
      assert.equal(await text(page, "#thinking"), "Let me see.");
      assert.deepEqual(await thinkingBox(page), { hidden: false, open: false });

      // A user who opens the box while the model thinks keeps it open for the answer.
      await generate(page, { model: "thinker:latest", prompt: "and then?" });
      const second = await provider.nextCall();
      second.push({ type: "thinking", text: "Hmm." });
      await waitForLength(page, "thinking", "Hmm.".length);
      await page.click("#thinking-box summary");
      await page.click("#thinking-box summary");
      assert.deepEqual(await thinkingBox(page), { hidden: false, open: true });
      second.push({ type: "text", text: "Then this." });
      await waitForLength(page, "output", "Then this.".length);
      assert.deepEqual(await thinkingBox(page), { hidden: false, open: true });

      await page.click("#cancel");
      await runState(page, "cancelled");
      await second.aborted;
      assert.equal(await text(page, "#output"), "Then this.");
      assert.equal(await page.isHidden("#output-note"), true);
      assert.deepEqual(problems, []);
    });
  },
});

Deno.test({
  name: testName("playground asks for a token and connects with one from the field or the URL"),
  ignore: SKIP,
  async fn() {
    const token = "s3cret-Token_1";
    await withPlayground(async (f) => {
      const { page } = f;
      await page.goto(`${f.daemon.url}/`);
      await page.waitForSelector('#status[data-state="disconnected"]');
      assert.equal(await text(page, "#status"), "disconnected (code 1006)");
      assert.match(
        await text(page, "#error"),
        /^Could not connect to ws:\/\/127\.0\.0\.1:\d+\/ws /,
      );
      assert.match(await text(page, "#error"), /if it requires a token, enter it above/);

      await page.fill("#token", "wrong");
      await page.click("#connect");
      await page.waitForSelector('#status[data-state="disconnected"]');
      assert.match(await text(page, "#error"), /^Could not connect/);

      await page.fill("#token", token);
      await page.click("#connect");
      await page.waitForSelector('#status[data-state="connected"]');
      assert.equal(await page.isHidden("#error"), true);

      const fresh = await f.browser.newPage();
      try {
        fresh.setDefaultTimeout(WAIT_MS);
        await fresh.goto(`${f.daemon.url}/#token=${encodeURIComponent(token)}`);
        await fresh.waitForSelector('#status[data-state="connected"]');
        await fresh.waitForSelector('#model option[value="llama3.2:latest"]', {
          state: "attached",
        });
        assert.equal(await fresh.inputValue("#token"), token);
        assert.equal(new URL(fresh.url()).hash, "", "the token is removed from the address");
        await generate(fresh, { prompt: "with a token" });
        await runState(fresh, "done");
        assert.equal(await text(fresh, "#output"), expectedEcho("with a token"));
      } finally {
        await fresh.close();
      }
      // Chromium logs each refused handshake (401) as a console error; nothing else.
      const unexpected = f.problems.filter((p) => !/WebSocket connection to .* failed/.test(p));
      assert.deepEqual(unexpected, []);
    }, { env: { RUNE_TOKEN: token } });
  },
});

const WEATHER_TOOL = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } } },
  },
}];

Deno.test({
  name: testName("playground chats with history, a system prompt and tool calls"),
  ignore: SKIP,
  async fn(t) {
    await withPlayground(async (f) => {
      const { page, double } = f;
      await page.goto(`${f.daemon.url}/`);
      await page.waitForSelector('#chat-model[data-loads="1"]', { state: "attached" });

      await t.step("the chat view opens from its tab with every provider's models", async () => {
        assert.deepEqual(await visibleView(page), ["generate"]);
        await page.click("#tab-chat");
        assert.deepEqual(await visibleView(page), ["chat"]);
        assert.deepEqual(
          await page.evaluate(
            `Array.from(document.querySelectorAll("#chat-model option"), (o) => o.value)`,
          ),
          [
            "ollama/llama3.2:latest",
            "ollama/llava:latest",
            "ollama/qwen3:latest",
            "ollama/all-minilm:latest",
          ],
        );
        assert.equal(await page.isEnabled("#chat-send"), true);
        assert.equal(await page.isDisabled("#chat-cancel"), true);
      });

      await t.step("two turns keep their history and the system prompt", async () => {
        await page.click("#chat-settings summary");
        await page.fill("#chat-system", "Be brief.");
        await chatSend(page, "hello");
        await chatState(page, "done");
        await chatSend(page, "how are you?");
        await chatState(page, "done");
        assert.deepEqual(await chatLog(page), [
          { role: "user", state: "done", who: "You", text: "hello", calls: [] },
          {
            role: "assistant",
            state: "done",
            who: "ollama/llama3.2:latest",
            text: "Echo: hello",
            calls: [],
          },
          { role: "user", state: "done", who: "You", text: "how are you?", calls: [] },
          {
            role: "assistant",
            state: "done",
            who: "ollama/llama3.2:latest",
            text: "Echo: how are you?",
            calls: [],
          },
        ]);
        assert.deepEqual(lastMessages(double).map(({ role, content }) => ({ role, content })), [
          { role: "system", content: "Be brief." },
          { role: "user", content: "hello" },
          { role: "assistant", content: "Echo: hello" },
          { role: "user", content: "how are you?" },
        ]);
        assert.equal(await text(page, "#chat-status"), "done (4 tokens)");
      });

      await t.step("a reply streams in and Cancel drops the turn from the history", async () => {
        double.tokenDelayMs = STALL_MS;
        await chatSend(page, "a long story");
        await waitForText(page, "#chat-log li:last-child .text", "Echo:".length);
        assert.equal(await text(page, "#chat-log li:last-child .text"), "Echo:");
        assert.equal(await page.getAttribute("#chat-status", "data-state"), "generating");
        assert.equal(double.openStreams, 1);
        await page.click("#chat-cancel");
        await chatState(page, "cancelled");
        await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
        const log = await chatLog(page);
        assert.deepEqual(log.slice(-2).map((e) => [e.role, e.state, e.text]), [
          ["user", "cancelled", "a long story"],
          ["assistant", "cancelled", "Echo:"],
        ]);
        assert.equal(await page.inputValue("#chat-input"), "a long story");
        double.tokenDelayMs = 0;
        await chatSend(page, "short one");
        await chatState(page, "done");
        // The cancelled turn is not part of the conversation.
        assert.deepEqual(lastMessages(double).slice(1).map((m) => m.content), [
          "hello",
          "Echo: hello",
          "how are you?",
          "Echo: how are you?",
          "short one",
        ]);
      });

      await t.step("a tool call is shown, and its result goes back to the model", async () => {
        await page.click("#chat-new");
        assert.deepEqual(await chatLog(page), []);
        await page.fill("#chat-tools", JSON.stringify(WEATHER_TOOL));
        await chatSend(page, "What is the weather in Paris?");
        await chatState(page, "tool");
        const [, reply] = await chatLog(page);
        assert.deepEqual(reply, {
          role: "assistant",
          state: "done",
          who: "ollama/llama3.2:latest",
          text: "",
          calls: ['Tool call: get_weather({"city":"Paris"})'],
        });
        assert.equal(
          await text(page, "#chat-input-label"),
          'Result of get_weather({"city":"Paris"})',
        );
        assert.equal(await text(page, "#chat-send"), "Send result");
        const chats = double.requests.filter((r) => r.path === "/api/chat").length;
        double.scriptNext({ content: "It is sunny in Paris." });
        await chatSend(page, "sunny, 21 C");
        await chatState(page, "done");
        assert.equal(
          double.requests.filter((r) => r.path === "/api/chat").length,
          chats + 1,
        );
        const sent = lastMessages(double);
        assert.deepEqual(sent.map((m) => m.role), ["system", "user", "assistant", "tool"]);
        const assistant = sent[2] as { tool_calls: { id: string; function: unknown }[] };
        assert.deepEqual(assistant.tool_calls.map((c) => c.function), [
          { name: "get_weather", arguments: { city: "Paris" } },
        ]);
        assert.equal(sent[3].content, "sunny, 21 C");
        assert.equal(sent[3].tool_name, "get_weather");
        assert.equal(sent[3].tool_call_id, assistant.tool_calls[0].id);
        assert.deepEqual((await chatLog(page)).map((e) => [e.role, e.who, e.text]), [
          ["user", "You", "What is the weather in Paris?"],
          ["assistant", "ollama/llama3.2:latest", ""],
          ["tool", 'Result of get_weather({"city":"Paris"})', "sunny, 21 C"],
          ["assistant", "ollama/llama3.2:latest", "It is sunny in Paris."],
        ]);
        assert.equal(await text(page, "#chat-input-label"), "Message");
      });

      await t.step("invalid tools JSON is refused before anything is sent", async () => {
        const before = double.requests.length;
        await page.fill("#chat-tools", "[{");
        await chatSend(page, "hi");
        await page.waitForSelector("#error:not([hidden])", { state: "attached" });
        assert.match(await text(page, "#error"), /^The tools are not valid JSON: /);
        assert.equal(double.requests.length, before);
        assert.equal(await page.inputValue("#chat-input"), "hi");
      });

      await t.step("the chat view runs under the CSP without page errors", () => {
        assert.deepEqual(f.problems, []);
      });
    });
  },
});

Deno.test({
  name: testName("playground compares models side by side, streaming, with their timings"),
  ignore: SKIP,
  async fn(t) {
    await withPlayground(async (f) => {
      const { page, double } = f;
      await page.goto(`${f.daemon.url}/`);
      await page.waitForSelector('#chat-model[data-loads="1"]', { state: "attached" });
      await page.click("#tab-compare");
      assert.deepEqual(await visibleView(page), ["compare"]);

      await t.step("two models stream at once, and Cancel stops both upstream", async () => {
        assert.deepEqual(
          await Promise.all([1, 2, 3, 4].map((n) => page.inputValue(`#compare-model-${n}`))),
          ["ollama/llama3.2:latest", "ollama/llava:latest", "", ""],
        );
        double.tokenDelayMs = STALL_MS;
        await page.fill("#compare-prompt", "a long story");
        await page.click("#compare-run");
        await waitForText(page, "#compare-answer-1", "Echo:".length);
        await waitForText(page, "#compare-answer-2", "Echo:".length);
        assert.equal(double.openStreams, 2);
        for (const n of [1, 2]) {
          assert.equal(await text(page, `#compare-answer-${n}`), "Echo:");
          assert.match(
            await text(page, `#compare-stats-${n}`),
            /^first token after \d+ ms · streaming…$/,
          );
        }
        await page.click("#compare-cancel");
        await compareState(page, "cancelled");
        await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
        assert.deepEqual(
          await page.evaluate(
            `Array.from(document.querySelectorAll("#compare-results .column"), (c) => c.dataset.state)`,
          ),
          ["cancelled", "cancelled"],
        );
        double.tokenDelayMs = 0;
      });

      await t.step("four columns end with their timings, or their error", async () => {
        await page.selectOption("#compare-model-3", "ollama/qwen3:latest");
        await page.evaluate(
          `document.getElementById("compare-model-4").add(new Option("nope", "nope"))`,
        );
        await page.selectOption("#compare-model-4", "nope");
        await page.fill("#compare-prompt", "hello there");
        await page.click("#compare-run");
        await compareState(page, "done");
        const columns = await page.evaluate(`Array.from(
          document.querySelectorAll("#compare-results .column"),
          (c) => ({
            model: c.dataset.model,
            state: c.dataset.state,
            answer: c.querySelector(".answer").textContent,
            stats: c.querySelector(".stats").textContent,
          }),
        )`) as { model: string; state: string; answer: string; stats: string }[];
        assert.deepEqual(columns.map((c) => [c.model, c.state, c.answer]), [
          ["ollama/llama3.2:latest", "done", "Echo: hello there"],
          ["ollama/llava:latest", "done", "Echo: hello there"],
          ["ollama/qwen3:latest", "done", "Echo: hello there"],
          ["nope", "failed", ""],
        ]);
        assert.match(
          columns[0].stats,
          /^first token \d+ ms · \d+\.\d tokens\/s · 3 tokens · \d+ ms in all$/,
        );
        assert.match(
          columns[2].stats,
          /^first token \d+ ms · \d+\.\d tokens\/s · 12 tokens · \d+ ms in all$/,
        );
        assert.equal(
          columns[3].stats,
          `error: Model "nope" is not installed on Ollama at ${double.host}: run "ollama pull ` +
            `nope", or pick one from "rune ai list".`,
        );
        // Side by side: one row, left to right.
        const boxes = await Promise.all(
          [1, 2, 3, 4].map((n) =>
            page.locator(`#compare-results .column:nth-child(${n})`).boundingBox()
          ),
        );
        for (let i = 1; i < boxes.length; i++) {
          assert.equal(boxes[i]!.y, boxes[0]!.y);
          assert.ok(boxes[i]!.x > boxes[i - 1]!.x, JSON.stringify(boxes));
        }
        const sent = double.requests.filter((r) => r.path === "/api/generate").slice(-4);
        assert.deepEqual(sent.map((r) => (r.body as { model: string }).model).toSorted(), [
          "llama3.2:latest",
          "llava:latest",
          "nope",
          "qwen3:latest",
        ]);
      });

      await t.step("the same model twice is refused", async () => {
        await page.selectOption("#compare-model-2", "ollama/llama3.2:latest");
        await page.click("#compare-run");
        await page.waitForSelector("#error:not([hidden])", { state: "attached" });
        assert.equal(
          await text(page, "#error"),
          "Pick each model once: ollama/llama3.2:latest, ollama/llama3.2:latest, " +
            "ollama/qwen3:latest, nope.",
        );
      });

      await t.step("the compare view runs under the CSP without page errors", () => {
        assert.deepEqual(f.problems, []);
      });
    });
  },
});
