/**
 * Ollama that accepts a request and then stalls: it hangs after the
 * response headers, trickles one byte a minute, or goes silent in the
 * middle of a reply. With small `--first-token-timeout` and
 * `--idle-timeout` the call ends with a tool error that names the timeout,
 * the upstream request is cancelled, and the session keeps working.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Fault, type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { type CallToolResult, Client, WebSocketClientTransport } from "../sdk_client.ts";
import { connectStdio } from "../stdio_client.ts";
import { spawnDaemon, within } from "./support.ts";
import { resultText } from "../mcp_calls.ts";

/** Overall bound on each awaited step; a hang fails instead of blocking the suite. */
const STEP_MS = 20_000;

/**
 * Timeouts small enough to expire during the test, in seconds, and large
 * enough that a healthy call on a busy machine never meets them.
 */
const TIMEOUT_FLAGS = ["--first-token-timeout", "2", "--idle-timeout", "2"];

/** A token delay no test waits out: the stream stalls after its first token. */
const STALL_MS = 3_600_000;

function generate(
  client: Client,
  numPredict: number,
  onprogress?: (progress: { message?: string }) => void,
): Promise<CallToolResult> {
  return client.callTool(
    {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "slowly now", options: { num_predict: numPredict } },
    },
    undefined,
    { onprogress, timeout: 60_000 },
  ) as Promise<CallToolResult>;
}

/** Runs `fn` with a stdio session against a fresh double; tears everything down. */
async function withStdio(fn: (client: Client, double: OllamaDouble) => Promise<void>) {
  const double = await startOllamaDouble({ tokenDelayMs: 5 });
  const session = await connectStdio(double.host, { args: TIMEOUT_FLAGS });
  try {
    await fn(session.client, double);
  } finally {
    await session.close();
    await double.close();
  }
}

/** Asserts the session still answers: a short generate succeeds. */
async function assertUsable(client: Client): Promise<void> {
  const after = await within(STEP_MS, "a call after the timeout", generate(client, 2));
  assert.equal(after.isError, undefined, resultText(after));
  assert.equal(resultText(after), "Echo: slowly");
}

async function assertFaultTimesOut(client: Client, double: OllamaDouble, fault: Fault) {
  double.failNext(fault);
  const result = await within(STEP_MS, "the stalled call", generate(client, 50));
  assert.equal(result.isError, true, "the stalled call ends in a tool error");
  assert.match(resultText(result), /first-token timeout/);
  assert.match(resultText(result), /--first-token-timeout/, "the text says what to raise");
  await within(STEP_MS, "the upstream request to be cancelled", double.waitForOpenStreams(0));
  await assertUsable(client);
}

Deno.test("Ollama hanging after the headers ends the call with a first-token timeout", async () => {
  await withStdio((client, double) =>
    assertFaultTimesOut(client, double, { kind: "hang-after-headers" })
  );
});

Deno.test("Ollama trickling a byte a minute ends the call with a first-token timeout", async () => {
  await withStdio((client, double) =>
    assertFaultTimesOut(client, double, { kind: "trickle", intervalMs: 60_000 })
  );
});

Deno.test("Ollama going silent mid-reply ends a WebSocket call with an idle timeout", async () => {
  // The first token comes at once, the next an hour later.
  const double = await startOllamaDouble({ tokenDelayMs: STALL_MS });
  const daemon = await spawnDaemon(double.host, { args: TIMEOUT_FLAGS });
  const client = new Client({ name: "rune-faults", version: "1" });
  const closed = Promise.withResolvers<void>();
  client.onclose = () => closed.resolve();
  try {
    await client.connect(new WebSocketClientTransport(new URL(daemon.wsUrl)));
    const streamed: string[] = [];
    const call = generate(client, 100_000, (progress) => streamed.push(progress.message ?? ""));
    const result = await within(STEP_MS, "the stalled call", call);
    assert.equal(result.isError, true, "the stalled call ends in a tool error");
    assert.match(resultText(result), /idle timeout/);
    assert.deepEqual(streamed, ["Echo:"], "the token before the silence was streamed");
    await within(STEP_MS, "the upstream request to be cancelled", double.waitForOpenStreams(0));
    double.tokenDelayMs = 0;
    await assertUsable(client);
  } finally {
    await client.close();
    if (client.transport === undefined) closed.resolve();
    await closed.promise;
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0, daemon.stderr());
  }
});
