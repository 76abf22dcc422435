/**
 * `rune serve` at start, as a real process: it checks each provider once
 * in the background and logs what answered, so a stopped Ollama shows in
 * the log at once, without holding up the listener.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startDaemon } from "../daemon.ts";
import { DEFAULT_VERSION, startOllamaDouble } from "../ollama_double.ts";

/** The lines of `text` that start with `prefix`. */
function linesStarting(text: string, prefix: string): string[] {
  return text.split("\n").filter((line) => line.startsWith(prefix));
}

Deno.test("rune serve logs the provider's version once it answers", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host);
  try {
    await daemon.waitForLog(/provider ollama at/);
    assert.deepEqual(linesStarting(daemon.stderr(), "rune info: provider"), [
      `rune info: provider ollama at ${double.host} answers (version ${DEFAULT_VERSION})`,
    ]);
    assert.deepEqual(linesStarting(daemon.stderr(), "rune warning:"), []);
  } finally {
    await daemon.stop();
    await double.close();
  }
});

Deno.test("rune serve warns at start when the provider is unreachable, and keeps serving", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const host = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  listener.close();
  const daemon = await startDaemon(host);
  try {
    await daemon.waitForLog(/did not answer its start-up check/);
    const warnings = linesStarting(daemon.stderr(), "rune warning:");
    assert.equal(warnings.length, 1, daemon.stderr());
    const prefix = `rune warning: provider ollama at ${host} did not answer its start-up check: `;
    assert.ok(warnings[0].startsWith(prefix), warnings[0]);
    // The provider's own message says what failed and what to do.
    const [reason, rest] = warnings[0].slice(prefix.length).split(" (Rune keeps serving");
    assert.match(reason, new RegExp(`^Cannot reach Ollama at ${host.replaceAll(".", "\\.")}: `));
    assert.equal(rest, "; calls to ollama fail until this is fixed)");
    const health = await fetch(`${daemon.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});

Deno.test("rune serve is ready before the provider answers its first check", async () => {
  // An Ollama that holds /api/version until the test lets it answer.
  const asked = Promise.withResolvers<void>();
  const answer = Promise.withResolvers<void>();
  const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (new URL(req.url).pathname !== "/api/version") return new Response(null, { status: 404 });
    asked.resolve();
    await answer.promise;
    return Response.json({ version: "9.9.9" });
  });
  const host = `127.0.0.1:${upstream.addr.port}`;
  try {
    // Resolves on the "listening on" line: a daemon that waited for the check would not get here.
    const daemon = await startDaemon(host);
    try {
      await asked.promise;
      assert.deepEqual(linesStarting(daemon.stderr(), "rune info: provider"), []);
      const health = await fetch(`${daemon.url}/`);
      assert.equal(health.status, 200, "the daemon serves while the check is pending");
      await health.body?.cancel();
      answer.resolve();
      await daemon.waitForLog(/provider ollama at/);
      assert.deepEqual(linesStarting(daemon.stderr(), "rune info: provider"), [
        `rune info: provider ollama at ${host} answers (version 9.9.9)`,
      ]);
    } finally {
      answer.resolve();
      await daemon.stop();
    }
  } finally {
    await upstream.shutdown();
  }
});

Deno.test("rune serve stopped as soon as it says it listens exits cleanly", async () => {
  // The signal handlers are in place before the "listening on" line; before that fix a SIGTERM
  // sent on the line could kill the process (143) instead of stopping it (0).
  for (let i = 0; i < 3; i++) {
    const daemon = await startDaemon("127.0.0.1:9");
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    assert.match(daemon.stderr(), /rune info: stopped\n$/);
  }
});
