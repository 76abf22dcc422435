/**
 * Deep and massive JSON against the real daemon, on every transport (stdio,
 * WebSocket, a 2025 Streamable HTTP session and 2026-07-28 requests):
 *
 * - a message nested a million levels deep (2 MB) and masses of tiny values
 *   (`[[],[],...]`, 8 MiB, and 32 MiB on HTTP) are refused before parsing
 *   with -32600 (HTTP: 400), naming the bound;
 * - tool arguments Rune passes on upstream (`format`,
 *   `tools[].function.parameters`, `messages[].tool_calls[].function.arguments`)
 *   nested past their own bound, or holding too many values, end in a tool
 *   error naming the limit, and never reach the model;
 * - meanwhile two bystanders in their own processes, a WebSocket `ping` and
 *   a 2026-07-28 `server/discover` over HTTP, keep being answered. Their
 *   figures are printed for each phase next to an idle baseline; the test
 *   fails on a freeze (a round trip over two seconds), not on the 100 ms
 *   goal, which the shared 2-core machine cannot promise even when idle.
 *
 * @module
 */

import assert from "node:assert/strict";
import { rpcReply } from "../mcp_calls.ts";
import { MAX_PASSTHROUGH_DEPTH, MAX_PASSTHROUGH_VALUES } from "../../src/mcp/tools/schemas.ts";
import { MAX_MESSAGE_DEPTH, MAX_MESSAGE_ELEMENTS } from "../../src/transports/json_bounds.ts";
import { startOllamaDouble } from "../ollama_double.ts";
import { type Bystander, startBystander } from "./bystander.ts";
import {
  INITIALIZED,
  initializeRequest,
  type Message,
  openSocket,
  spawnDaemon,
  within,
} from "./support.ts";

const STEP_MS = 60_000;
/**
 * The slowest bystander round trip accepted: a freeze, as issue 17 measured
 * them (10 to 49 s), fails by far; the load of a shared machine does not.
 */
const FREEZE_BOUND_MS = 2_000;

const MODERN_META = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
  `"io.modelcontextprotocol/clientInfo":{"name":"deep","version":"1"},` +
  `"io.modelcontextprotocol/clientCapabilities":{}}`;

/** A `tools/call` as text (deep values cannot go through `JSON.stringify` cheaply). */
function callText(id: string, tool: string, argumentsText: string, modern: boolean): string {
  return `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"tools/call","params":{"name":` +
    `"${tool}","arguments":${argumentsText}${modern ? `,${MODERN_META}` : ""}}}`;
}

/** An object nested `depth` levels deep: `{"a":{"a":...1}}`. */
function nestedObject(depth: number): string {
  return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

/** An object holding `n` values in one array. */
function manyValues(n: number): string {
  return `{"list":[${Array(n).fill("0").join(",")}]}`;
}

/** The three passthrough arguments, each given `value` (a JSON object as text). */
function passthroughCalls(value: string): { name: string; tool: string; args: string }[] {
  return [
    {
      name: "format",
      tool: "ai_ollama_generate",
      args: `{"model":"llama3.2","prompt":"x","format":${value}}`,
    },
    {
      name: "tools[].function.parameters",
      tool: "ai_ollama_chat",
      args: `{"model":"llama3.2","messages":[{"role":"user","content":"x"}],` +
        `"tools":[{"type":"function","function":{"name":"f","parameters":${value}}}]}`,
    },
    {
      name: "messages[].tool_calls[].function.arguments",
      tool: "ai_ollama_chat",
      args: `{"model":"llama3.2","messages":[{"role":"assistant","content":"",` +
        `"tool_calls":[{"function":{"name":"f","arguments":${value}}}]},` +
        `{"role":"user","content":"x"}]}`,
    },
  ];
}

/** One transport as the test drives it: send a message text, get the reply to it. */
interface Wire {
  name: string;
  modern: boolean;
  /** Sends `text` and resolves to the reply (for HTTP: with the status). */
  exchange(text: string): Promise<{ status?: number; reply: Message }>;
}

/** The JSON-RPC reply in an HTTP response: a JSON body, or the last SSE `data:` line. */
async function replyOf(response: Response): Promise<Message> {
  return rpcReply(response.headers.get("content-type"), await response.text()) as Message;
}

const encodings = new Map<string, Uint8Array<ArrayBuffer>>();

/** The UTF-8 bytes of `text`, encoded once (a 32 MiB body need not be encoded per request). */
function encoded(text: string): Uint8Array<ArrayBuffer> {
  let bytes = encodings.get(text);
  if (bytes === undefined) {
    bytes = new TextEncoder().encode(text);
    if (text.length > 1_000_000) encodings.set(text, bytes);
  }
  return bytes;
}

function httpWire(
  name: string,
  url: string,
  headers: Record<string, string>,
  modern: boolean,
): Wire {
  return {
    name,
    modern,
    async exchange(text) {
      const toolHeaders: Record<string, string> = modern
        ? {
          "mcp-method": "tools/call",
          "mcp-name": /"name":"(ai_ollama_\w+)"/.exec(text.slice(0, 200))?.[1] ?? "",
        }
        : {};
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...headers,
          ...toolHeaders,
        },
        body: encoded(text),
      });
      return { status: response.status, reply: await replyOf(response) };
    },
  };
}

