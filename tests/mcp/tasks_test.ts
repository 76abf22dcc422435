/**
 * Long calls as MCP tasks, in process with a fake provider, on the raw wire
 * of both eras: the 2025-11-25 task-augmented `tools/call` (`tasks/get`,
 * `tasks/result`, `tasks/list`, `tasks/cancel`) and the 2026-07-28
 * `io.modelcontextprotocol/tasks` extension (`resultType: "task"`,
 * `tasks/get` with the result inlined, `tasks/update`, `tasks/cancel`).
 * Cancelling aborts the provider call; another owner sees nothing; tasks
 * expire with their TTL.
 *
 * @module
 */

import assert from "node:assert/strict";
import { InMemoryTransport, type JSONRPCMessage } from "@modelcontextprotocol/server";
import { serveConnection } from "../../src/mcp/connection.ts";
import { createServerFactory } from "../../src/mcp/server.ts";
import { createMemoryTaskStore, type TaskStore } from "../../src/mcp/tasks/store.ts";
import { createFakeProvider, type FakeProvider } from "../fake_provider.ts";

// Replies are JSON read by path and checked by the assertions that follow.
// deno-lint-ignore no-explicit-any
type Json = any;
type Message = Record<string, unknown> & {
  id?: string | number;
  result?: Json;
  error?: Json;
  params?: Json;
};

const TASKS = "io.modelcontextprotocol/tasks";

/** A raw JSON-RPC peer on an in-memory connection to a Rune server. */
async function connect(store: TaskStore, fake: FakeProvider, owner?: string) {
  const [clientEnd, serverEnd] = InMemoryTransport.createLinkedPair();
  const factory = createServerFactory({ providers: [fake], tools: "all", tasks: store });
  const connection = serveConnection(
    serverEnd,
    owner
      ? (ctx) => factory({ ...ctx, authInfo: { token: "", clientId: owner, scopes: [] } })
      : factory,
  );
  const inbox: Message[] = [];
  const waiting = new Map<string | number, (m: Message) => void>();
  const watchers = new Set<() => void>();
  clientEnd.onmessage = (message: JSONRPCMessage) => {
    const m = message as Message;
    const wake = m.id !== undefined ? waiting.get(m.id) : undefined;
    if (wake) {
      waiting.delete(m.id!);
      wake(m);
    } else {
      inbox.push(m);
      for (const watcher of watchers) watcher();
    }
  };
  /** The notifications `method` received so far, once there are `count` of them. */
  const notifications = (method: string, count: number): Promise<Message[]> => {
    const found = () => inbox.filter((m) => m.method === method);
    if (found().length >= count) return Promise.resolve(found());
    return new Promise((resolve) => {
      const watcher = () => {
        if (found().length < count) return;
        watchers.delete(watcher);
        resolve(found());
      };
      watchers.add(watcher);
    });
  };
  await clientEnd.start();
  let next = 0;
  const request = (method: string, params: Record<string, unknown> = {}): Promise<Message> => {
    const id = `r${++next}`;
    const reply = new Promise<Message>((resolve) => waiting.set(id, resolve));
    void clientEnd.send({ jsonrpc: "2.0", id, method, params } as JSONRPCMessage);
    return reply;
  };
  return {
    request,
    notifications,
    notify: (method: string, params: Record<string, unknown>) =>
      clientEnd.send({ jsonrpc: "2.0", method, params } as JSONRPCMessage),
    close: async () => {
      await clientEnd.close();
      await connection.close();
    },
  };
}

/** The 2026-07-28 `_meta` envelope, with or without the tasks extension. */
function envelope(withTasks: boolean) {
  return {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": withTasks ? { extensions: { [TASKS]: {} } } : {},
    "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" },
  };
}

async function initialize(peer: Awaited<ReturnType<typeof connect>>) {
  const init = await peer.request("initialize", {
    protocolVersion: "2025-11-25",
    capabilities: { tasks: {} },
    clientInfo: { name: "t", version: "1" },
  });
  await peer.notify("notifications/initialized", {});
  return init;
}

