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
import {
  assertCancelAborts,
  assertStreams,
  type GenerateFn,
  tap,
  TOOLS,
  type Wire,
} from "./generation_checks.ts";

const MODERN = { versionNegotiation: { mode: { pin: "2026-07-28" } } } as const;

type Kind = "stdio" | "websocket" | "http";

/** Starts what one transport needs and connects a v2 client through it. */
async function connect(
  kind: Kind,
  double: OllamaDouble,
  options: ConstructorParameters<typeof Client>[1],
): Promise<{ client: Client; wire: Wire; close: () => Promise<void> }> {
  const client = new Client({ name: "rune-interop-v2", version: "1.0.0" }, options);
  if (kind === "stdio") {
    const transport = new StdioClientTransport({
      command: Deno.execPath(),
      args: serveArgs(double.host, ["--stdio"]),
      env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" },
      stderr: "ignore",
    });
    const wire = tap(transport);
    await client.connect(transport);
    return { client, wire, close: () => client.close() };
  }
  const daemon = await startDaemon(double.host);
  let wire: Wire;
  try {
    const transport: Transport = kind === "websocket"
      ? new WebSocketTransport(daemon.wsUrl)
      : new StreamableHTTPClientTransport(new URL(daemon.mcpUrl));
    wire = tap(transport);
    await client.connect(transport);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return {
    client,
    wire,
    close: async () => {
      await client.close();
      await daemon.stop();
    },
  };
}

/** Adapts the v2 client's `callTool` to the shared checks. */
function generateWith(client: Client): GenerateFn {
  return (args, options) =>
    client.callTool({ name: "ai_ollama_generate", arguments: args }, options);
}

for (const kind of ["stdio", "websocket", "http"] as const) {
  Deno.test(`v2 SDK client in the 2026-07-28 era over ${kind}: discover, list, stream, cancel`, async () => {
    const double = await startOllamaDouble();
    const { client, wire, close } = await connect(kind, double, MODERN);
    try {
      assert.equal(client.getProtocolEra(), "modern");
      assert.equal(client.getServerVersion()?.name, "rune");
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
      await assertStreams(generateWith(client), wire);
      await assertCancelAborts(generateWith(client), double);
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
    const { client, wire, close } = await connect(kind, double, {});
    try {
      assert.equal(client.getProtocolEra(), "legacy");
      await assertStreams(generateWith(client), wire);
      await assertCancelAborts(generateWith(client), double);
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
