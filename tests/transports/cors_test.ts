/**
 * CORS on `/mcp` in a real browser: a page served from an allowed origin
 * uses Streamable HTTP with `fetch` in headless Chromium, in both protocol
 * eras, and a page from a foreign origin is refused.
 *
 * Each test starts the Ollama double, a tiny static page server on
 * 127.0.0.1 (port 0, so a different origin than the daemon's), the real
 * daemon, and Chromium. Chromium resolves the made-up names
 * `app.rune.test` and `evil.rune.test` to 127.0.0.1
 * (`--host-resolver-rules`), which gives pages origins that are not
 * localhost without leaving the machine: Rune counts every 127.x.x.x
 * address as localhost, so only a name can stand for a remote app.
 *
 * The page's code is a string evaluated in the page: the test runs under
 * Deno's types, which have no DOM.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { chromiumTestName, launchChromium, SKIP_CHROMIUM } from "../chromium.ts";
import { type Daemon, startDaemon } from "../daemon.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { VERSION } from "../../src/version.ts";

/** Names Chromium resolves to 127.0.0.1 in these tests. */
const APP_HOST = "app.rune.test";
const FOREIGN_HOST = "evil.rune.test";

/** The per-request `_meta` envelope of the 2026-07-28 era. */
const ENVELOPE = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientInfo": { name: "cors-page", version: "1.0.0" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

const JSON_AND_SSE = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

/**
 * In the page: `mcpFetch(url, init)` runs `fetch` and reads the reply the
 * way a browser app must (only CORS-exposed headers are visible), parsing
 * a JSON body or every `data:` of an SSE stream; a refused fetch resolves
 * to `{ failed }` instead of throwing.
 */
const PAGE_HELPERS = `
globalThis.mcpFetch = async (url, init) => {
  const request = { ...init };
  if (request.body !== undefined && typeof request.body !== "string") {
    request.body = JSON.stringify(request.body);
  }
  let response;
  try {
    response = await fetch(url, request);
  } catch (error) {
    return { failed: error.name + ": " + error.message };
  }
  const reply = {
    status: response.status,
    type: response.type,
    sessionId: response.headers.get("mcp-session-id"),
    contentType: response.headers.get("content-type"),
    // Sent by rune on every SSE reply, but not exposed: the page must not see it.
    accelBuffering: response.headers.get("x-accel-buffering"),
    messages: [],
  };
  if (response.type === "opaque") return reply;
  if ((reply.contentType ?? "").startsWith("text/event-stream")) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += value.replaceAll("\\r\\n", "\\n");
      let end;
      while ((end = buffer.indexOf("\\n\\n")) >= 0) {
        const data = buffer.slice(0, end).split("\\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\\n");
        buffer = buffer.slice(end + 2);
        if (data) reply.messages.push(JSON.parse(data));
      }
    }
  } else {
    const text = await response.text();
    if (text) reply.messages.push(JSON.parse(text));
  }
  return reply;
};

// Starts a call, resolves with the first event of its SSE stream, and keeps
// reading until abortLong() aborts the fetch (resolving to how reading ended).
globalThis.startLong = async (url, init) => {
  const controller = new AbortController();
  const response = await fetch(url, {
    ...init,
    body: JSON.stringify(init.body),
    signal: controller.signal,
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let first = "";
  while (!first.includes("\\n\\n")) {
    const { done, value } = await reader.read();
    if (done) break;
    first += value;
  }
  const rest = (async () => {
    try {
      while (!(await reader.read()).done);
      return "ended";
    } catch (error) {
      return error.name;
    }
  })();
  globalThis.abortLong = async () => {
    controller.abort();
    return await rest;
  };
  return { status: response.status, first: first.slice(0, first.indexOf("\\n\\n")) };
};
`;

/** What `mcpFetch` resolves to in the page. */
interface PageReply {
  failed?: string;
  status?: number;
  type?: string;
  sessionId?: string | null;
  contentType?: string | null;
  accelBuffering?: string | null;
  messages?: Record<string, unknown>[];
}

interface PageRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  mode?: string;
}

/** Runs `mcpFetch` in the page. */
async function pageFetch(page: Page, url: string, init: PageRequest): Promise<PageReply> {
  return await page.evaluate(`mcpFetch(${JSON.stringify(url)}, ${JSON.stringify(init)})`);
}

