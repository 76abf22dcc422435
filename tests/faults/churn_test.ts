/**
 * Memory after load (issue 17), the short version of `bench/churn.ts
 * http-rounds`: rounds of Streamable HTTP sessions that initialize, call a
 * tool and DELETE. After each round no session and no upstream request may
 * be left, and the daemon's RSS after the last round must stay within a
 * stated margin of where it was after the first (the first brings code,
 * heap and allocator pools to their working size). Waves of dropped
 * WebSocket clients (issue 7) are `disconnect_test.ts` in the suite and
 * `bench/churn.ts ws-churn` at full size.
 *
 * @module
 */

import assert from "node:assert/strict";
import { generateCall } from "../mcp_calls.ts";
import { startOllamaDouble } from "../ollama_double.ts";
import { rssBytes } from "../transports/raw_http.ts";
import { INITIALIZED, initializeRequest, spawnDaemon, within } from "./support.ts";

const ROUNDS = 3;
const SESSIONS = 100;
const STEP_MS = 60_000;
const MiB = 1024 * 1024;
/**
 * How far RSS may grow from the first round to the last. Measured on the
 * 2-core machine: +5 to +25 MiB over three rounds (of 100 to 200 sessions).
 * What stays is native memory and V8 pages kept after the first peaks, not
 * sessions: the session table is empty after each round.
 */
const MARGIN_BYTES = 48 * MiB;

/** RSS once it stopped falling for two seconds (memory is returned lazily; no event says when). */
async function settledRss(pid: number): Promise<number> {
  let low = await rssBytes(pid);
  let since = performance.now();
  while (performance.now() - since < 2000) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = await rssBytes(pid);
    if (now < low - MiB) {
      low = now;
      since = performance.now();
    }
  }
  return low;
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
  return { response, text: await response.text() };
}

/** One HTTP session: initialize, a generate, DELETE. */
async function httpSession(url: string, n: number): Promise<void> {
  const { response } = await post(url, {}, initializeRequest(1));
  const id = response.headers.get("mcp-session-id");
  assert.ok(id, `session ${n}: ${response.status}`);
  const session = { "mcp-session-id": id, "mcp-protocol-version": "2025-06-18" };
  await post(url, session, INITIALIZED);
  const call = await post(url, session, generateCall(2, { prompt: `session ${n}` }));
  assert.match(call.text, new RegExp(`"text":"Echo: session ${n}"`));
  const closed = await fetch(url, { method: "DELETE", headers: session });
  await closed.body?.cancel();
  assert.equal(closed.status, 200);
}

Deno.test("rounds of HTTP sessions (initialize, call, DELETE) leave nothing open and RSS within a margin", async () => {
  const double = await startOllamaDouble();
  const daemon = await spawnDaemon(double.host);
  const health = async () => (await (await fetch(`${daemon.url}/healthz`)).json()).sessions;
  const figures: string[] = [];
  try {
    const rounds: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // 20 clients at a time, each running sessions one after another.
      let next = 0;
      await within(
        STEP_MS,
        `round ${round}`,
        Promise.all(Array.from({ length: 20 }, async () => {
          while (next < SESSIONS) await httpSession(daemon.mcpUrl, next++);
        })),
      );
      assert.deepEqual(await health(), { websocket: 0, http: 0, stdio: 0 }, `round ${round}`);
      rounds.push(await settledRss(daemon.child.pid));
      figures.push(`HTTP round ${round}: ${(rounds.at(-1)! / MiB).toFixed(1)} MiB`);
    }
    console.log(figures.join("\n"));
    assert.equal(double.openStreams, 0, "no upstream request left open");
    assert.ok(
      rounds.at(-1)! - rounds[0] < MARGIN_BYTES,
      `RSS grew ${
        ((rounds.at(-1)! - rounds[0]) / MiB).toFixed(1)
      } MiB from round 1 to round ${ROUNDS}`,
    );
  } finally {
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0);
  }
});
