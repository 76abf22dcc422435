/**
 * Interop with the official v2 SDK client (`@modelcontextprotocol/client`)
 * in the 2026-07-28 (stateless) era, end to end against the real daemon and
 * the Ollama double, over stdio, WebSocket and Streamable HTTP: discover,
 * list tools, stream a generation as progress and cancel one (which must
 * close the upstream request). The same client in its default mode speaks
 * the 2025 handshake, which is checked too.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  Client,
  StreamableHTTPClientTransport,
  type Transport,
} from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { startDaemon } from "../daemon.ts";
import { resultText } from "../mcp_calls.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { serveArgs } from "../stdio_client.ts";
import { WebSocketTransport } from "../ws_client_transport.ts";

const MODERN = { versionNegotiation: { mode: { pin: "2026-07-28" } } } as const;

const TOOLS = [
  "ai_chat",
  "ai_embed",
  "ai_generate",
  "ai_list_models",
  "ai_ollama_chat",
  "ai_ollama_embed",
  "ai_ollama_generate",
  "ai_ollama_list_models",
];

type Kind = "stdio" | "websocket" | "http";

/** Starts what one transport needs and connects a v2 client through it. */
async function connect(
  kind: Kind,
  double: OllamaDouble,
  options: ConstructorParameters<typeof Client>[1],
): Promise<{ client: Client; close: () => Promise<void> }> {
  const client = new Client({ name: "rune-interop-v2", version: "1.0.0" }, options);
  if (kind === "stdio") {
    const transport = new StdioClientTransport({
      command: Deno.execPath(),
      args: serveArgs(double.host, ["--stdio"]),
      env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" },
      stderr: "ignore",
    });
    await client.connect(transport);
    return { client, close: () => client.close() };
  }
  const daemon = await startDaemon(double.host);
  try {
    const transport: Transport = kind === "websocket"
      ? new WebSocketTransport(daemon.wsUrl)
      : new StreamableHTTPClientTransport(new URL(daemon.mcpUrl));
    await client.connect(transport);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return {
    client,
    close: async () => {
      await client.close();
      await daemon.stop();
    },
  };
}

/** Streams a generation with progress and checks the deltas add up to the result. */
async function assertStreams(client: Client): Promise<void> {
  const deltas: string[] = [];
  const values: number[] = [];
  const result = await client.callTool(
    {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "one two three four five" },
    },
    {
      onprogress: (p) => {
        values.push(p.progress);
        deltas.push(p.message ?? "");
      },
    },
  );
  assert.equal(result.isError, undefined, resultText(result));
  assert.equal(resultText(result), "Echo: one two three four five");
  const structured = result.structuredContent as { response: string; done_reason: string };
  assert.equal(structured.response, "Echo: one two three four five");
  assert.equal(structured.done_reason, "stop");
  // Every delta arrived, in order, with strictly increasing progress values.
  assert.equal(deltas.join(""), "Echo: one two three four five");
  assert.deepEqual(values, values.map((_, i) => i + 1));
}

/** Cancels a long generation once it streams; the upstream request must close. */
async function assertCancelAborts(client: Client, double: OllamaDouble): Promise<void> {
  const controller = new AbortController();
  let first!: () => void;
  const streaming = new Promise<void>((resolve) => (first = resolve));
  const call = client.callTool(
    {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: "x", options: { num_predict: 100_000 } },
    },
    { signal: controller.signal, onprogress: () => first() },
  );
  await streaming;
  assert.equal(double.openStreams, 1, "one upstream stream while generating");
  controller.abort("cancelled by the test");
  await assert.rejects(call);
  await double.waitForOpenStreams(0);
}

for (const kind of ["stdio", "websocket", "http"] as const) {
  Deno.test(`v2 SDK client in the 2026-07-28 era over ${kind}: discover, list, stream, cancel`, async () => {
    const double = await startOllamaDouble();
    const { client, close } = await connect(kind, double, MODERN);
    try {
      assert.equal(client.getProtocolEra(), "modern");
      assert.equal(client.getServerVersion()?.name, "rune");
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
      await assertStreams(client);
      await assertCancelAborts(client, double);
      // The session is still usable after a cancel.
      const list = await client.callTool({ name: "ai_ollama_list_models", arguments: {} });
      assert.match(resultText(list), /llama3\.2:latest/);
    } finally {
      await close();
      await double.close();
    }
  });

  Deno.test(`v2 SDK client in its default (2025) mode over ${kind}: initialize, stream, cancel`, async () => {
    const double = await startOllamaDouble();
    const { client, close } = await connect(kind, double, {});
    try {
      assert.equal(client.getProtocolEra(), "legacy");
      await assertStreams(client);
      await assertCancelAborts(client, double);
    } finally {
      await close();
      await double.close();
    }
  });
}

Deno.test("v2 SDK client negotiating with mode auto lands in the 2026-07-28 era", async () => {
  const double = await startOllamaDouble();
  const { client, close } = await connect("http", double, {
    versionNegotiation: { mode: "auto" },
  });
  try {
    assert.equal(client.getProtocolEra(), "modern");
  } finally {
    await close();
    await double.close();
  }
});