/** A static page server on 127.0.0.1: every path answers a blank page. */
function startPageServer(): { port: number; close: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("<!doctype html><title>cors page</title><p>a page</p>", {
        headers: { "content-type": "text/html; charset=utf-8" },
      }),
  );
  return { port: server.addr.port, close: () => server.shutdown() };
}

interface Fixture {
  double: OllamaDouble;
  daemon: Daemon;
  page: Page;
  /** The page's origin, e.g. `http://app.rune.test:PORT`. */
  origin: string;
}

/**
 * Starts the double, the page server, the daemon (`daemonArgs` gets the
 * page's origin) and Chromium, opens the page at `pageHost`, runs `fn`, and
 * always cleans up.
 */
async function withPage(
  pageHost: string,
  fn: (f: Fixture) => Promise<void>,
  options: { daemonArgs?: (origin: string) => string[]; env?: Record<string, string> } = {},
): Promise<void> {
  const double = await startOllamaDouble();
  const pages = startPageServer();
  const origin = `http://${pageHost}:${pages.port}`;
  let daemon: Daemon | undefined;
  let browser: Browser | undefined;
  try {
    daemon = await startDaemon(double.host, options.daemonArgs?.(origin) ?? [], {
      env: options.env,
    });
    browser = await launchChromium([
      `--host-resolver-rules=MAP ${APP_HOST} 127.0.0.1, MAP ${FOREIGN_HOST} 127.0.0.1`,
    ]);
    const page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    const response = await page.goto(`${origin}/`);
    assert.equal(response?.status(), 200);
    assert.equal(await page.evaluate("location.origin"), origin);
    await page.evaluate(PAGE_HELPERS);
    await fn({ double, daemon, page, origin });
  } catch (error) {
    if (daemon) console.error(`daemon stderr:\n${daemon.stderr()}`);
    throw error;
  } finally {
    await browser?.close();
    await daemon?.stop();
    await pages.close();
    await double.close();
  }
}

/** The result of the last message of a reply (the JSON-RPC response). */
function lastResult(reply: PageReply): Record<string, unknown> {
  const message = reply.messages?.at(-1);
  assert.ok(message && "result" in message, JSON.stringify(reply));
  return message.result as Record<string, unknown>;
}

/** Progress notifications of a reply, as `[progress, message]` pairs. */
function progressOf(reply: PageReply, token: string): [number, string][] {
  return (reply.messages ?? [])
    .filter((m) => m.method === "notifications/progress")
    .map((m) => m.params as { progressToken: string; progress: number; message: string })
    .map((p) => {
      assert.equal(p.progressToken, token);
      return [p.progress, p.message];
    });
}

/** Checks a streamed generation: progress 1..n whose deltas add up to the result text. */
function assertStreamed(reply: PageReply, token: string, text: string): void {
  assert.equal(reply.status, 200, JSON.stringify(reply));
  assert.equal(reply.contentType, "text/event-stream");
  assert.equal(reply.accelBuffering, null, "only the exposed headers are visible");
  const progress = progressOf(reply, token);
  assert.deepEqual(progress.map(([n]) => n), progress.map((_, i) => i + 1));
  assert.equal(progress.map(([, delta]) => delta).join(""), text);
  // Deltas that arrive in one upstream read share a notification, so only their order and
  // their sum are fixed, and that none is empty.
  assert.ok(progress.length > 0, "at least one progress notification");
  assert.ok(progress.every(([, delta]) => delta !== ""), "no empty delta");
  const result = lastResult(reply);
  assert.deepEqual(result.content, [{ type: "text", text }]);
}

/**
 * Starts a long streamed generation from the page, aborts its fetch once the
 * first progress arrived, and checks that rune closed the upstream stream.
 */
