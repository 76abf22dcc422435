/**
 * Interop with the Vercel AI SDK's MCP client (`@ai-sdk/mcp`), end to end
 * against the real daemon and the Ollama double, over every transport the
 * client has: its Streamable HTTP transport, its stdio transport, and a
 * WebSocket transport plugged into its `MCPTransport` seam
 * (`ai_sdk_ws_transport.ts`). Its deprecated HTTP+SSE transport is shown to
 * be refused.
 *
 * What the client does, read from its source (2.0.99) and asserted here:
 * - It probes `server/discover` first (2026-07-28) and falls back to
 *   `initialize` (2025-11-25); with `protocolVersionDiscovery: false` it
 *   goes straight to `initialize`. Over HTTP it waits for the probe's
 *   answer; over stdio it gives it 1 s, then falls back.
 * - It has no progress: it never sends a progress token (so Rune streams
 *   nothing) and reports any notification as an uncaught "Unsupported
 *   message type". A generation's text arrives in the tool result only.
 * - Cancel is an `AbortSignal` (the tool's `execute` `abortSignal`), which
 *   rejects the call at once and is handed to the transport; the client
 *   never sends `notifications/cancelled`. The HTTP transport aborts the
 *   request's fetch, which Rune turns into a cancel in both eras; the stdio
 *   transport ignores the signal, so over stdio Rune finishes the
 *   generation and the client drops the late result.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  createMCPClient,
  type JSONRPCMessage,
  type MCPClient,
  type MCPClientConfig,
  MCPClientError,
} from "@ai-sdk/mcp";
import { StdioMCPTransport } from "@ai-sdk/mcp/mcp-stdio";
import { type Daemon, startDaemon } from "../daemon.ts";
import { resultText } from "../mcp_calls.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { serveArgs } from "../stdio_client.ts";
import { VERSION } from "../../src/version.ts";
import { AiSdkWebSocketTransport } from "./ai_sdk_ws_transport.ts";
import { TOOLS } from "./generation_checks.ts";

type Kind = "stdio" | "websocket" | "http";
type Era = "2026-07-28" | "2025-11-25";

/** The `_meta` keys of a 2026-07-28 request: the per-request envelope and nothing else. */
const ENVELOPE = [
  "io.modelcontextprotocol/protocolVersion",
  "io.modelcontextprotocol/clientCapabilities",
  "io.modelcontextprotocol/clientInfo",
];

/** A JSON-RPC message as it went over the wire. */
type Wire = { id?: string | number; method?: string; params?: Record<string, unknown> };

/** Errors the client reports out of band (`onUncaughtError`), awaitable. */
interface Uncaught {
  /** Every error so far, as `message` strings. */
  readonly messages: string[];
  /** Resolves once an error's message matches `pattern`. */
  waitFor(pattern: RegExp): Promise<string>;
  /** The handler to give the client. */
  handler(error: unknown): void;
}

function uncaught(): Uncaught {
  const messages: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (message: string) => void }>();
  return {
    messages,
    waitFor(pattern) {
      const seen = messages.find((m) => pattern.test(m));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.add({ pattern, resolve }));
    },
    handler(error) {
      const message = error instanceof Error ? error.message : String(error);
      messages.push(message);
      for (const waiter of waiters) {
        if (waiter.pattern.test(message)) {
          waiters.delete(waiter);
          waiter.resolve(message);
        }
      }
    },
  };
}

/** The AI SDK's stdio transport, recording what it sends. */
class RecordingStdioTransport extends StdioMCPTransport {
  /** Every message sent, in order. */
  readonly sent: JSONRPCMessage[] = [];
  /** Called with each message before it is written. */
  onsend?: (message: JSONRPCMessage) => void;

  override send(message: JSONRPCMessage): Promise<void> {
    this.sent.push(message);
    this.onsend?.(message);
    return super.send(message);
  }
}

/**
 * The stdio transport declaring that the server always answers
 * `server/discover` (true of Rune): the client then waits for the answer
 * instead of racing the daemon's start against its 1 s probe deadline.
 */
class DiscoveringStdioTransport extends RecordingStdioTransport {
  readonly waitsForProtocolVersionDiscovery = true;
}

/** What a test needs from one connected client. */
interface Connection {
  client: MCPClient;
  /** Messages the client sent, in order. */
  sent(): Wire[];
  /** Errors the client reported out of band. */
  errors: Uncaught;
  /** The daemon, when the transport is a network one. */
  daemon?: Daemon;
  close(): Promise<void>;
}

