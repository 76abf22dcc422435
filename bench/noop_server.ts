/**
 * The floor of a stdio tool call: a minimal MCP server on the same SDK v2
 * as Rune (`McpServer`, served in both protocol eras by `serveStdio`) with
 * one tool, `noop`, that takes Rune's generate arguments (`model`,
 * `prompt`, validated by the same zod) and answers `Echo: <prompt>` at once,
 * with no upstream. The benchmark times it with the same lean client as
 * Rune, interleaved with Rune's calls: what is left of Rune's overhead
 * beyond this round trip is Rune's own work (the upstream call and relay).
 *
 * `--transport sdk` (default, the floor) serves it over the SDK's own
 * `StdioServerTransport` (Node's `process.stdin`/`stdout` under Deno), the
 * way a minimal server is written; `--transport deno` over a few lines that
 * read `Deno.stdin` in place and write `Deno.stdout`, as Rune's stdio does,
 * to tell the stdio plumbing's share from the SDK's.
 *
 * ```sh
 * deno run --config deno.json --allow-env bench/noop_server.ts [--transport sdk|deno]
 * ```
 *
 * @module
 */

import {
  type JSONRPCMessage,
  McpServer,
  parseJSONRPCMessage,
  type Transport,
} from "@modelcontextprotocol/server";
import { serveStdio } from "@modelcontextprotocol/server/stdio";
import { z } from "zod";

/** The no-op tool's name. */
export const NOOP_TOOL = "noop";

const input = z.object({ model: z.string(), prompt: z.string() });

/** One server instance with the no-op tool (the SDK builds one per connection). */
function createNoopServer(): McpServer {
  const server = new McpServer({ name: "noop", version: "1.0.0" }, {
    capabilities: { tools: { listChanged: false } },
  });
  server.registerTool(NOOP_TOOL, {
    description: "Answers Echo: <prompt> at once.",
    inputSchema: input,
  }, ({ prompt }) => ({ content: [{ type: "text", text: `Echo: ${prompt}` }] }));
  return server;
}

/** Bytes read from stdin at most per read. */
const READ_SIZE = 64 * 1024;
/** Longest line accepted; a longer one ends the server (this is a benchmark fixture). */
const MAX_LINE = 1024 * 1024;

/**
 * Newline-delimited JSON-RPC on `Deno.stdin`/`Deno.stdout`, read in place
 * into one buffer and written in order; closes at the end of input.
 */
function denoStdioTransport(): Transport {
  const buffer = new Uint8Array(READ_SIZE);
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let writing: Promise<void> = Promise.resolve();
  let closed = false;
  const transport: Transport = {
    start() {
      (async () => {
        let partial = "";
        for (;;) {
          const n = await Deno.stdin.read(buffer);
          if (n === null) break;
          partial += decoder.decode(buffer.subarray(0, n), { stream: true });
          let newline: number;
          while ((newline = partial.indexOf("\n")) >= 0) {
            const line = partial.slice(0, newline);
            partial = partial.slice(newline + 1);
            if (line.trim() === "") continue;
            try {
              transport.onmessage?.(parseJSONRPCMessage(JSON.parse(line)));
            } catch (error) {
              transport.onerror?.(error as Error);
            }
          }
          if (partial.length > MAX_LINE) throw new Error("line too long");
        }
        await transport.close();
      })().catch((error) => transport.onerror?.(error as Error));
      return Promise.resolve();
    },
    send(message: JSONRPCMessage) {
      const bytes = encoder.encode(JSON.stringify(message) + "\n");
      writing = writing.then(async () => {
        for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
      });
      return writing;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      transport.onclose?.();
      return Promise.resolve();
    },
  };
  return transport;
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--transport");
  const kind = at === -1 ? "sdk" : Deno.args[at + 1];
  if (kind !== "sdk" && kind !== "deno") {
    console.error(`--transport must be sdk or deno, got ${kind}`);
    Deno.exit(2);
  }
  serveStdio(createNoopServer, {
    legacy: "serve",
    ...(kind === "deno" && { transport: denoStdioTransport() }),
    onerror: (error) => console.error(`noop server: ${error.message}`),
  });
}
