/**
 * The fleet end to end, with real daemons, Ollama doubles and a real
 * `redis-server`:
 *
 * - one Rune over three hosts: model lists say where each model is, a host
 *   failing before the first token and a host killed outright lose no
 *   call, and `/healthz` and `/metrics` (parsed as Prometheus would) show
 *   exactly the calls made;
 * - two Rune instances sharing Redis, reached by stateless 2026-07-28
 *   requests as a round-robin load balancer would send them: one's cached
 *   embedding costs the other nothing upstream, a task created on one is
 *   read and cancelled on the other, and with Redis killed calls go on;
 * - the per-client limit shared by the two instances, exact at the
 *   boundary, with `retryAfter`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/client";
import { startDaemon } from "../daemon.ts";
import { rpcReply, tapProgress } from "../mcp_calls.ts";
import { DEFAULT_MODELS, type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { parsePrometheusText, valueOf } from "../prometheus_text.ts";
import { REDIS_SKIP_REASON, startRedis } from "../redis_server.ts";
import { WebSocketTransport } from "../ws_client_transport.ts";

const TASKS = "io.modelcontextprotocol/tasks";
const TOKEN = "fleet-e2e-token";
const OTHER_TOKEN = "fleet-e2e-other";

// deno-lint-ignore no-explicit-any
type Reply = Record<string, any>;

/** A 2026-07-28 request over raw Streamable HTTP (stateless: any instance may answer it). */
async function modern(
  url: string,
  request: {
    method: string;
    params: Record<string, unknown>;
    /** The `Mcp-Name` header (tool name or task id). */
    name?: string;
    /** Bearer token. */
    token?: string;
    /** Declare the tasks extension (long calls then become tasks). */
    tasks?: boolean;
  },
): Promise<Reply> {
  const { method, params, ...options } = request;
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2026-07-28",
      "mcp-method": method,
      ...(options.name !== undefined && { "mcp-name": options.name }),
      ...(options.token && { authorization: `Bearer ${options.token}` }),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientCapabilities": options.tasks
            ? { extensions: { [TASKS]: {} } }
            : {},
        },
      },
    }),
  });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return rpcReply(response.headers.get("content-type"), text);
}

/** A tool call as a stateless request (a task when `tasks`). */
function call(
  url: string,
  tool: { name: string; args: Record<string, unknown>; token?: string; tasks?: boolean },
) {
  const { name, args, ...options } = tool;
  return modern(url, { method: "tools/call", params: { name, arguments: args }, name, ...options });
}

/** Loads `model` on `double` through its own API. */
async function load(double: OllamaDouble, model: string): Promise<void> {
  const response = await fetch(`${double.url}/api/generate`, {
    method: "POST",
    body: JSON.stringify({ model, prompt: "warm up" }),
  });
  await response.arrayBuffer();
}

function count(double: OllamaDouble, path: string): number {
  return double.requests.filter((r) => r.path === path).length;
}