async function assertAbortCloses(
  f: Fixture,
  { headers, meta }: { headers: Record<string, string>; meta: Record<string, unknown> },
): Promise<void> {
  const started = await f.page.evaluate(
    `startLong(${JSON.stringify(`${f.daemon.url}/mcp`)}, ${
      JSON.stringify({
        method: "POST",
        headers,
        body: {
          jsonrpc: "2.0",
          id: 9,
          method: "tools/call",
          params: {
            name: "ai_ollama_generate",
            arguments: { model: "llama3.2", prompt: "x", options: { num_predict: 100_000 } },
            _meta: { ...meta, progressToken: "long" },
          },
        },
      })
    })`,
  ) as { status: number; first: string };
  assert.equal(started.status, 200);
  const [event, data] = started.first.split("\n");
  assert.equal(event, "event: message");
  assert.deepEqual(JSON.parse(data.replace(/^data: /, "")), {
    jsonrpc: "2.0",
    method: "notifications/progress",
    params: { progressToken: "long", progress: 1, message: "Echo:" },
  });
  assert.equal(f.double.openStreams, 1);
  assert.equal(await f.page.evaluate("abortLong()"), "AbortError");
  await f.double.waitForOpenStreams(0);
}

/**
 * What an app on an allowed origin does over Streamable HTTP: the
 * 2026-07-28 discover and a streamed `tools/call`, then a 2025 session with
 * a streamed call, and the end of the session; in both eras, aborting a
 * call's fetch stops the generation. `auth` is added to every
 * request (an `Authorization` header, which needs the preflight too).
 */
async function assertAppWorks(f: Fixture, auth: Record<string, string> = {}): Promise<void> {
  const url = `${f.daemon.url}/mcp`;
  const modern = { ...JSON_AND_SSE, ...auth, "mcp-protocol-version": "2026-07-28" };

  // 2026-07-28: discover, with the standard headers (each needs the preflight's grant).
  const discover = await pageFetch(f.page, url, {
    method: "POST",
    headers: { ...modern, "mcp-method": "server/discover" },
    body: { jsonrpc: "2.0", id: 1, method: "server/discover", params: { _meta: ENVELOPE } },
  });
  assert.equal(discover.status, 200, JSON.stringify(discover));
  assert.equal(discover.contentType, "application/json");
  const discovered = lastResult(discover);
  assert.deepEqual(discovered.supportedVersions, ["2026-07-28"]);
  assert.deepEqual(discovered._meta, {
    "io.modelcontextprotocol/serverInfo": { name: "rune", title: "Rune", version: VERSION },
  });

  // 2026-07-28: a tools/call streaming its progress over SSE.
  const modernCall = await pageFetch(f.page, url, {
    method: "POST",
    headers: { ...modern, "mcp-method": "tools/call", "mcp-name": "ai_ollama_generate" },
    body: {
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: {
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "hello from a page" },
        _meta: { ...ENVELOPE, progressToken: "page-1" },
      },
    },
  });
  assertStreamed(modernCall, "page-1", "Echo: hello from a page");
  assert.equal(modernCall.sessionId, null, "no session in the stateless era");
  await assertAbortCloses(f, {
    headers: { ...modern, "mcp-method": "tools/call", "mcp-name": "ai_ollama_generate" },
    meta: ENVELOPE,
  });

  // 2025: initialize; the page reads the session id because rune exposes the header.
  const init = await pageFetch(f.page, url, {
    method: "POST",
    headers: { ...JSON_AND_SSE, ...auth },
    body: {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-11-25",
        capabilities: {},
        clientInfo: { name: "cors-page", version: "1.0.0" },
      },
    },
  });
  assert.equal(init.status, 200, JSON.stringify(init));
  assert.match(
    init.sessionId ?? "",
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  );
  assert.equal(lastResult(init).protocolVersion, "2025-11-25");
  const session = {
    ...JSON_AND_SSE,
    ...auth,
    "mcp-session-id": init.sessionId!,
    "mcp-protocol-version": "2025-11-25",
  };
  const initialized = await pageFetch(f.page, url, {
    method: "POST",
    headers: session,
    body: { jsonrpc: "2.0", method: "notifications/initialized" },
  });
  assert.equal(initialized.status, 202, JSON.stringify(initialized));

  const legacyCall = await pageFetch(f.page, url, {
    method: "POST",
    headers: session,
    body: {
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: {
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "a session from a page" },
        _meta: { progressToken: "page-2" },
      },
    },
  });
  assertStreamed(legacyCall, "page-2", "Echo: a session from a page");
  await assertAbortCloses(f, { headers: session, meta: {} });

  // DELETE is not a simple method: the preflight must grant it too.
  const ended = await pageFetch(f.page, url, { method: "DELETE", headers: session });
  assert.equal(ended.status, 200, JSON.stringify(ended));
  const gone = await pageFetch(f.page, url, {
    method: "POST",
    headers: session,
    body: { jsonrpc: "2.0", id: 3, method: "tools/list" },
  });
  assert.equal(gone.status, 404, JSON.stringify(gone));

  // Tool-argument mirrors (Mcp-Param-*) are granted; other headers are not.
  const param = await pageFetch(f.page, url, {
    method: "POST",
    headers: { ...modern, "mcp-method": "server/discover", "mcp-param-region": "eu" },
    body: { jsonrpc: "2.0", id: 4, method: "server/discover", params: { _meta: ENVELOPE } },
  });
  assert.equal(param.status, 200, JSON.stringify(param));
  const custom = await pageFetch(f.page, url, {
    method: "POST",
    headers: { ...modern, "mcp-method": "server/discover", "x-custom": "1" },
    body: { jsonrpc: "2.0", id: 5, method: "server/discover", params: { _meta: ENVELOPE } },
  });
  assert.deepEqual(custom, { failed: "TypeError: Failed to fetch" });
}

