/**
 * End-to-end tests of the playground page (`GET /`) in headless Chromium.
 *
 * Each test starts the Ollama double and a real `rune serve --port 0`, then
 * drives Debian's `/usr/bin/chromium` through `playwright-core` (which
 * never downloads a browser here): the page must connect over WebSocket
 * MCP, list the models, stream a generation token by token, cancel one
 * (closing the upstream Ollama stream), show errors plainly and work under
 * the page's Content-Security-Policy. The tests are ignored, with the
 * reason in their names, when `/usr/bin/chromium` is missing.
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

/** Everything a test needs: the double, the daemon, a browser and a page. */
interface Fixture {
  double: OllamaDouble;
  daemon: Daemon;
  browser: Browser;
  page: Page;
  /** Page errors, console errors and CSP violations seen so far. */
  problems: string[];
}

/** Starts the double, the daemon and Chromium, runs `fn`, and always cleans up. */
async function withPlayground(
  fn: (f: Fixture) => Promise<void>,
  options: { env?: Record<string, string> } = {},
): Promise<void> {
  const double = await startOllamaDouble();
  let daemon: Daemon | undefined;
  let browser: Browser | undefined;
  try {
    daemon = await startDaemon(double.host, [], { env: options.env });
    // launch() gives the browser a fresh temporary profile and deletes it on close.
    const chromium = await loadChromium();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    await fn({ double, daemon, browser, page, problems });
  } catch (error) {
    if (daemon) console.error(`daemon stderr:\n${daemon.stderr()}`);
    throw error;
  } finally {
    await browser?.close();
    await daemon?.stop();
    await double.close();
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
 * Resolves once `#output` holds at least `length` characters. (The page's
 * CSP forbids `eval`, so `page.waitForFunction` with a string cannot poll;
 * a MutationObserver installed through `page.evaluate` can.)
 */
async function waitForOutputLength(page: Page, length: number): Promise<void> {
  await page.evaluate(`new Promise((resolve, reject) => {
    const output = document.getElementById("output");
    const timer = setTimeout(() => {
      observer.disconnect();
      reject(new Error("#output stayed shorter than ${length} characters"));
    }, ${WAIT_MS});
    const check = () => {
      if (output.textContent.length < ${length}) return;
      clearTimeout(timer);
      observer.disconnect();
      resolve();
    };
    const observer = new MutationObserver(check);
    observer.observe(output, { childList: true, characterData: true, subtree: true });
    check();
  })`);
}

async function text(page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector)) ?? "";
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

Deno.test({
  name: testName("playground connects, streams, cancels and shows errors in Chromium"),
  ignore: SKIP,
  async fn(t) {
    await withPlayground(async (f) => {
      const { page, double } = f;

      await t.step("playground connects and lists the models", async () => {
        const response = await page.goto(`${f.daemon.url}/`);
        assert.equal(response?.status(), 200);
        assert.match(response?.headers()["content-security-policy"] ?? "", /default-src 'none'/);
        await page.waitForSelector('#status[data-state="connected"]');
        assert.match(await text(page, "#status"), /^connected to rune /);
        await page.waitForSelector('#model option[value="llama3.2:latest"]', {
          state: "attached",
        });
        const models = await page.evaluate(
          `Array.from(document.querySelectorAll("#model option"), (o) => o.value)`,
        );
        assert.deepEqual(models, [
          "llama3.2:latest",
          "llava:latest",
          "qwen3:latest",
          "all-minilm:latest",
        ]);
        assert.equal(await page.isEnabled("#generate"), true);
        assert.equal(await page.isDisabled("#cancel"), true);
        assert.equal(await page.isHidden("#error"), true);
      });

      await t.step("playground streams a generation token by token", async () => {
        double.tokenDelayMs = 15;
        const prompt = "Hello from the playground";
        await recordOutputLengths(page);
        await generate(page, { model: "llama3.2:latest", prompt, maxTokens: "24" });
        await runState(page, "done");
        const expected = expectedEcho(prompt, 24);
        assert.equal(await text(page, "#output"), expected);
        assert.match(await text(page, "#run-status"), /^done \(length, 24 tokens, \d+ ms\)$/);
        const lengths = await outputLengths(page);
        // The last change is the final result replacing the streamed text.
        const streamed = lengths.slice(0, -1).filter(([length]) => length > 0);
        assert.ok(
          streamed.length >= 5,
          `output grew in ${streamed.length} steps: ${JSON.stringify(lengths)}`,
        );
        for (let i = 1; i < streamed.length; i++) {
          assert.ok(streamed[i][0] > streamed[i - 1][0], "the output only grows");
        }
        assert.ok(streamed.every(([, state]) => state === "generating"), "grew while generating");
        assert.ok(streamed.at(-1)![0] <= expected.length);
        assert.equal(lengths.at(-1)![0], expected.length);
      });

      await t.step("playground cancels a long generation and Ollama's stream closes", async () => {
        double.tokenDelayMs = 20;
        const prompt = "Tell me a very long story";
        const full = expectedEcho(prompt, 100_000);
        await generate(page, { prompt, maxTokens: "100000" });
        await waitForOutputLength(page, 40);
        assert.equal(double.openStreams, 1);
        await page.click("#cancel");
        const atCancel = await text(page, "#output");
        await runState(page, "cancelled");
        assert.equal(await text(page, "#run-status"), "cancelled");
        await double.waitForOpenStreams(0, AbortSignal.timeout(WAIT_MS));
        // Anything the daemon sent before the upstream closed has arrived after a round trip.
        await roundTrip(page);
        assert.equal(await text(page, "#output"), atCancel, "the output stopped growing");
        assert.ok(full.startsWith(atCancel), "the output is a prefix of the stream");
        assert.ok(atCancel.length < 1000, `cancelled early: ${atCancel.length} characters`);
        assert.equal(await page.isHidden("#error"), true);
        assert.equal(await page.isEnabled("#generate"), true);
        assert.equal(await page.isDisabled("#cancel"), true);

        double.tokenDelayMs = 0;
        await generate(page, { prompt: "after the cancel" });
        await runState(page, "done");
        assert.equal(await text(page, "#output"), expectedEcho("after the cancel"));
      });

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
