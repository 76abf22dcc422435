/**
 * Tasks in a real Redis, shared by two server "instances" (two Redis
 * links, as two daemons would have): a task created on one is read, awaited
 * and cancelled on the other, and the cancel aborts the call where it runs;
 * another owner sees nothing; the per-owner bound holds across instances.
 *
 * @module
 */

import assert from "node:assert/strict";
import { InMemoryTransport, type JSONRPCMessage } from "@modelcontextprotocol/server";
import { serveConnection } from "../../../src/mcp/connection.ts";
import { createServerFactory } from "../../../src/mcp/server.ts";
import { createRedisTaskStore } from "../../../src/mcp/tasks/redis_store.ts";
import { TaskLimitError, type TaskStore } from "../../../src/mcp/tasks/store.ts";
import { connectRedis, type RedisLink } from "../../../src/redis.ts";
import { createFakeProvider, type FakeProvider } from "../../fake_provider.ts";
import { REDIS_SKIP_REASON, startRedis } from "../../redis_server.ts";

type Message = Record<string, unknown> & {
  id?: string | number;
  // deno-lint-ignore no-explicit-any
  result?: any;
  error?: { code: number; message: string };
};

const ignore = REDIS_SKIP_REASON !== undefined;

function ready(link: RedisLink): Promise<void> {
  if (link.up()) return Promise.resolve();
  return new Promise((resolve) => link.onChange((up) => up && resolve()));
}

/** A 2025-11-25 peer of an instance serving `fake` with `store`, as `owner`. */
async function connect(store: TaskStore, fake: FakeProvider, owner: string) {
  const [clientEnd, serverEnd] = InMemoryTransport.createLinkedPair();
  const factory = createServerFactory({ providers: [fake], tasks: store });
  const connection = serveConnection(
    serverEnd,
    (ctx) => factory({ ...ctx, authInfo: { token: "", clientId: owner, scopes: [] } }),
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
    capabilities: { tasks: {} },
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

Deno.test({
  name: "redis tasks: created on one instance, awaited and read on another",
  ignore,
  fn: async () => {
    const redis = await startRedis();
    const links = [connectRedis(redis.url), connectRedis(redis.url)];
    const fakeA = createFakeProvider({ id: "ollama" });
    const fakeB = createFakeProvider({ id: "ollama" });
    try {
      await Promise.all(links.map(ready));
      const [storeA, storeB] = links.map((l) => createRedisTaskStore(l, { prefix: "t1:" }));
      const a = await connect(storeA, fakeA, "token:1");
      const b = await connect(storeB, fakeB, "token:1");
      const stranger = await connect(storeB, fakeB, "token:2");
      try {
        fakeA.script = ["from", " A"];
        const created = await a.request("tools/call", {
          name: "ai_ollama_generate",
          arguments: { model: "m1", prompt: "x" },
          task: { ttl: 120_000 },
        });
        const taskId = created.result.task.taskId as string;
        const result = await b.request("tasks/result", { taskId });
        assert.equal(result.result.structuredContent.response, "from A");
        const got = await b.request("tasks/get", { taskId });
        assert.equal(got.result.status, "completed");
        assert.equal(got.result.ttl, 120_000);
        const list = await b.request("tasks/list");
        assert.deepEqual(list.result.tasks.map((t: { taskId: string }) => t.taskId), [taskId]);
        assert.equal(fakeB.calls.length, 0, "B only read the task");
        // Another owner: no such task.
        assert.equal((await stranger.request("tasks/get", { taskId })).error!.code, -32602);
        assert.deepEqual((await stranger.request("tasks/list")).result.tasks, []);
      } finally {
        await Promise.all([a.close(), b.close(), stranger.close()]);
      }
    } finally {
      await Promise.all(links.map((l) => l.close()));
      await redis.stop();
    }
  },
});

Deno.test({
  name: "redis tasks: a cancel on another instance aborts the call where it runs",
  ignore,
  fn: async () => {
    const redis = await startRedis();
    const links = [connectRedis(redis.url), connectRedis(redis.url)];
    const fakeA = createFakeProvider({ id: "ollama" });
    fakeA.endless = true;
    const fakeB = createFakeProvider({ id: "ollama" });
    try {
      await Promise.all(links.map(ready));
      const [storeA, storeB] = links.map((l) => createRedisTaskStore(l, { prefix: "t2:" }));
      const a = await connect(storeA, fakeA, "token:1");
      const b = await connect(storeB, fakeB, "token:1");
      try {
        const created = await a.request("tools/call", {
          name: "ai_ollama_generate",
          arguments: { model: "m1", prompt: "x" },
          task: {},
        });
        const taskId = created.result.task.taskId as string;
        await fakeA.waitForPulled(3);
        const signal = fakeA.calls[0].signal!;
        const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve));
        const cancelled = await b.request("tasks/cancel", { taskId });
        assert.equal(cancelled.result.status, "cancelled");
        await aborted;
        assert.equal(signal.aborted, true);
        assert.equal((await a.request("tasks/get", { taskId })).result.status, "cancelled");
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    } finally {
      await Promise.all(links.map((l) => l.close()));
      await redis.stop();
    }
  },
});

Deno.test({
  name: "redis tasks: the per-owner bound holds across instances, and finished tasks free it",
  ignore,
  fn: async () => {
    const redis = await startRedis();
    const links = [connectRedis(redis.url), connectRedis(redis.url)];
    try {
      await Promise.all(links.map(ready));
      const [one, two] = links.map((l) =>
        createRedisTaskStore(l, { prefix: "t3:", maxActivePerOwner: 2, maxTasks: 3 })
      );
      const record = (taskId: string, owner = "o") => ({
        taskId,
        owner,
        tool: "ai_generate",
        status: "working" as const,
        createdAt: Date.now(),
        lastUpdatedAt: Date.now(),
        ttlMs: 60_000,
        pollIntervalMs: 1000,
      });
      await one.create(record("a"));
      await two.create(record("b"));
      await assert.rejects(two.create(record("c")), (error) => {
        assert.ok(error instanceof TaskLimitError);
        assert.match(error.message, /Too many unfinished tasks for this client \(limit 2\)/);
        return true;
      });
      const done = await one.update("a", { status: "completed", result: { content: [] } });
      assert.equal(done?.status, "completed");
      // Terminal tasks never change again.
      assert.equal((await two.update("a", { status: "failed" }))?.status, "completed");
      await two.create(record("c"));
      await assert.rejects(one.create(record("d", "other")), /Too many tasks \(limit 3\)/);
      assert.deepEqual((await two.list("o")).map((t) => t.taskId), ["a", "b", "c"]);
      assert.equal(await two.get("a", "other"), undefined);
    } finally {
      await Promise.all(links.map((l) => l.close()));
      await redis.stop();
    }
  },
});