Deno.test({
  name: chromiumTestName(
    "a page on another localhost port uses /mcp through CORS in Chromium, in both eras",
  ),
  ignore: SKIP_CHROMIUM,
  async fn() {
    await withPage("127.0.0.1", async (f) => {
      assert.notEqual(new URL(f.origin).port, String(f.daemon.port));
      await assertAppWorks(f);
    });
  },
});

Deno.test({
  name: chromiumTestName(
    "a page on an --allow-origin origin uses /mcp with a token through CORS in Chromium",
  ),
  ignore: SKIP_CHROMIUM,
  async fn() {
    const token = "cors-Token_1";
    await withPage(APP_HOST, async (f) => {
      // Without the token: refused, and the refusal is readable by the allowed page.
      const refused = await pageFetch(f.page, `${f.daemon.url}/mcp`, {
        method: "POST",
        headers: { ...JSON_AND_SSE, "mcp-protocol-version": "2026-07-28" },
        body: { jsonrpc: "2.0", id: 1, method: "server/discover", params: { _meta: ENVELOPE } },
      });
      assert.equal(refused.status, 401);
      assert.match(
        (refused.messages?.[0]?.error as { message: string }).message,
        /^A bearer token is required/,
      );
      await assertAppWorks(f, { authorization: `Bearer ${token}` });
    }, {
      daemonArgs: (origin) => ["--allow-origin", origin],
      env: { RUNE_TOKEN: token },
    });
  },
});

Deno.test({
  name: chromiumTestName(
    "a page on a foreign origin is refused, preflighted or not, and rune logs it",
  ),
  ignore: SKIP_CHROMIUM,
  async fn() {
    await withPage(FOREIGN_HOST, async (f) => {
      const url = `${f.daemon.url}/mcp`;
      // A request that needs a preflight: the preflight gets 403 without CORS headers.
      const preflighted = await pageFetch(f.page, url, {
        method: "POST",
        headers: { ...JSON_AND_SSE, "mcp-protocol-version": "2026-07-28" },
        body: { jsonrpc: "2.0", id: 1, method: "server/discover", params: { _meta: ENVELOPE } },
      });
      assert.deepEqual(preflighted, { failed: "TypeError: Failed to fetch" });
      await f.daemon.waitForLog(/refused OPTIONS \/mcp: 403$/);

      // A simple request skips the preflight and reaches the daemon, which refuses it too:
      // no tool runs on behalf of a foreign page.
      const simple = await pageFetch(f.page, url, {
        method: "POST",
        mode: "no-cors",
        headers: { "content-type": "text/plain" },
        body: {
          jsonrpc: "2.0",
          id: 2,
          method: "tools/call",
          params: {
            name: "ai_ollama_generate",
            arguments: { model: "llama3.2", prompt: "steal" },
            _meta: ENVELOPE,
          },
        },
      });
      assert.equal(simple.type, "opaque", JSON.stringify(simple));
      await f.daemon.waitForLog(/refused POST \/mcp: 403$/);
      assert.deepEqual(
        f.double.requests.filter((r) => r.path === "/api/generate"),
        [],
        "nothing reached Ollama",
      );
    }, { daemonArgs: () => ["--allow-origin", `http://${APP_HOST}:1`] });
  },
});