/** The daemon's stdio command line. */
function stdioCommand(double: OllamaDouble): { command: string; args: string[] } {
  return { command: Deno.execPath(), args: serveArgs(double.host, ["--stdio"]) };
}

/** Starts what one transport needs and connects an AI SDK client through it. */
async function connect(
  kind: Kind,
  double: OllamaDouble,
  options: Pick<MCPClientConfig, "protocolVersionDiscovery"> = {},
): Promise<Connection> {
  const errors = uncaught();
  const config = { ...options, clientName: "rune-interop-ai-sdk", onUncaughtError: errors.handler };
  if (kind === "stdio") {
    const transport = new DiscoveringStdioTransport({
      ...stdioCommand(double),
      env: { NO_COLOR: "1" },
      stderr: "ignore",
    });
    const client = await createMCPClient({ ...config, transport });
    return { client, sent: () => transport.sent as Wire[], errors, close: () => client.close() };
  }
  const daemon = await startDaemon(double.host);
  try {
    if (kind === "websocket") {
      const transport = new AiSdkWebSocketTransport(daemon.wsUrl);
      const client = await createMCPClient({ ...config, transport });
      return {
        client,
        sent: () => transport.sent as Wire[],
        errors,
        daemon,
        close: async () => {
          await client.close();
          await daemon.stop();
        },
      };
    }
    // The HTTP transport is built inside the client: record what it posts through its fetch.
    const posted: Wire[] = [];
    const client = await createMCPClient({
      ...config,
      transport: {
        type: "http",
        url: daemon.mcpUrl,
        fetch: (input, init) => {
          if (typeof init?.body === "string") posted.push(JSON.parse(init.body));
          return fetch(input, init);
        },
      },
    });
    return {
      client,
      sent: () => posted,
      errors,
      daemon,
      close: async () => {
        await client.close();
        await daemon.stop();
      },
    };
  } catch (error) {
    await daemon.stop();
    throw error;
  }
}

/** Checks the negotiated era and what the client learnt about the server. */
function assertConnected(connection: Connection, era: Era): void {
  const { client } = connection;
  assert.equal(client.initializeResult.protocolVersion, era);
  assert.deepEqual(client.serverInfo, { name: "rune", title: "Rune", version: VERSION });
  assert.deepEqual(client.initializeResult.capabilities, {
    logging: {},
    tools: { listChanged: false },
    // Long calls may run as tasks: the 2026-07-28 extension, or 2025-11-25's capability.
    ...(era === "2026-07-28"
      ? { extensions: { "io.modelcontextprotocol/tasks": {} } }
      : { tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } }),
  });
  assert.match(client.instructions ?? "", /^Rune gives access to local and cloud language models/);
  // Nothing but the opening has been sent yet.
  assert.deepEqual(
    connection.sent().map((m) => m.method),
    era === "2026-07-28" ? ["server/discover"] : ["initialize", "notifications/initialized"],
  );
}

/** The tools as AI SDK tools (what `generateText` gets), converted from Rune's listing. */
async function assertTools(client: MCPClient) {
  const tools = await client.tools();
  assert.deepEqual(Object.keys(tools).sort(), TOOLS);
  const generate = tools.ai_ollama_generate;
  const listed = (await client.listTools()).tools.find((t) => t.name === "ai_ollama_generate")!;
  assert.equal(generate.type, "dynamic");
  assert.equal(generate.description, listed.description);
  assert.equal(generate.title, "Generate with Ollama");
  const schema = (generate.inputSchema as { jsonSchema: { required: string[] } }).jsonSchema;
  assert.deepEqual(schema.required, ["model", "prompt"]);
  assert.ok(generate.execute, "the tool can be executed");
  return { tools, execute: generate.execute };
}

type Execute = NonNullable<Awaited<ReturnType<typeof assertTools>>["execute"]>;

/** Runs `ai_ollama_generate` as `generateText` would: through the tool's `execute`. */
function run(
  execute: Execute,
  args: Record<string, unknown>,
  { signal: abortSignal }: { signal?: AbortSignal } = {},
) {
  return Promise.resolve(
    execute(args, { toolCallId: "call-1", messages: [], context: {}, abortSignal }),
  ) as Promise<{ content?: unknown; structuredContent?: unknown; isError?: boolean }>;
}

/**
 * Generates a text and checks it arrives whole in the result, and that the
 * client asked for no progress: its `tools/call` carries no progress token
 * (in 2026-07-28 its `_meta` is exactly the envelope), so no notification
 * comes back either.
 */
