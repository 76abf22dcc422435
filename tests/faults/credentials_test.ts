/**
 * Credentials against the real daemon: the failed-authentication limit per
 * remote address (sequential and in a concurrent burst, logged once), and
 * Streamable HTTP sessions bound to the token that opened them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startOllamaDouble } from "../ollama_double.ts";
import { initializeRequest, spawnDaemon } from "./support.ts";
import { tokenFile } from "./token_file.ts";

const GOOD = "good-token-1";
const OTHER = "good-token-2";

function post(url: string, token: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `Bearer ${token}`,
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

const REFUSAL_LOG = /too many failed authentications from 127\.0\.0\.1/g;

Deno.test("after 10 wrong tokens an address gets 429 with Retry-After, whatever it presents, logged once", async () => {
  const double = await startOllamaDouble();
  const tokens = await tokenFile([GOOD]);
  const daemon = await spawnDaemon(double.host, { args: ["--token-file", tokens] });
  try {
    for (let i = 1; i <= 10; i++) {
      const response = await post(daemon.mcpUrl, `wrong-${i}`, initializeRequest(i));
      assert.equal(response.status, 401, `wrong token ${i}`);
      assert.equal((await response.json()).error.message, "The bearer token is wrong.");
    }
    for (let i = 0; i < 5; i++) {
      // The right token too: the address is refused before any token is compared.
      const response = await post(daemon.mcpUrl, GOOD, initializeRequest("after"));
      assert.equal(response.status, 429);
      const retryAfter = Number(response.headers.get("retry-after"));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      assert.deepEqual((await response.json()).error, {
        code: -32600,
        message: `Too many failed authentications: retry in ${retryAfter} s`,
      });
    }
    const ws = await fetch(`${daemon.url}/ws`, {
      headers: { upgrade: "websocket", authorization: `Bearer ${GOOD}` },
    });
    await ws.body?.cancel();
    assert.equal(ws.status, 429, "WebSocket upgrades are refused too");
    assert.equal(daemon.stderr().match(REFUSAL_LOG)?.length, 1, daemon.stderr());
  } finally {
    await daemon.stop();
    await double.close();
    await Deno.remove(tokens);
  }
});

Deno.test("a burst of 50 concurrent wrong tokens gets exactly 10 comparisons, then 429", async () => {
  const double = await startOllamaDouble();
  const tokens = await tokenFile([GOOD]);
  const daemon = await spawnDaemon(double.host, { args: ["--token-file", tokens] });
  try {
    const statuses = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const response = await post(daemon.mcpUrl, `guess-${i}`, initializeRequest(i));
        await response.body?.cancel();
        return response.status;
      }),
    );
    assert.deepEqual(
      {
        401: statuses.filter((s) => s === 401).length,
        429: statuses.filter((s) => s === 429).length,
      },
      { 401: 10, 429: 40 },
    );
    assert.equal(daemon.stderr().match(REFUSAL_LOG)?.length, 1);
  } finally {
    await daemon.stop();
    await double.close();
    await Deno.remove(tokens);
  }
});

/** Opens a legacy session with `token`; returns its id. */
async function openSession(url: string, token: string): Promise<string> {
  const response = await post(url, token, initializeRequest(1));
  await response.body?.cancel();
  assert.equal(response.status, 200);
  const id = response.headers.get("mcp-session-id");
  assert.ok(id);
  const initialized = await post(url, token, {
    jsonrpc: "2.0",
    method: "notifications/initialized",
  }, {
    "mcp-session-id": id,
    "mcp-protocol-version": "2025-06-18",
  });
  await initialized.body?.cancel();
  assert.equal(initialized.status, 202);
  return id;
}

/** A ping in session `id` with `token`: the status and, when 200, the reply. */
async function ping(url: string, token: string, id: string) {
  const response = await post(url, token, { jsonrpc: "2.0", id: "p", method: "ping" }, {
    "mcp-session-id": id,
    "mcp-protocol-version": "2025-06-18",
  });
  const text = await response.text();
  return { status: response.status, text };
}

Deno.test("a session opened with one token cannot be used or deleted with another: 404, and still works", async () => {
  const double = await startOllamaDouble();
  const tokens = await tokenFile([GOOD, OTHER]);
  const daemon = await spawnDaemon(double.host, { args: ["--token-file", tokens] });
  try {
    const id = await openSession(daemon.mcpUrl, GOOD);
    const foreign = await ping(daemon.mcpUrl, OTHER, id);
    assert.equal(foreign.status, 404);
    assert.deepEqual(JSON.parse(foreign.text).error, {
      code: -32600,
      message: "Session not found: initialize a new session",
    });
    const get = await fetch(daemon.mcpUrl, {
      headers: {
        accept: "text/event-stream",
        authorization: `Bearer ${OTHER}`,
        "mcp-session-id": id,
        "mcp-protocol-version": "2025-06-18",
      },
    });
    await get.body?.cancel();
    assert.equal(get.status, 404, "nor its GET stream");
    const del = await fetch(daemon.mcpUrl, {
      method: "DELETE",
      headers: {
        authorization: `Bearer ${OTHER}`,
        "mcp-session-id": id,
        "mcp-protocol-version": "2025-06-18",
      },
    });
    await del.body?.cancel();
    assert.equal(del.status, 404);

    // The owner still has it, and the other token was never counted as a failed attempt.
    const own = await ping(daemon.mcpUrl, GOOD, id);
    assert.equal(own.status, 200);
    assert.match(own.text, /"id":"p"/);
    const health = await (await fetch(`${daemon.url}/healthz`, {
      headers: { authorization: `Bearer ${GOOD}` },
    })).json();
    assert.equal(health.sessions.http, 1);

    const mine = await fetch(daemon.mcpUrl, {
      method: "DELETE",
      headers: {
        authorization: `Bearer ${GOOD}`,
        "mcp-session-id": id,
        "mcp-protocol-version": "2025-06-18",
      },
    });
    await mine.body?.cancel();
    assert.equal(mine.status, 200);
    assert.equal((await ping(daemon.mcpUrl, GOOD, id)).status, 404, "deleted by its owner");
  } finally {
    await daemon.stop();
    await double.close();
    await Deno.remove(tokens);
  }
});