Deno.test("deep and massive JSON is refused on every transport, tool arguments by their own bound, and bystanders are served meanwhile", async () => {
  const double = await startOllamaDouble();
  const daemon = await spawnDaemon(double.host, { stdio: true });
  const bystanders: Bystander[] = [];
  const ws = await openSocket(daemon.wsUrl);
  try {
    // The wires: stdio, WebSocket, a 2025 HTTP session, 2026-07-28 requests.
    const stdio = daemon.stdio!;
    await stdio.send(initializeRequest("init"));
    assert.equal((await stdio.next()).id, "init");
    await stdio.send(INITIALIZED);
    ws.send(initializeRequest("init"));
    assert.equal((await ws.next()).id, "init");
    ws.send(INITIALIZED);
    const opened = await fetch(daemon.mcpUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify(initializeRequest("init")),
    });
    await opened.body?.cancel();
    const session = opened.headers.get("mcp-session-id")!;
    const sessionHeaders = { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" };
    const initialized = await fetch(daemon.mcpUrl, {
      method: "POST",
      headers: { "content-type": "application/json", ...sessionHeaders },
      body: JSON.stringify(INITIALIZED),
    });
    await initialized.body?.cancel();
    const wires: Wire[] = [
      {
        name: "stdio",
        modern: false,
        exchange: async (text) => {
          await stdio.sendRaw(text + "\n");
          return { reply: await stdio.next() };
        },
      },
      {
        name: "websocket",
        modern: false,
        exchange: async (text) => {
          ws.socket.send(text);
          return { reply: await ws.next() };
        },
      },
      httpWire("http session", daemon.mcpUrl, sessionHeaders, false),
      httpWire("http 2026-07-28", daemon.mcpUrl, { "mcp-protocol-version": "2026-07-28" }, true),
    ];

    bystanders.push(await within(STEP_MS, "a ping bystander", startBystander("ws", daemon.wsUrl)));
    bystanders.push(
      await within(STEP_MS, "a discover bystander", startBystander("discover", daemon.mcpUrl)),
    );

    /** Runs `fn` as one phase and records the bystanders' figures during it. */
    const phases: string[] = [];
    const texts = new Set<string>();
    let worst = 0;
    const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      await within(STEP_MS, "a mark", Promise.all(bystanders.map((b) => b.mark())));
      const started = performance.now();
      const result = await within(STEP_MS, name, fn());
      const elapsed = performance.now() - started;
      const figures = await within(STEP_MS, "a mark", Promise.all(bystanders.map((b) => b.mark())));
      worst = Math.max(worst, ...figures.map((f) => f.maxMs));
      phases.push(
        `${name}: ${elapsed.toFixed(0)} ms; bystanders (ping / discover) max ${
          figures.map((f) => f.maxMs.toFixed(0)).join(" / ")
        } ms, p99 ${figures.map((f) => f.p99Ms.toFixed(0)).join(" / ")} ms`,
      );
      return result;
    };
    // What the shared machine gives a bystander when nothing hostile happens.
    await phase("idle baseline", () => new Promise((resolve) => setTimeout(resolve, 1000)));

    const deep = "[".repeat(1_000_000) + "]".repeat(1_000_000);
    const tinyValues = (mib: number) =>
      "[" + "[],".repeat(Math.floor((mib * 1024 * 1024 - 4096) / 3)) + "[]]";
    // One 32 MiB body (the largest message) on HTTP; 8 MiB elsewhere, which is 25 times the
    // bound all the same and spares the suite moving 100 MiB more.
    const tiny = { big: tinyValues(32), other: tinyValues(8) };
    for (const wire of wires) {
      // Message level: refused before parsing, naming the bound.
      const http = wire.name.startsWith("http");
      const big = wire.modern;
      for (
        const [what, text, problem] of [
          [
            "1,000,000 levels",
            callText(
              "deep",
              "ai_ollama_generate",
              `{"model":"m","prompt":"x","format":${deep}}`,
              wire.modern,
            ),
            `it nests arrays and objects deeper than ${MAX_MESSAGE_DEPTH} levels`,
          ],
          [
            `${big ? 32 : 8} MiB of [] values`,
            big ? tiny.big : tiny.other,
            `it holds more than ${MAX_MESSAGE_ELEMENTS} values`,
          ],
        ] as const
      ) {
        const { status, reply } = await phase(`${wire.name}, ${what}`, () => wire.exchange(text));
        assert.equal(status, http ? 400 : undefined, `${wire.name}: ${what}`);
        assert.deepEqual(reply, {
          jsonrpc: "2.0",
          id: null,
          error: {
            code: -32600,
            message: http
              ? `Invalid Request: the body is refused: ${problem}`
              : `Invalid Request: ${problem}`,
          },
        }, `${wire.name}: ${what}`);
      }

      // Argument level: within the message bounds, past the passthrough bounds.
      await phase(`${wire.name}, passthrough arguments`, async () => {
        for (
          const [value, problem] of [
            [nestedObject(100), `nests deeper than ${MAX_PASSTHROUGH_DEPTH} levels`],
            [
              manyValues(MAX_PASSTHROUGH_VALUES + 1),
              `holds more than ${MAX_PASSTHROUGH_VALUES} values`,
            ],
          ] as const
        ) {
          for (const call of passthroughCalls(value)) {
            const what = `${call.name} that ${problem}`;
            const before = double.requests.length;
            const { status, reply } = await within(
              STEP_MS,
              `${wire.name}: ${what}`,
              wire.exchange(callText("arg", call.tool, call.args, wire.modern)),
            );
            assert.equal(status, status === undefined ? undefined : 200, `${wire.name}: ${what}`);
            assert.equal(reply.id, "arg");
            const result = reply.result as { isError?: boolean; content: { text: string }[] };
            assert.equal(result?.isError, true, `${wire.name}: ${what}: ${JSON.stringify(reply)}`);
            assert.match(result.content[0].text, new RegExp(`the object ${problem}`), what);
            texts.add(result.content[0].text);
            assert.equal(double.requests.length, before, `${what}: nothing reaches the model`);
          }
        }
      });
      // A value just within the bounds is passed on as it is.
      const [format] = passthroughCalls(nestedObject(MAX_PASSTHROUGH_DEPTH - 1));
      const { reply } = await wire.exchange(callText("ok", format.tool, format.args, wire.modern));
      assert.equal(
        (reply.result as { isError?: boolean })?.isError,
        undefined,
        JSON.stringify(reply),
      );
      const sent = double.requests.at(-1)!.body as { format: unknown };
      assert.deepEqual(sent.format, JSON.parse(nestedObject(MAX_PASSTHROUGH_DEPTH - 1)));
    }

    console.log([...texts].join("\n"));
    const totals = await Promise.all(bystanders.splice(0).map((b) => b.stop()));
    console.log(phases.join("\n"));
    console.log(
      `whole run (ping / discover): ${totals.map((t) => t.rounds).join(" / ")} round trips, ` +
        `max ${totals.map((t) => t.maxMs.toFixed(0)).join(" / ")} ms, ` +
        `p99 ${totals.map((t) => t.p99Ms.toFixed(0)).join(" / ")} ms`,
    );
    worst = Math.max(worst, ...totals.map((t) => t.maxMs));
    assert.ok(totals.every((t) => t.rounds > 0), "the bystanders were served");
    // Issue 17 measured freezes of 10 to 49 s. The 100 ms goal is not asserted: on the shared
    // 2-core machine an idle bystander alone sees 50-100 ms round trips now and then (the
    // idle baseline above), so a bound that tight would fail whatever Rune does.
    assert.ok(worst < FREEZE_BOUND_MS, `a bystander waited ${worst.toFixed(0)} ms`);
  } finally {
    await Promise.all(bystanders.map((b) => b.kill()));
    await ws.close();
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0, daemon.stderr());
  }
});