async function assertGenerates(
  connection: Connection,
  { execute, era }: { execute: Execute; era: Era },
) {
  const result = await run(execute, { model: "llama3.2", prompt: "one two three four five" });
  assert.equal(result.isError, false, resultText(result));
  assert.equal(resultText(result), "Echo: one two three four five");
  const structured = result.structuredContent as { response: string; done_reason: string };
  assert.equal(structured.response, "Echo: one two three four five");
  assert.equal(structured.done_reason, "stop");
  const call = connection.sent().findLast((m) => m.method === "tools/call")!;
  const meta = call.params?._meta as Record<string, unknown> | undefined;
  assert.deepEqual(Object.keys(meta ?? {}), era === "2026-07-28" ? ENVELOPE : []);
  assert.deepEqual(connection.errors.messages.filter((m) => /Unsupported message/.test(m)), []);
}

/** Starts a call whose upstream hangs until cancelled, aborts it, and returns the rejection. */
async function abortHangingCall(execute: Execute, double: OllamaDouble): Promise<MCPClientError> {
  double.failNext({ kind: "hang-after-headers" });
  const controller = new AbortController();
  const call = run(execute, { model: "llama3.2", prompt: "x" }, { signal: controller.signal });
  await double.waitForOpenStreams(1);
  controller.abort("cancelled by the test");
  const error = await call.then(
    (result) => assert.fail(`the aborted call resolved: ${resultText(result)}`),
    (error: unknown) => error,
  );
  assert.ok(MCPClientError.isInstance(error), String(error));
  assert.equal(error.message, "Request was aborted");
  assert.equal(error.cause, "cancelled by the test");
  return error;
}

for (const era of ["2026-07-28", "2025-11-25"] as const) {
  const discovery = era === "2026-07-28";
  const mode = discovery ? "discovers 2026-07-28" : "without discovery speaks 2025-11-25";

  Deno.test(`AI SDK client over http ${mode}: tools, generate, abort closes upstream`, async () => {
    const double = await startOllamaDouble();
    const connection = await connect("http", double, { protocolVersionDiscovery: discovery });
    try {
      assertConnected(connection, era);
      const { execute } = await assertTools(connection.client);
      await assertGenerates(connection, { execute, era });
      // The HTTP transport aborts the call's fetch; Rune cancels the request whose stream closed.
      await abortHangingCall(execute, double);
      await double.waitForOpenStreams(0);
      if (!discovery) {
        await connection.daemon!.waitForLog(/client closed the response stream of request \d+/);
      }
      // The client is still usable after an abort.
      const again = await run(execute, { model: "llama3.2", prompt: "after" });
      assert.equal(resultText(again), "Echo: after");
      // Before initialize, the 2025 HTTP transport opens its GET stream without a session,
      // which Rune refuses as the spec says (400); the transport retries after initialize.
      assert.deepEqual(
        connection.errors.messages,
        discovery ? [] : ["MCP HTTP Transport Error: GET SSE failed: 400 Bad Request"],
      );
    } finally {
      await connection.close();
      await double.close();
    }
  });

  Deno.test(`AI SDK client over websocket ${mode}: tools, generate, abort closes upstream`, async () => {
    const double = await startOllamaDouble();
    const connection = await connect("websocket", double, { protocolVersionDiscovery: discovery });
    try {
      assertConnected(connection, era);
      const { execute } = await assertTools(connection.client);
      await assertGenerates(connection, { execute, era });
      await abortHangingCall(execute, double);
      await double.waitForOpenStreams(0);
      // The transport turned the abort into the cancel notification for that request.
      const call = connection.sent().findLast((m) => m.method === "tools/call")!;
      const cancels = connection.sent().filter((m) => m.method === "notifications/cancelled");
      assert.deepEqual(cancels.map((m) => m.params), [{
        requestId: call.id,
        reason: "cancelled by the test",
      }]);
      const again = await run(execute, { model: "llama3.2", prompt: "after" });
      assert.equal(resultText(again), "Echo: after");
      assert.deepEqual(connection.errors.messages, []);
    } finally {
      await connection.close();
      await double.close();
    }
  });
}

