/**
 * Interop with the v1 SDK client (`@modelcontextprotocol/sdk` 1.32, what
 * Claude Desktop, VS Code, Cursor and most deployed clients are built on),
 * end to end against the real daemon and the Ollama double, over stdio,
 * WebSocket (the v1 `WebSocketClientTransport`) and Streamable HTTP. The v1
 * client only speaks the 2025 handshake: it must notice nothing of the
 * 2026-07-28 era. Each run initializes, lists the tools, streams a
 * generation as progress and cancels one (which must close the upstream
 * request).
 *
 * @module
 */

import assert from "node:assert/strict";
import { startDaemon } from "../daemon.ts";
import { resultText } from "../mcp_calls.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import {
  type CallToolResult,
  Client,
  McpError,
  StdioClientTransport,
  StreamableHTTPClientTransport,
  WebSocketClientTransport,
} from "../sdk_client.ts";
import { serveArgs } from "../stdio_client.ts";
import { VERSION } from "../../src/version.ts";
import {
  assertCancelAborts,
  assertStreams,
  type GenerateFn,
  tap,
  TOOLS,
  type Wire,
} from "./generation_checks.ts";

type Kind = "stdio" | "websocket" | "http";

/** Starts what one transport needs and connects a v1 client through it. */
async function connect(kind: Kind, double: OllamaDouble) {
  const client = new Client({ name: "rune-interop-v1", version: "1.0.0" });
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
    const transport = kind === "websocket"
      ? new WebSocketClientTransport(new URL(daemon.wsUrl))
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

/**
 * Adapts the v1 client's `callTool` (result schema second) to the shared
 * checks. Its declared result also admits the 2024 `toolResult` shape,
 * which a 2025 session never returns.
 */
function generateWith(client: Client): GenerateFn {
  return (args, options) =>
    client.callTool(
      { name: "ai_ollama_generate", arguments: args },
      undefined,
      options,
    ) as Promise<CallToolResult>;
}

for (const kind of ["stdio", "websocket", "http"] as const) {
  Deno.test(`v1 SDK client over ${kind}: initialize 2025-11-25, list, stream, cancel`, async () => {
    const double = await startOllamaDouble();
    const { client, wire, close } = await connect(kind, double);
    try {
      // The handshake: the v1 client's latest version, answered as is.
      assert.equal(wire.sent[0].method, "initialize");
      assert.equal(wire.sent[0].params?.protocolVersion, "2025-11-25");
      const answer = wire.received.find((m) => m.id === wire.sent[0].id)!;
      assert.equal((answer.result as { protocolVersion: string }).protocolVersion, "2025-11-25");
      assert.deepEqual(client.getServerVersion(), {
        name: "rune",
        title: "Rune",
        version: VERSION,
      });
      // Nothing of the 2026-07-28 era reaches a 2025 client.
      assert.equal(wire.sent.some((m) => m.method === "server/discover"), false);
      assert.equal(
        wire.received.some((m) => "resultType" in ((m.result as object | undefined) ?? {})),
        false,
        "no 2026-07-28 resultType in 2025 answers",
      );

      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);

      await assertStreams(generateWith(client), wire);

      const error = await assertCancelAborts(generateWith(client), double);
      // The v1 client cancels with notifications/cancelled naming the request.
      const cancelled = wire.sent.filter((m) => m.method === "notifications/cancelled");
      assert.equal(cancelled.length, 1);
      const call = wire.sent.findLast((m) => m.method === "tools/call")!;
      assert.deepEqual(cancelled[0].params, {
        requestId: call.id,
        reason: "cancelled by the test",
      });
      // ...and rejects the call locally with the abort reason.
      assert.ok(error instanceof McpError);
      assert.equal(error.message, "MCP error -32001: cancelled by the test");

      // The session is still usable after a cancel.
      const list = await client.callTool({
        name: "ai_ollama_list_models",
        arguments: {},
      }) as CallToolResult;
      assert.match(resultText(list), /llama3\.2:latest/);
    } finally {
      await close();
      await double.close();
    }
  });
}
