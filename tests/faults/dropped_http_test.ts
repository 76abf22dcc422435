/**
 * Streamable HTTP clients that drop their TCP connection in the middle of a
 * long generate, against the real daemon: a legacy session and a
 * 2026-07-28 request, each with a progress token and without one. The body
 * follows the headers in a second write, as `fetch` sends it: Deno 2.9
 * then never aborts `request.signal` for a dropped client, so only a
 * response already started (SSE) lets Rune notice (see
 * `streamable_http.ts`). Nobody can receive the result, so the upstream
 * stream must be aborted promptly, the session's in-flight slot (legacy)
 * or the request's session slot (2026-07-28) must be released, and the
 * idle sweep must then be able to close the legacy session.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Daemon, startDaemon } from "../daemon.ts";
import { resultText, rpcReply } from "../mcp_calls.ts";
import { startOllamaDouble } from "../ollama_double.ts";
import { writeAll } from "../transports/raw_http.ts";
import { INITIALIZED, initializeRequest, within } from "./support.ts";

const STEP_MS = 30_000;
/**
 * How long the upstream stream may outlive the dropped connection. The goal
 * is under a second (measured: tens of milliseconds); the bound leaves room
 * for a loaded machine.
 */
const ABORT_BOUND_MS = 3_000;
const encoder = new TextEncoder();

const MODERN_META = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientInfo": { name: "dropper", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

function generate(id: number, modern: boolean, progress: boolean, numPredict: number) {
  const meta = { ...(progress && { progressToken: `p-${id}` }), ...(modern ? MODERN_META : {}) };
  return {
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "drop me", options: { num_predict: numPredict } },
      ...(Object.keys(meta).length > 0 && { _meta: meta }),
    },
  };
}

function headersFor(modern: boolean, session?: string): Record<string, string> {
  return modern
    ? {
      "mcp-method": "tools/call",
      "mcp-name": "ai_ollama_generate",
      "mcp-protocol-version": "2026-07-28",
    }
    : { "mcp-session-id": session!, "mcp-protocol-version": "2025-06-18" };
}

/** POSTs `body` on a raw connection, to be dropped by the caller. */
async function rawPost(
  port: number,
  headers: Record<string, string>,
  body: unknown,
): Promise<Deno.Conn> {
  const text = JSON.stringify(body);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    "POST /mcp HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "Content-Type: application/json",
    "Accept: application/json, text/event-stream",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${encoder.encode(text).length}`,
  ];
  // Headers and body in two writes, as `fetch` sends them.
  await writeAll(conn, encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
  await new Promise((resolve) => setTimeout(resolve, 20));
  await writeAll(conn, encoder.encode(text));
  return conn;
}

async function post(url: string, headers: Record<string, string>, body: unknown) {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers,
    },
    body: JSON.stringify(body),
  });
  const reply = rpcReply(response.headers.get("content-type"), await response.text());
  return { status: response.status, reply };
}

async function openSession(daemon: Daemon): Promise<string> {
  const opened = await fetch(daemon.mcpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify(initializeRequest(1)),
  });
  await opened.body?.cancel();
  const id = opened.headers.get("mcp-session-id")!;
  const done = await fetch(daemon.mcpUrl, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headersFor(false, id),
    },
    body: JSON.stringify(INITIALIZED),
  });
  await done.body?.cancel();
  return id;
}

Deno.test("a dropped HTTP connection aborts its upstream call and frees its slot, in both eras, with and without progress", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 20 });
  // One request in flight per session and one slot in all: a call that stayed counted
  // after its connection dropped would make the next request fail (429 or 503).
  const daemon = await startDaemon(double.host, [
    "--max-in-flight",
    "1",
    "--max-sessions",
    "1",
    "--http-idle-timeout",
    "1",
  ]);
  const timings: string[] = [];
  try {
    for (const modern of [false, true]) {
      for (const progress of [true, false]) {
        const what = `${modern ? "2026-07-28 request" : "legacy session"}, ${
          progress ? "with a progress token" : "no progress token"
        }`;
        const session = modern ? undefined : await openSession(daemon);
        const conn = await rawPost(
          daemon.port,
          headersFor(modern, session),
          generate(7, modern, progress, 100_000),
        );
        await within(STEP_MS, `${what}: the upstream stream`, double.waitForOpenStreams(1));
        const dropped = performance.now();
        conn.close();
        await within(ABORT_BOUND_MS, `${what}: the upstream abort`, double.waitForOpenStreams(0));
        timings.push(
          `${what}: upstream aborted ${(performance.now() - dropped).toFixed(0)} ms after the drop`,
        );

        // The slot is free: the same session (or a new request) is served at once.
        const next = await post(
          daemon.mcpUrl,
          headersFor(modern, session),
          generate(8, modern, progress, 3),
        );
        assert.equal(next.status, 200, `${what}: ${JSON.stringify(next.reply)}`);
        assert.equal(resultText(next.reply.result), "Echo: drop me", what);

        if (!modern) {
          // Nothing is in flight any more, so the idle sweep closes the session.
          await within(
            STEP_MS,
            `${what}: the idle sweep`,
            daemon.waitForLog(new RegExp(`closing idle HTTP session ${session}`)),
          );
          const health = await (await fetch(`${daemon.url}/healthz`)).json();
          assert.equal(health.sessions.http, 0, what);
        }
      }
    }
    console.log(timings.join("\n"));
  } finally {
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0);
  }
  assert.doesNotMatch(daemon.stderr(), /request failed|^rune error:|^\s+at /m);
});