Deno.test("AI SDK client over stdio discovers 2026-07-28: tools, generate; abort stays client-side", async () => {
  const double = await startOllamaDouble();
  const connection = await connect("stdio", double);
  try {
    assertConnected(connection, "2026-07-28");
    const { execute } = await assertTools(connection.client);
    await assertGenerates(connection, { execute, era: "2026-07-28" });

    // The abort rejects the call at once, but nothing tells Rune: the generation runs to its
    // end and the client drops the result as an answer to an unknown request.
    const controller = new AbortController();
    const call = run(execute, { model: "llama3.2", prompt: "finished anyway" }, {
      signal: controller.signal,
    });
    await double.waitForOpenStreams(1);
    controller.abort("cancelled by the test");
    await assert.rejects(call, (error: unknown) => {
      assert.ok(MCPClientError.isInstance(error));
      assert.equal(error.message, "Request was aborted");
      return true;
    });
    const late = await connection.errors.waitFor(/unknown message ID/);
    const id = connection.sent().findLast((m) => m.method === "tools/call")!.id;
    assert.match(
      late,
      new RegExp(
        `^Protocol error: Received a response for an unknown message ID: \\{"jsonrpc":"2\\.0","id":${id},`,
      ),
    );
    assert.match(late, /"text":"Echo: finished anyway"/);
    assert.equal(connection.sent().some((m) => m.method === "notifications/cancelled"), false);
    await double.waitForOpenStreams(0);
  } finally {
    await connection.close();
    await double.close();
  }
});

Deno.test("AI SDK client over stdio falls back to 2025-11-25 when rune answers discover after 1 s", async () => {
  const double = await startOllamaDouble();
  // The daemon starts only once the client has given up on server/discover and sent
  // initialize: a FIFO holds the shell that execs it.
  const dir = await Deno.makeTempDir({ prefix: "rune-ai-sdk-" });
  const gate = `${dir}/gate`;
  const mkfifo = await new Deno.Command("mkfifo", { args: [gate] }).output();
  assert.equal(mkfifo.code, 0, new TextDecoder().decode(mkfifo.stderr));
  const { command, args } = stdioCommand(double);
  const transport = new RecordingStdioTransport({
    command: "sh",
    args: ["-c", 'read -r _ < "$0" && exec "$@"', gate, command, ...args],
    env: { NO_COLOR: "1" },
    stderr: "ignore",
  });
  let opened: Promise<void> | undefined;
  transport.onsend = (message) => {
    if (!("method" in message) || message.method !== "initialize") return;
    opened = (async () => {
      using fifo = await Deno.open(gate, { write: true });
      await fifo.write(new TextEncoder().encode("go\n"));
    })();
  };
  const errors = uncaught();
  let client: MCPClient | undefined;
  try {
    client = await createMCPClient({
      transport,
      clientName: "rune-interop-ai-sdk",
      onUncaughtError: errors.handler,
    });
    await opened;
    const sent = transport.sent as Wire[];
    assert.deepEqual(sent.slice(0, 3).map((m) => m.method), [
      "server/discover",
      "initialize",
      "notifications/initialized",
    ]);
    assert.equal(client.initializeResult.protocolVersion, "2025-11-25");
    assert.deepEqual(client.serverInfo, { name: "rune", title: "Rune", version: VERSION });
    // Rune answered the probe too (it was first in line); the client drops that answer.
    const late = await errors.waitFor(/unknown message ID/);
    assert.match(late, /"id":0,"result":\{.*"supportedVersions":\["2026-07-28"\]/);
    const tools = await client.tools();
    assert.deepEqual(Object.keys(tools).sort(), TOOLS);
    const result = await run(tools.ai_ollama_generate.execute!, {
      model: "llama3.2",
      prompt: "after the fallback",
    });
    assert.equal(resultText(result), "Echo: after the fallback");
  } finally {
    await client?.close();
    await Deno.remove(dir, { recursive: true });
    await double.close();
  }
});

Deno.test("AI SDK client's deprecated HTTP+SSE transport is refused: rune serves Streamable HTTP", async () => {
  const double = await startOllamaDouble();
  const daemon = await startDaemon(double.host);
  try {
    const error = await createMCPClient({ transport: { type: "sse", url: daemon.mcpUrl } }).then(
      (client) => client.close().then(() => assert.fail("the SSE transport connected")),
      (error: unknown) => error,
    );
    assert.ok(MCPClientError.isInstance(error), String(error));
    assert.equal(error.statusCode, 400);
    assert.match(
      error.message,
      /^MCP SSE Transport Error: 400 Bad Request: .*start with an initialize request/,
    );
  } finally {
    await daemon.stop();
    await double.close();
  }
});