Deno.test("one Rune over three hosts: hosts listed, no call lost to a failing or dead host, metrics match", async () => {
  const [a, b, c] = await Promise.all([
    startOllamaDouble(),
    startOllamaDouble(),
    startOllamaDouble({ models: DEFAULT_MODELS.filter((m) => m.name.startsWith("qwen3")) }),
  ]);
  await load(a, "llama3.2");
  const daemon = await startDaemon(a.host, ["--ollama-host", b.host, "--ollama-host", c.host], {
    env: { RUNE_TOKEN: TOKEN },
  });
  const url = daemon.mcpUrl;
  try {
    const listed = await call(url, { name: "ai_ollama_list_models", args: {}, token: TOKEN });
    const hostsOf = Object.fromEntries(
      listed.result.structuredContent.models.map((m: { name: string; hosts: string[] }) => [
        m.name,
        m.hosts,
      ]),
    );
    assert.deepEqual(hostsOf["llama3.2:latest"], [a.host, b.host]);
    assert.deepEqual(hostsOf["qwen3:latest"], [a.host, b.host, c.host]);

    // A fails before its first token: B answers, once.
    a.failNext({ kind: "status", status: 500, error: "runner crashed" }, 1, "/api/generate");
    const first = await call(url, {
      name: "ai_ollama_generate",
      args: { model: "llama3.2", prompt: "one" },
      token: TOKEN,
    });
    assert.equal(first.result.structuredContent.response, "Echo: one");
    assert.deepEqual(first.result.content, [{ type: "text", text: "Echo: one" }]);
    // A (where the model is loaded) is killed: the call that was about to go there goes to B.
    await a.close();
    const second = await call(url, {
      name: "ai_ollama_generate",
      args: { model: "llama3.2", prompt: "two" },
      token: TOKEN,
    });
    assert.equal(second.result.structuredContent.response, "Echo: two");
    const third = await call(url, {
      name: "ai_ollama_generate",
      args: { model: "qwen3", prompt: "three" },
      token: TOKEN,
    });
    assert.equal(third.result.structuredContent.response, "Echo: three");
    const embeds = [];
    for (let i = 0; i < 2; i++) {
      embeds.push(
        await call(url, {
          name: "ai_ollama_embed",
          args: { model: "all-minilm", input: "same" },
          token: TOKEN,
        }),
      );
    }
    assert.equal(embeds[1].result.structuredContent.cached, true);
    const vision = await call(url, {
      name: "ai_ollama_generate",
      args: { model: "llava", prompt: "x" },
      token: TOKEN,
    });
    assert.equal(vision.result.isError, undefined, "llava is on B");
    assert.equal(count(b, "/api/embed") + count(c, "/api/embed"), 1);

    const health = await (await fetch(`${daemon.url}/healthz`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    })).json();
    assert.deepEqual(
      health.hosts.ollama.map((h: { host: string; state: string }) => [h.host, h.state]),
      [[a.host, "down"], [b.host, "up"], [c.host, "up"]],
    );
    assert.match(health.hosts.ollama[0].error, /connection was refused/);
    assert.deepEqual(health.cache, {
      store: "memory",
      status: "up",
      bytes: health.cache.bytes,
      max_bytes: 67108864,
    });

    // /metrics: token holders only, then exactly the calls above.
    assert.equal((await fetch(`${daemon.url}/metrics`)).status, 401);
    const response = await fetch(`${daemon.url}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const metrics = parsePrometheusText(await response.text());
    const generate = { tool: "ai_ollama_generate", provider: "ollama", outcome: "ok" };
    assert.equal(valueOf(metrics, "rune_tool_calls_total", { ...generate, model: "llama3.2" }), 2);
    assert.equal(valueOf(metrics, "rune_tool_calls_total", { ...generate, model: "qwen3" }), 1);
    assert.equal(valueOf(metrics, "rune_tool_calls_total", { ...generate, model: "llava" }), 1);
    assert.equal(valueOf(metrics, "rune_tool_calls_total", { tool: "ai_ollama_embed" }), 2);
    assert.equal(valueOf(metrics, "rune_tool_calls_total", { tool: "ai_ollama_list_models" }), 1);
    assert.equal(valueOf(metrics, "rune_tool_calls_total"), 7);
    // Every call came with the one configured token: identity token:1, never the token itself.
    assert.equal(valueOf(metrics, "rune_client_tool_calls_total", { client: "token:1" }), 7);
    assert.equal(valueOf(metrics, "rune_tool_call_duration_seconds_count"), 7);
    assert.equal(valueOf(metrics, "rune_time_to_first_token_seconds_count"), 4);
    assert.equal(valueOf(metrics, "rune_failovers_total", { provider: "ollama" }), 2);
    assert.equal(
      valueOf(metrics, "rune_upstream_errors_total", { provider: "ollama", kind: "server_error" }),
      1,
    );
    assert.equal(
      valueOf(metrics, "rune_upstream_errors_total", { provider: "ollama", kind: "unreachable" }),
      1,
    );
    assert.equal(valueOf(metrics, "rune_cache_hits_total"), 1);
    assert.equal(valueOf(metrics, "rune_cache_misses_total"), 1);
    assert.ok(valueOf(metrics, "rune_cache_bytes") > 0);
    const results = [first, second, third, vision].map((r) => r.result.structuredContent.usage);
    const tokensIn = results.reduce((n, u) => n + u.prompt_tokens, 0) +
      embeds[0].result.structuredContent.usage.prompt_tokens;
    const tokensOut = results.reduce((n, u) => n + u.completion_tokens, 0);
    assert.equal(valueOf(metrics, "rune_tokens_total", { direction: "in" }), tokensIn);
    assert.equal(valueOf(metrics, "rune_tokens_total", { direction: "out" }), tokensOut);
    assert.equal(valueOf(metrics, "rune_upstream_host_up", { host: a.host }), 0);
    assert.equal(valueOf(metrics, "rune_upstream_host_up", { host: b.host }), 1);
    assert.equal(valueOf(metrics, "rune_upstream_in_flight"), 0);
    assert.equal(valueOf(metrics, "rune_sessions", { transport: "stdio" }), 0);
  } finally {
    await daemon.stop();
    await Promise.all([b.close(), c.close()]);
  }
});

Deno.test("a host failing after the first token: the client sees the text once, then a clear error", async () => {
  const [a, b] = await Promise.all([startOllamaDouble(), startOllamaDouble()]);
  await load(a, "llama3.2");
  const daemon = await startDaemon(a.host, ["--ollama-host", b.host]);
  const client = new Client({ name: "fleet-e2e", version: "1" });
  await client.connect(new WebSocketTransport(daemon.wsUrl));
  try {
    a.failNext({ kind: "drop", afterTokens: 2 }, 1, "/api/generate");
    const wire = tapProgress(client);
    const result = await client.callTool(
      { name: "ai_ollama_generate", arguments: { model: "llama3.2", prompt: "one two three" } },
      { onprogress: () => {} },
    ) as { isError?: boolean; content: { text: string }[] };
    assert.equal(wire.text(), "Echo: one", "the two tokens, once");
    assert.equal(result.isError, true);
    assert.match(
      result.content[0].text,
      /closed the connection in the middle of the reply.*did not retry it on another host \(the text would repeat\): call again\.$/,
    );
    assert.equal(count(b, "/api/generate"), 0, "nothing was sent to the other host");
  } finally {
    await client.close();
    await daemon.stop();
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test({
  name:
    "two Rune instances share Redis: cache and tasks across them, and calls go on without Redis",
  ignore: REDIS_SKIP_REASON !== undefined,
  fn: async () => {
    const redis = await startRedis();
    const double = await startOllamaDouble({ tokenDelayMs: 20 });
    const [one, two] = await Promise.all([
      startDaemon(double.host, ["--redis", redis.url]),
      startDaemon(double.host, ["--redis", redis.url]),
    ]);
    try {
      await Promise.all(
        [one, two].map((d) => d.waitForLog(/redis at 127\.0\.0\.1:\d+ is connected/)),
      );
      const embed = { model: "all-minilm", input: ["shared", "text"] };
      const fresh = await call(one.mcpUrl, { name: "ai_ollama_embed", args: embed });
      assert.equal(fresh.result.structuredContent.cached, undefined);
      const shared = await call(two.mcpUrl, { name: "ai_ollama_embed", args: embed });
      assert.equal(shared.result.structuredContent.cached, true);
      assert.deepEqual(
        shared.result.structuredContent.embeddings,
        fresh.result.structuredContent.embeddings,
      );
      assert.equal(count(double, "/api/embed"), 1, "the second instance did not reach Ollama");

      // A task made on one instance is read and cancelled on the other.
      const created = await call(one.mcpUrl, {
        name: "ai_ollama_generate",
        args: { model: "llama3.2", prompt: "x", options: { num_predict: 100_000 } },
        tasks: true,
      });
      assert.equal(created.result.resultType, "task");
      const taskId = created.result.taskId;
      await double.waitForOpenStreams(1);
      const got = await modern(two.mcpUrl, {
        method: "tasks/get",
        params: { taskId },
        name: taskId,
        tasks: true,
      });
      assert.equal(got.result.status, "working");
      await modern(two.mcpUrl, {
        method: "tasks/cancel",
        params: { taskId },
        name: taskId,
        tasks: true,
      });
      await double.waitForOpenStreams(0);
      const cancelled = await modern(one.mcpUrl, {
        method: "tasks/get",
        params: { taskId },
        name: taskId,
        tasks: true,
      });
      assert.equal(cancelled.result.status, "cancelled");
      const short = await call(two.mcpUrl, {
        name: "ai_ollama_generate",
        args: { model: "llama3.2", prompt: "hi" },
        tasks: true,
      });
      assert.equal(short.result.resultType, "task");
      let polled = short;
      while (polled.result.status === "working") {
        polled = await modern(one.mcpUrl, {
          method: "tasks/get",
          params: { taskId: short.result.taskId },
          name: short.result.taskId,
          tasks: true,
        });
      }
      assert.equal(polled.result.result.structuredContent.response, "Echo: hi");

      // Redis goes away: calls still work, uncached, and both say so.
      await redis.kill();
      await one.waitForLog(/redis at 127\.0\.0\.1:\d+ is down/);
      for (let i = 0; i < 2; i++) {
        const alone = await call(one.mcpUrl, {
          name: "ai_ollama_embed",
          args: { model: "all-minilm", input: "new" },
        });
        assert.equal(alone.result.isError, undefined);
        assert.equal(alone.result.structuredContent.cached, undefined);
      }
      assert.equal(count(double, "/api/embed"), 3);
      const health = await (await fetch(`${one.url}/healthz`)).json();
      assert.deepEqual(health.cache, { store: "redis", status: "down" });
      assert.equal(health.redis.status, "down");
    } finally {
      await Promise.all([one.stop(), two.stop()]);
      await double.close();
      await redis.stop();
    }
  },
});

/** Waits out the last seconds of an hour, so a test's counts fall in one `N/h` window. */
async function oneHourWindow(): Promise<void> {
  const left = 3_600_000 - (Date.now() % 3_600_000);
  if (left < 30_000) await new Promise((resolve) => setTimeout(resolve, left + 100));
}

Deno.test({
  name: "the per-client limit is shared by two instances through Redis, exact at the boundary",
  ignore: REDIS_SKIP_REASON !== undefined,
  fn: async () => {
    await oneHourWindow();
    const redis = await startRedis();
    const double = await startOllamaDouble();
    const file = await Deno.makeTempFile();
    await Deno.writeTextFile(file, `${TOKEN}\n${OTHER_TOKEN}\n`);
    const args = ["--redis", redis.url, "--rate-limit", "5/h", "--token-file", file];
    const [one, two] = await Promise.all([
      startDaemon(double.host, args),
      startDaemon(double.host, args),
    ]);
    try {
      await Promise.all(
        [one, two].map((d) => d.waitForLog(/redis at 127\.0\.0\.1:\d+ is connected/)),
      );
      const args = { model: "llama3.2", prompt: "hi" };
      for (let i = 0; i < 5; i++) {
        const reply = await call([one, two][i % 2].mcpUrl, {
          name: "ai_ollama_chat",
          args: { model: "llama3.2", messages: [{ role: "user", content: `n${i}` }] },
          token: TOKEN,
        });
        assert.equal(reply.result.isError, undefined, `call ${i + 1} of 5`);
      }
      const refused = await call(two.mcpUrl, { name: "ai_ollama_generate", args, token: TOKEN });
      assert.equal(refused.result.isError, true);
      const data = refused.result.structuredContent;
      assert.deepEqual({ ...data, retryAfter: 0 }, {
        error: "rate_limited",
        scope: "client",
        limit: "5/h",
        retryAfter: 0,
      });
      assert.ok(data.retryAfter >= 1 && data.retryAfter <= 3600);
      assert.match(refused.result.content[0].text, /this client may make 5 requests per hour/);
      // Not a tool call: a JSON-RPC error with the same data, on the other instance too.
      const list = await modern(one.mcpUrl, { method: "tools/list", params: {}, token: TOKEN });
      assert.equal(list.error.code, -32000);
      assert.equal(list.error.data.scope, "client");
      assert.ok(list.error.data.retryAfter >= 1);
      // Another client has its own budget.
      const other = await call(one.mcpUrl, {
        name: "ai_ollama_generate",
        args,
        token: OTHER_TOKEN,
      });
      assert.equal(other.result.structuredContent.response, "Echo: hi");
      assert.equal(count(double, "/api/chat") + count(double, "/api/generate"), 6);
      const metrics = parsePrometheusText(
        await (await fetch(`${two.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } }))
          .text(),
      );
      assert.equal(valueOf(metrics, "rune_rate_limited_total", { scope: "client" }), 1);
      assert.equal(
        valueOf(metrics, "rune_tool_calls_total", {
          tool: "ai_ollama_generate",
          outcome: "rate_limited",
        }),
        1,
      );
    } finally {
      await Promise.all([one.stop(), two.stop()]);
      await double.close();
      await redis.stop();
      await Deno.remove(file);
    }
  },
});
