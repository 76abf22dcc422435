/**
 * Ollama dies in the middle of a streamed reply: the call in flight ends
 * with an actionable tool error, the MCP session survives (further calls
 * get "Cannot reach Ollama" results instead of a dead session), and once
 * Ollama is back on the same port the next call works again. Checked over
 * stdio and over WebSocket at the same time, with the SDK client.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { type CallToolResult, Client, WebSocketClientTransport } from "../sdk_client.ts";
import { connectStdio } from "../stdio_client.ts";
import { spawnDaemon, within } from "./support.ts";
import { resultText } from "../mcp_calls.ts";

/** Overall bound on each awaited step; a hang fails instead of blocking the suite. */
const STEP_MS = 20_000;

/** Starts a generate that would run for minutes; resolves `started` on the first progress. */
function longGenerate(client: Client): {
  started: Promise<void>;
  result: Promise<CallToolResult>;
} {
  const started = Promise.withResolvers<void>();
  const result = client.callTool(
    {
      name: "ai_ollama_generate",
      arguments: {
        model: "llama3.2",
        prompt: "a story without an end",
        options: { num_predict: 100_000 },
      },
    },
    undefined,
    { onprogress: () => started.resolve(), timeout: 120_000 },
  ) as Promise<CallToolResult>;
  result.then(() => started.resolve(), () => started.resolve());
  return { started: started.promise, result };
}

function listModels(client: Client): Promise<CallToolResult> {
  return client.callTool({ name: "ai_ollama_list_models", arguments: {} }) as Promise<
    CallToolResult
  >;
}

function shortGenerate(client: Client): Promise<CallToolResult> {
  return client.callTool({
    name: "ai_ollama_generate",
    arguments: { model: "llama3.2", prompt: "back again", options: { num_predict: 3 } },
  }) as Promise<CallToolResult>;
}

async function connectWebSocket(
  wsUrl: string,
): Promise<{ client: Client; close(): Promise<void> }> {
  const client = new Client({ name: "rune-faults", version: "1" });
  const closed = Promise.withResolvers<void>();
  client.onclose = () => closed.resolve();
  await client.connect(new WebSocketClientTransport(new URL(wsUrl)));
  return {
    client,
    async close() {
      await client.close();
      await closed.promise;
    },
  };
}

Deno.test("a stream cut by Ollama dying ends in a tool error and the session recovers", async () => {
  let double: OllamaDouble = await startOllamaDouble({ tokenDelayMs: 10 });
  const port = double.port;
  const network = await spawnDaemon(double.host);
  const stdio = await connectStdio(double.host, { args: ["--log-level", "warning"] });
  const ws = await connectWebSocket(network.wsUrl).catch(async (error) => {
    await stdio.close();
    await network.stop();
    await double.close();
    throw error;
  });
  const clients = [stdio.client, ws.client];
  try {
    const calls = clients.map(longGenerate);
    await within(STEP_MS, "first progress of both calls", Promise.all(calls.map((c) => c.started)));
    assert.equal(double.openStreams, 2, "both calls are streaming from Ollama");

    await double.close();

    for (const [i, call] of calls.entries()) {
      const result = await within(STEP_MS, `result of call ${i}`, call.result);
      assert.equal(result.isError, true, `call ${i} ends in a tool error`);
      assert.match(resultText(result), /closed the connection/);
    }

    for (const client of clients) {
      const down = await within(STEP_MS, "list_models while Ollama is down", listModels(client));
      assert.equal(down.isError, true);
      assert.match(resultText(down), /Cannot reach Ollama/);
    }
    assert.equal(network.exited, false, "the network daemon is still running");

    double = await startOllamaDouble({ port, tokenDelayMs: 0 });
    for (const client of clients) {
      const back = await within(STEP_MS, "generate once Ollama is back", shortGenerate(client));
      assert.equal(back.isError, undefined, resultText(back));
      assert.equal(resultText(back), "Echo: back again");
      const listed = await within(STEP_MS, "list_models once Ollama is back", listModels(client));
      assert.equal(listed.isError, undefined, resultText(listed));
    }
  } finally {
    await ws.close();
    await stdio.close();
    const status = await network.stop();
    await double.close();
    assert.equal(status.code, 0, network.stderr());
  }
});
