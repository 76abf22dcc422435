/**
 * The instance pool behind the SDK's stateless entry: finished instances
 * serve the same caller's next request, never two requests at once, never
 * another caller, and at most `maxIdle` wait.
 *
 * @module
 */

import assert from "node:assert/strict";
import { rpcReply } from "../mcp_calls.ts";
import { createMcpHandler, type McpServer } from "@modelcontextprotocol/server";
import { pooledFactory } from "../../src/mcp/instance_pool.ts";
import { createMcpServer, ownerOf } from "../../src/mcp/server.ts";
import { createMemoryTaskStore } from "../../src/mcp/tasks/store.ts";
import { createFakeProvider, type FakeProvider } from "../fake_provider.ts";

const MODERN = "2026-07-28";

/** A pool over real instances with a fake provider, and the SDK's stateless handler. */
function setup(maxIdle?: number) {
  const provider = createFakeProvider();
  const tasks = createMemoryTaskStore();
  const created: McpServer[] = [];
  const pool = pooledFactory((ctx) => {
    const server = createMcpServer({ providers: [provider], tasks }, {
      era: ctx.era,
      owner: ownerOf(ctx),
    });
    created.push(server);
    return server;
  }, { maxIdle });
  const handler = createMcpHandler(pool.factory, { legacy: "reject" });
  return { provider, pool, created, handler };
}

/** One 2026-07-28 request; `clientId` stands for an authenticated caller. */
async function call(
  handler: ReturnType<typeof createMcpHandler>,
  method: string,
  params: Record<string, unknown>,
  clientId?: string,
  // Replies are JSON read by path and checked by the assertions that follow.
  // deno-lint-ignore no-explicit-any
): Promise<Record<string, any>> {
  const request = new Request("http://127.0.0.1/mcp", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": MODERN,
      "mcp-method": method,
      ...(method === "tools/call" && { "mcp-name": params.name as string }),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": MODERN,
          "io.modelcontextprotocol/clientCapabilities": {},
          "io.modelcontextprotocol/clientInfo": { name: "pool-test", version: "1" },
        },
      },
    }),
  });
  const response = await handler.fetch(
    request,
    clientId === undefined
      ? undefined
      : { authInfo: { token: "t", clientId, scopes: [], extra: {} } },
  );
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return rpcReply(response.headers.get("content-type"), text);
}

function generate(prompt: string) {
  return { name: "ai_fake_generate", arguments: { model: "m1", prompt } };
}

Deno.test("sequential stateless requests of one caller are served by one instance", async () => {
  const { pool, created, handler } = setup();
  try {
    const first = await call(handler, "tools/call", generate("one two"));
    assert.equal(first.result.structuredContent.response, "one two");
    const listed = await call(handler, "tools/list", {});
    assert.ok(listed.result.tools.some((t: { name: string }) => t.name === "ai_fake_generate"));
    const second = await call(handler, "tools/call", generate("three"));
    assert.equal(second.result.structuredContent.response, "three");
    assert.equal(created.length, 1);
    assert.equal(pool.built, 1);
    assert.equal(pool.idle, 1);
    // A stray second close does not queue the waiting instance twice.
    created[0].server.onclose?.();
    assert.equal(pool.idle, 1);
  } finally {
    await handler.close();
  }
});

Deno.test("concurrent stateless requests each get their own instance", async () => {
  const { provider, pool, created, handler } = setup();
  try {
    (provider as FakeProvider).endless = true;
    const abort = new AbortController();
    // Two calls in flight at once: the second cannot take the first one's instance.
    const held = handler.fetch(
      new Request("http://127.0.0.1/mcp", {
        method: "POST",
        signal: abort.signal,
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": MODERN,
          "mcp-method": "tools/call",
          "mcp-name": "ai_fake_generate",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 7,
          method: "tools/call",
          params: {
            ...generate("endless"),
            _meta: {
              "io.modelcontextprotocol/protocolVersion": MODERN,
              "io.modelcontextprotocol/clientCapabilities": {},
              "io.modelcontextprotocol/clientInfo": { name: "pool-test", version: "1" },
            },
          },
        }),
      }),
    );
    await provider.waitForPulled(1);
    (provider as FakeProvider).endless = false;
    const other = await call(handler, "tools/call", generate("meanwhile"));
    assert.equal(other.result.structuredContent.response, "meanwhile");
    assert.equal(created.length, 2);
    assert.notEqual(created[0], created[1]);
    abort.abort();
    await (await held).body?.cancel().catch(() => {});
    assert.equal(pool.idle <= 2, true);
  } finally {
    await handler.close();
  }
});

Deno.test("instances are not shared between callers", async () => {
  const { created, handler } = setup();
  try {
    await call(handler, "tools/list", {}, "alice");
    await call(handler, "tools/list", {}, "bob");
    await call(handler, "tools/list", {}, "alice");
    await call(handler, "tools/list", {}, "bob");
    assert.equal(created.length, 2);
  } finally {
    await handler.close();
  }
});

Deno.test("at most maxIdle instances wait; the least recent caller's go first", async () => {
  const { pool, created, handler } = setup(2);
  try {
    for (const who of ["a", "b", "c"]) await call(handler, "tools/list", {}, who);
    assert.equal(pool.idle, 2);
    assert.equal(created.length, 3);
    // "a" was evicted: its next request builds again; "c" reuses.
    await call(handler, "tools/list", {}, "c");
    assert.equal(created.length, 3);
    await call(handler, "tools/list", {}, "a");
    assert.equal(created.length, 4);
    assert.equal(pool.idle, 2);
  } finally {
    await handler.close();
  }
});

Deno.test("connections and 2025 sessions always get a fresh instance", async () => {
  const { pool, created } = setup();
  const legacy = await pool.factory({ era: "legacy" } as Parameters<typeof pool.factory>[0]);
  const modernConnection = await pool.factory(
    { era: "modern" } as Parameters<typeof pool.factory>[0],
  );
  assert.notEqual(legacy, modernConnection);
  assert.equal(created.length, 2);
  assert.equal(pool.idle, 0);
  await legacy.close();
  await modernConnection.close();
  assert.equal(pool.idle, 0);
});
