/**
 * Atomic admission against the real daemon: a burst of 1,000 concurrent
 * session openings (Streamable HTTP `initialize` with a token, then
 * WebSocket upgrades) against `--max-sessions 50` opens exactly 50, however
 * the awaits of token checks and session setup interleave.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startOllamaDouble } from "../ollama_double.ts";
import { initializeRequest, spawnDaemon, within } from "./support.ts";
import { tokenFile } from "./token_file.ts";

const TOKEN = "admission-token";
const CAP = 50;
const BURST = 1000;
const STEP_MS = 60_000;

async function sessions(url: string): Promise<{ websocket: number; http: number }> {
  const health = await (await fetch(`${url}/healthz`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  })).json();
  return health.sessions;
}

/** Opens a WebSocket offering `mcp` and the token; resolves to the socket, or null if refused. */
function openWebSocket(url: string): Promise<WebSocket | null> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, ["mcp", `bearer.${TOKEN}`]);
    socket.onopen = () => resolve(socket);
    socket.onerror = () => resolve(null);
  });
}

Deno.test("1,000 concurrent openings against --max-sessions 50 open exactly 50, over HTTP and over WebSocket", async () => {
  const double = await startOllamaDouble();
  const tokens = await tokenFile([TOKEN]);
  const daemon = await spawnDaemon(double.host, {
    args: ["--token-file", tokens, "--max-sessions", String(CAP), "--max-receiving", "2000"],
  });
  const sockets: WebSocket[] = [];
  try {
    const replies = await within(
      STEP_MS,
      "1,000 initialize replies",
      Promise.all(Array.from({ length: BURST }, async (_, i) => {
        const response = await fetch(daemon.mcpUrl, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
            authorization: `Bearer ${TOKEN}`,
          },
          body: JSON.stringify(initializeRequest(i)),
        });
        const text = await response.text();
        return { status: response.status, session: response.headers.get("mcp-session-id"), text };
      })),
    );
    const opened = replies.filter((r) => r.status === 200 && r.session !== null);
    const refused = replies.filter((r) => r.status === 503);
    assert.equal(opened.length, CAP);
    assert.equal(new Set(opened.map((r) => r.session)).size, CAP, "50 distinct session ids");
    assert.equal(refused.length, BURST - CAP);
    assert.deepEqual(JSON.parse(refused[0].text).error, {
      code: -32600,
      message: `Too many sessions (limit ${CAP})`,
    });
    assert.deepEqual(await sessions(daemon.url), { websocket: 0, http: CAP, stdio: 0 });

    // Ending the HTTP sessions frees their slots for WebSocket.
    await Promise.all(opened.map(async ({ session }) => {
      const response = await fetch(daemon.mcpUrl, {
        method: "DELETE",
        headers: {
          authorization: `Bearer ${TOKEN}`,
          "mcp-session-id": session!,
          "mcp-protocol-version": "2025-06-18",
        },
      });
      await response.body?.cancel();
      assert.equal(response.status, 200);
    }));
    assert.deepEqual(await sessions(daemon.url), { websocket: 0, http: 0, stdio: 0 });

    const results = await within(
      STEP_MS,
      "1,000 upgrades",
      Promise.all(Array.from({ length: BURST }, () => openWebSocket(daemon.wsUrl))),
    );
    for (const socket of results) if (socket) sockets.push(socket);
    assert.equal(sockets.length, CAP);
    assert.equal(sockets.every((s) => s.protocol === "mcp"), true);
    assert.deepEqual(await sessions(daemon.url), { websocket: CAP, http: 0, stdio: 0 });
  } finally {
    await Promise.all(sockets.map((socket) =>
      new Promise<void>((resolve) => {
        socket.onclose = () => resolve();
        socket.close();
      })
    ));
    const status = await daemon.stop();
    await double.close();
    await Deno.remove(tokens);
    assert.equal(status.code, 0);
  }
  assert.doesNotMatch(daemon.stderr(), /^rune error:/m);
});
