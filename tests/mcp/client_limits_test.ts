/**
 * The per-client rate limit in process, on the raw wire: exactly the limit
 * passes, then a tool call is a tool error and any other request a JSON-RPC
 * error, both naming the limit with `retryAfter`; the handshake and `ping`
 * do not count; each identity has its own budget; refusals are counted.
 *
 * @module
 */

import assert from "node:assert/strict";
import { InMemoryTransport, type JSONRPCMessage } from "@modelcontextprotocol/server";
import { serveConnection } from "../../src/mcp/connection.ts";
import { createServerFactory } from "../../src/mcp/server.ts";
import { type CallEnd, type CallLabels, NO_EVENTS } from "../../src/metrics/events.ts";
import { createMemoryRateStore, type RateStore } from "../../src/providers/limiter.ts";
import { parseRate } from "../../src/providers/limits.ts";
import { createFakeProvider } from "../fake_provider.ts";

type Message = Record<string, unknown> & {
  id?: string | number;
  // deno-lint-ignore no-explicit-any
  result?: any;
  error?: { code: number; message: string; data?: unknown };
};

/** A raw peer on an in-memory connection, as `owner` (a token's identity) or its own session. */
async function connect(store: RateStore, events = NO_EVENTS, owner?: string) {
  const [clientEnd, serverEnd] = InMemoryTransport.createLinkedPair();
  const factory = createServerFactory({
    providers: [createFakeProvider({ id: "ollama" })],
    clientLimit: { rate: parseRate("3/m"), store },
    events,
  });
  const connection = serveConnection(
    serverEnd,
    owner
      ? (ctx) => factory({ ...ctx, authInfo: { token: "", clientId: owner, scopes: [] } })
      : factory,
  );
  const waiting = new Map<string | number, (m: Message) => void>();
  clientEnd.onmessage = (message: JSONRPCMessage) => {
    const m = message as Message;
    waiting.get(m.id!)?.(m);
    waiting.delete(m.id!);
  };
  await clientEnd.start();
  let next = 0;
  const request = (method: string, params: Record<string, unknown> = {}): Promise<Message> => {
    const id = ++next;
    const reply = new Promise<Message>((resolve) => waiting.set(id, resolve));
    void clientEnd.send({ jsonrpc: "2.0", id, method, params } as JSONRPCMessage);
    return reply;
  };
  await request("initialize", {
    protocolVersion: "2025-11-25",
    capabilities: {},
    clientInfo: { name: "t", version: "1" },
  });
  await clientEnd.send({ jsonrpc: "2.0", method: "notifications/initialized" } as JSONRPCMessage);
  return {
    request,
    close: async () => {
      await clientEnd.close();
      await connection.close();
    },
  };
}

const generate = { name: "ai_ollama_generate", arguments: { model: "m1", prompt: "hi" } };

Deno.test("client limit: the limit passes exactly, then tools and other requests are refused", async () => {
  // 20 s into a minute: the window ends in 40 s.
  const store = createMemoryRateStore({ now: () => 60_000 * 7 + 20_000 });
  const calls: [CallLabels, CallEnd["outcome"]][] = [];
  const limited: string[] = [];
  const events = {
    ...NO_EVENTS,
    toolCall: (labels: CallLabels, end: CallEnd) => void calls.push([labels, end.outcome]),
    rateLimited: (scope: string) => void limited.push(scope),
  };
  const peer = await connect(store, events);
  try {
    assert.deepEqual((await peer.request("ping")).result, {}, "ping does not count");
    assert.equal((await peer.request("tools/call", generate)).result.isError, undefined);
    assert.ok((await peer.request("tools/list")).result.tools.length > 0);
    assert.equal(
      (await peer.request("tools/call", generate)).result.structuredContent.response,
      "hi",
    );
    const refused = await peer.request("tools/call", generate);
    assert.deepEqual(refused.result, {
      content: [{
        type: "text",
        text:
          "Rate limit reached: this client may make 3 requests per minute (--rate-limit 3/m); retry in 40 s.",
      }],
      structuredContent: { error: "rate_limited", scope: "client", limit: "3/m", retryAfter: 40 },
      isError: true,
    });
    const list = await peer.request("tools/list");
    assert.equal(list.error!.code, -32000);
    assert.match(
      list.error!.message,
      /^Rate limit reached: this client may make 3 requests per minute/,
    );
    assert.deepEqual(list.error!.data, {
      error: "rate_limited",
      scope: "client",
      limit: "3/m",
      retryAfter: 40,
    });
    assert.deepEqual((await peer.request("ping")).result, {});
    assert.deepEqual(limited, ["client", "client"]);
    assert.deepEqual(calls.map(([labels, outcome]) => [labels.tool, labels.model, outcome]), [
      ["ai_ollama_generate", "m1", "ok"],
      ["ai_ollama_generate", "m1", "ok"],
      ["ai_ollama_generate", "m1", "rate_limited"],
    ]);
  } finally {
    await peer.close();
  }
});

Deno.test("client limit: each identity and each session has its own budget", async () => {
  const store = createMemoryRateStore({ now: () => 60_000 * 9 });
  const alice = await connect(store, NO_EVENTS, "token:1");
  const aliceAgain = await connect(store, NO_EVENTS, "token:1");
  const session = await connect(store);
  try {
    for (let i = 0; i < 2; i++) await alice.request("tools/list");
    assert.ok((await aliceAgain.request("tools/list")).result, "the third of token:1's requests");
    assert.equal(
      (await aliceAgain.request("tools/list")).error!.code,
      -32000,
      "a new connection shares the token's budget",
    );
    for (let i = 0; i < 3; i++) assert.ok((await session.request("tools/list")).result);
    assert.equal((await session.request("tools/list")).error!.code, -32000);
  } finally {
    await Promise.all([alice.close(), aliceAgain.close(), session.close()]);
  }
});