/** Polls tasks/get until the task is terminal (an event-driven wait is tasks/result). */
async function settled(
  peer: Awaited<ReturnType<typeof connect>>,
  taskId: string,
  meta?: Record<string, unknown>,
) {
  for (;;) {
    const got = await peer.request("tasks/get", { taskId, ...(meta && { _meta: meta }) });
    if (["completed", "failed", "cancelled"].includes(got.result?.status)) return got;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("2025-11-25: a task-augmented generate returns a task, then its result", async () => {
  const store = createMemoryTaskStore();
  const fake = createFakeProvider({ id: "ollama" });
  const peer = await connect(store, fake);
  try {
    const init = await initialize(peer);
    assert.deepEqual(init.result.capabilities.tasks, {
      list: {},
      cancel: {},
      requests: { tools: { call: {} } },
    });
    const listed = await peer.request("tools/list");
    const execution = Object.fromEntries(
      listed.result.tools.map((t: { name: string; execution?: unknown }) => [t.name, t.execution]),
    );
    assert.deepEqual(execution.ai_ollama_generate, { taskSupport: "optional" });
    assert.deepEqual(execution.ai_compare, { taskSupport: "optional" });
    assert.equal(execution.ai_ollama_list_models, undefined, "short tools are never tasks");
    const created = await peer.request("tools/call", {
      name: "ai_ollama_generate",
      arguments: { model: "m1", prompt: "one two" },
      task: { ttl: 120_000 },
    });
    const task = created.result.task;
    assert.match(task.taskId, /^[0-9a-f-]{36}$/);
    assert.equal(task.ttl, 120_000);
    assert.equal(task.pollInterval, 1000);
    assert.equal(created.result.content, undefined, "a task handle, not a tool result");
    const result = await peer.request("tasks/result", { taskId: task.taskId });
    assert.deepEqual(result.result.content, [{ type: "text", text: "one two" }]);
    assert.equal(result.result.structuredContent.response, "one two");
    assert.deepEqual(result.result._meta, {
      "io.modelcontextprotocol/related-task": { taskId: task.taskId },
    });
    const got = await peer.request("tasks/get", { taskId: task.taskId });
    assert.equal(got.result.status, "completed");
    assert.equal(got.result.result, undefined, "2025-11-25 keeps the result for tasks/result");
    // The end was announced too, as tasks/get has it.
    const [status] = await peer.notifications("notifications/tasks/status", 1);
    assert.deepEqual(status.params, got.result);
    const list = await peer.request("tasks/list");
    assert.deepEqual(list.result.tasks.map((t: { taskId: string }) => t.taskId), [task.taskId]);
    // A finished task cannot be cancelled (2025-11-25: -32602).
    const late = await peer.request("tasks/cancel", { taskId: task.taskId });
    assert.equal(late.error.code, -32602);
    // A call without the task parameter is answered as always.
    const plain = await peer.request("tools/call", {
      name: "ai_ollama_generate",
      arguments: { model: "m1", prompt: "sync" },
    });
    assert.equal(plain.result.structuredContent.response, "sync");
  } finally {
    await peer.close();
  }
});

Deno.test("2025-11-25: tasks/cancel aborts the running generation and the task stays cancelled", async () => {
  const store = createMemoryTaskStore();
  const fake = createFakeProvider({ id: "ollama" });
  fake.endless = true;
  const peer = await connect(store, fake);
  try {
    await initialize(peer);
    const created = await peer.request("tools/call", {
      name: "ai_ollama_generate",
      arguments: { model: "m1", prompt: "x" },
      task: {},
    });
    const { taskId } = created.result.task;
    await fake.waitForPulled(2);
    const working = await peer.request("tasks/get", { taskId });
    assert.equal(working.result.status, "working");
    const waiting = peer.request("tasks/result", { taskId });
    const cancelled = await peer.request("tasks/cancel", { taskId });
    assert.equal(cancelled.result.status, "cancelled");
    const signal = fake.calls[0].signal!;
    assert.equal(signal.aborted, true, "the provider call was aborted");
    const result = await waiting;
    assert.equal(result.error.code, -32600);
    assert.match(result.error.message, /was cancelled/);
    const final = await peer.request("tasks/get", { taskId });
    assert.equal(final.result.status, "cancelled");
    // Announced once, when the cancel took effect (not again when the call unwound).
    const [status] = await peer.notifications("notifications/tasks/status", 1);
    assert.equal(status.params.status, "cancelled");
    assert.equal(status.params.statusMessage, "Cancelled by request.");
    await peer.request("ping");
    assert.equal(
      (await peer.notifications("notifications/tasks/status", 1)).length,
      1,
      "one status notification",
    );
  } finally {
    await peer.close();
  }
});

Deno.test("a task belongs to its owner: another identity or session cannot see or cancel it", async () => {
  const store = createMemoryTaskStore();
  const fake = createFakeProvider({ id: "ollama" });
  fake.endless = true;
  const alice = await connect(store, fake, "token:1");
  const again = await connect(store, fake, "token:1");
  const mallory = await connect(store, fake, "token:2");
  const anonymous = await connect(store, fake);
  try {
    for (const peer of [alice, again, mallory, anonymous]) await initialize(peer);
    const created = await alice.request("tools/call", {
      name: "ai_generate",
      arguments: { model: "ollama/m1", prompt: "x" },
      task: {},
    });
    const { taskId } = created.result.task;
    for (const other of [mallory, anonymous]) {
      assert.equal((await other.request("tasks/get", { taskId })).error.code, -32602);
      assert.equal((await other.request("tasks/cancel", { taskId })).error.code, -32602);
      assert.equal((await other.request("tasks/result", { taskId })).error.code, -32602);
      assert.deepEqual((await other.request("tasks/list")).result.tasks, []);
    }
    // The same identity on a new connection (a reconnect) finds it.
    assert.equal((await again.request("tasks/get", { taskId })).result.status, "working");
    assert.equal((await again.request("tasks/cancel", { taskId })).result.status, "cancelled");
  } finally {
    for (const peer of [alice, again, mallory, anonymous]) await peer.close();
  }
});

Deno.test("2026-07-28: a client that declares the extension gets a task with the result inlined", async () => {
  const store = createMemoryTaskStore();
  const fake = createFakeProvider({ id: "ollama" });
  const peer = await connect(store, fake);
  try {
    const discover = await peer.request("server/discover", { _meta: envelope(true) });
    assert.deepEqual(discover.result.capabilities.extensions, { [TASKS]: {} });
    assert.equal(discover.result.capabilities.tasks, undefined);
    const created = await peer.request("tools/call", {
      name: "ai_ollama_chat",
      arguments: { model: "m1", messages: [{ role: "user", content: "hello there" }] },
      _meta: envelope(true),
    });
    assert.equal(created.result.resultType, "task");
    assert.equal(created.result.status, "working");
    assert.equal(created.result.ttlMs, 3_600_000);
    assert.equal(created.result.pollIntervalMs, 1000);
    assert.equal("ttl" in created.result, false);
    const done = await settled(peer, created.result.taskId, envelope(true));
    assert.equal(done.result.resultType, "complete");
    assert.equal(done.result.status, "completed");
    assert.equal(done.result.result.structuredContent.message.content, "hello there");
    assert.equal(done.result.result._meta?.["io.modelcontextprotocol/related-task"], undefined);
    // Without the extension, the same call is answered synchronously.
    const sync = await peer.request("tools/call", {
      name: "ai_ollama_chat",
      arguments: { model: "m1", messages: [{ role: "user", content: "now" }] },
      _meta: envelope(false),
    });
    assert.equal(sync.result.resultType, "complete");
    assert.equal(sync.result.structuredContent.message.content, "now");
    // tasks/* need the extension (-32021), and an unknown id is -32602.
    const refused = await peer.request("tasks/get", {
      taskId: created.result.taskId,
      _meta: envelope(false),
    });
    assert.equal(refused.error.code, -32021);
    assert.deepEqual(refused.error.data, { requiredCapabilities: { extensions: { [TASKS]: {} } } });
    const unknown = await peer.request("tasks/get", { taskId: "nope", _meta: envelope(true) });
    assert.equal(unknown.error.code, -32602);
    // tasks/result and tasks/list are gone in 2026-07-28.
    const removed = await peer.request("tasks/result", { taskId: "x", _meta: envelope(true) });
    assert.equal(removed.error.code, -32601);
  } finally {
    await peer.close();
  }
});

Deno.test("2026-07-28: tasks/cancel acks, aborts the provider, and is idempotent", async () => {
  const store = createMemoryTaskStore();
  const fake = createFakeProvider({ id: "ollama" });
  fake.endless = true;
  const peer = await connect(store, fake);
  try {
    const created = await peer.request("tools/call", {
      name: "ai_ollama_generate",
      arguments: { model: "m1", prompt: "x" },
      _meta: envelope(true),
    });
    await fake.waitForPulled(2);
    const { taskId } = created.result;
    const ack = await peer.request("tasks/cancel", { taskId, _meta: envelope(true) });
    // An empty acknowledgement (the SDK stamps every 2026-07-28 result with the server's identity).
    const { _meta, ...rest } = ack.result;
    assert.deepEqual(rest, { resultType: "complete" });
    assert.equal(_meta["io.modelcontextprotocol/serverInfo"].name, "rune");
    assert.equal(fake.calls[0].signal!.aborted, true);
    const again = await peer.request("tasks/cancel", { taskId, _meta: envelope(true) });
    assert.equal(again.result.resultType, "complete");
    assert.deepEqual(Object.keys(again.result).sort(), ["_meta", "resultType"]);
    const got = await peer.request("tasks/get", { taskId, _meta: envelope(true) });
    assert.equal(got.result.status, "cancelled");
    const update = await peer.request("tasks/update", {
      taskId,
      inputResponses: {},
      _meta: envelope(true),
    });
    assert.deepEqual(Object.keys(update.result).sort(), ["_meta", "resultType"]);
  } finally {
    await peer.close();
  }
});

Deno.test("the task store forgets tasks after their TTL and bounds tasks per owner", async () => {
  let now = 1_000;
  const store = createMemoryTaskStore({ maxActivePerOwner: 2, maxTasks: 4, now: () => now });
  const record = (taskId: string, owner: string) => ({
    taskId,
    owner,
    tool: "t",
    status: "working" as const,
    createdAt: now,
    lastUpdatedAt: now,
    ttlMs: 60_000,
    pollIntervalMs: 1000,
  });
  await store.create(record("a", "o1"));
  await store.create(record("b", "o1"));
  await assert.rejects(
    store.create(record("c", "o1")),
    /unfinished tasks for this client \(limit 2\)/,
  );
  await store.create(record("d", "o2"));
  // A finished task no longer counts against its owner, but still against the total.
  await store.update("a", { status: "completed", result: {} });
  await store.create(record("c", "o1"));
  await assert.rejects(store.create(record("e", "o3")), /Too many tasks \(limit 4\)/);
  now += 60_001;
  assert.equal(await store.get("a", "o1"), undefined, "expired");
  assert.deepEqual(await store.list("o1"), []);
});
