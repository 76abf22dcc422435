/**
 * Cloud providers end to end: the real daemon with `ANTHROPIC_API_KEY` and
 * `OPENAI_API_KEY` pointing at the Anthropic and OpenAI doubles (through
 * their `*_BASE_URL` variables) beside the Ollama double, driven by the v2
 * SDK client over stdio and WebSocket: list, stream with progress, a tool
 * call round trip on both APIs, router tools across three providers, cancel
 * closing the upstream, a retry after 429, and no key in any log line or
 * error text. The CLI does the same through `provider/model` names.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { type AnthropicDouble, startAnthropicDouble } from "../anthropic_double.ts";
import { startDaemon } from "../daemon.ts";
import { resultText, tapProgress } from "../mcp_calls.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { type OpenAiDouble, startOpenAiDouble } from "../openai_double.ts";
import { childEnv, MAIN, SERVE_PERMISSIONS, serveArgs } from "../stdio_client.ts";
import { WebSocketTransport } from "../ws_client_transport.ts";

interface Doubles {
  ollama: OllamaDouble;
  anthropic: AnthropicDouble;
  openai: OpenAiDouble;
}

async function withDoubles(fn: (d: Doubles) => Promise<void>): Promise<void> {
  const ollama = await startOllamaDouble();
  const anthropic = await startAnthropicDouble();
  const openai = await startOpenAiDouble();
  try {
    await fn({ ollama, anthropic, openai });
  } finally {
    await Promise.all([ollama.close(), anthropic.close(), openai.close()]);
  }
}

function cloudEnv(d: Doubles): Record<string, string> {
  return {
    ANTHROPIC_API_KEY: d.anthropic.apiKey,
    ANTHROPIC_BASE_URL: d.anthropic.url,
    OPENAI_API_KEY: d.openai.apiKey!,
    OPENAI_BASE_URL: d.openai.url,
  };
}

/** Connects a v2 client over stdio or WebSocket; returns it and the daemon's stderr. */
async function connect(kind: "stdio" | "websocket", d: Doubles) {
  const client = new Client({ name: "cloud-e2e", version: "1" });
  if (kind === "stdio") {
    let stderr = "";
    const transport = new StdioClientTransport({
      command: Deno.execPath(),
      args: serveArgs(d.ollama.host, ["--stdio", "--log-level", "debug"]),
      env: childEnv(cloudEnv(d)),
      stderr: "pipe",
    });
    transport.stderr?.on("data", (chunk: Uint8Array) => stderr += new TextDecoder().decode(chunk));
    await client.connect(transport);
    return { client, stderr: () => stderr, close: () => client.close() };
  }
  const daemon = await startDaemon(d.ollama.host, ["--log-level", "debug"], { env: cloudEnv(d) });
  await client.connect(new WebSocketTransport(daemon.wsUrl));
  return {
    client,
    stderr: () => daemon.stderr(),
    close: async () => {
      await client.close();
      await daemon.stop();
    },
  };
}

/** Streams a generation and returns the result and the progress text that reached the client. */
async function generate(client: Client, tool: string, model: string, prompt: string) {
  // Read on the wire: the SDK client's onprogress drops what shares a read with the result.
  const wire = tapProgress(client);
  const result = await client.callTool(
    { name: tool, arguments: { model, prompt } },
    { onprogress: () => {} },
  );
  return { result, streamed: wire.text() };
}

for (const kind of ["stdio", "websocket"] as const) {
  Deno.test(`cloud providers over ${kind}: list, stream, tool round trip, router, cancel, retry, no keys`, async () => {
    await withDoubles(async (d) => {
      const { client, stderr, close } = await connect(kind, d);
      try {
        const { tools } = await client.listTools();
        const names = tools.map((t) => t.name);
        for (const id of ["ollama", "anthropic", "openai"]) {
          assert.ok(names.includes(`ai_${id}_generate`), `${id} tools registered`);
        }
        assert.equal(names.includes("ai_anthropic_embed"), false, "Anthropic has no embeddings");
        assert.ok(names.includes("ai_openai_embed"));

        // Router listing across the three providers.
        const listed = await client.callTool({ name: "ai_list_models", arguments: {} });
        const models = (listed.structuredContent as { models: { name: string }[] }).models.map((
          m,
        ) => m.name);
        for (
          const name of [
            "ollama/llama3.2:latest",
            "anthropic/claude-sonnet-4-6",
            "openai/gpt-4o-mini",
          ]
        ) {
          assert.ok(models.includes(name), `${name} in ${models.join(", ")}`);
        }

        // Streaming on both cloud APIs, per-provider and routed.
        for (
          const [tool, model] of [
            ["ai_anthropic_generate", "claude-sonnet-4-6"],
            ["ai_openai_generate", "gpt-4o-mini"],
            ["ai_generate", "anthropic/claude-sonnet-4-6"],
            ["ai_generate", "openai/gpt-4o-mini"],
            ["ai_generate", "ollama/llama3.2"],
          ]
        ) {
          const { result, streamed } = await generate(client, tool, model, "cloud hello");
          assert.equal(result.isError, undefined, resultText(result));
          assert.equal(resultText(result), "Echo: cloud hello", `${tool} ${model}`);
          assert.equal(streamed, "Echo: cloud hello", `${tool} ${model} streamed`);
        }

        // A tool call round trip on each API: call → result paired by id → answer.
        d.anthropic.scriptNext({
          toolCalls: [{ name: "get_weather", arguments: { city: "Oslo" } }],
        });
        d.openai.scriptNext({ toolCalls: [{ name: "get_weather", arguments: { city: "Oslo" } }] });
        for (
          const [tool, model, double] of [
            ["ai_anthropic_chat", "claude-sonnet-4-6", d.anthropic],
            ["ai_openai_chat", "gpt-4o-mini", d.openai],
          ] as const
        ) {
          const tools = [{
            type: "function",
            function: {
              name: "get_weather",
              parameters: { type: "object", properties: { city: { type: "string" } } },
            },
          }];
          const question = { role: "user", content: "weather in Oslo?" };
          const first = await client.callTool({
            name: tool,
            arguments: { model, messages: [question], tools },
          });
          const structured = first.structuredContent as {
            message: {
              tool_calls: { id: string; function: { name: string; arguments: unknown } }[];
            };
            done_reason: string;
          };
          assert.equal(structured.done_reason, "tool_calls");
          const [call] = structured.message.tool_calls;
          assert.deepEqual(call.function, { name: "get_weather", arguments: { city: "Oslo" } });
          assert.ok(call.id, "the call has an id");
          const second = await client.callTool({
            name: tool,
            arguments: {
              model,
              tools,
              messages: [
                question,
                { role: "assistant", content: "", tool_calls: [call] },
                {
                  role: "tool",
                  tool_call_id: call.id,
                  tool_name: "get_weather",
                  content: "sunny, 21 °C",
                },
              ],
            },
          });
          assert.equal(second.isError, undefined, resultText(second));
          // The result reached the API paired with the call's id.
          const body = JSON.stringify(double.requests.at(-1)!.body);
          assert.ok(body.includes(call.id) && body.includes("sunny, 21 °C"), body);
        }

        // A 429 before the first token is retried.
        d.openai.failNext({ kind: "status", status: 429, headers: { "retry-after": "0" } });
        const before = d.openai.requests.filter((r) => r.path.endsWith("/chat/completions")).length;
        const retried = await generate(client, "ai_openai_generate", "gpt-4o-mini", "again");
        assert.equal(resultText(retried.result), "Echo: again");
        const after = d.openai.requests.filter((r) => r.path.endsWith("/chat/completions")).length;
        assert.equal(after - before, 2, "one refused, one answered");

        // Cancel closes the upstream stream at once.
        d.anthropic.tokenDelayMs = 20;
        const controller = new AbortController();
        let first!: () => void;
        const streaming = new Promise<void>((resolve) => (first = resolve));
        const long = client.callTool(
          {
            name: "ai_anthropic_generate",
            arguments: { model: "claude-sonnet-4-6", prompt: "x ".repeat(2000) },
          },
          { signal: controller.signal, onprogress: () => first() },
        );
        await streaming;
        assert.equal(d.anthropic.openStreams, 1);
        controller.abort("stop");
        await assert.rejects(long);
        await d.anthropic.waitForOpenStreams(0);
        d.anthropic.tokenDelayMs = 0;

        // A refused key is named by where it came from, never shown.
        d.anthropic.failNext({
          kind: "status",
          status: 401,
          type: "authentication_error",
          message: "invalid x-api-key",
        });
        const refused = await generate(client, "ai_anthropic_generate", "claude-sonnet-4-6", "k");
        assert.equal(refused.result.isError, true);
        assert.match(resultText(refused.result), /ANTHROPIC_API_KEY/);
        for (const key of [d.anthropic.apiKey, d.openai.apiKey!]) {
          assert.equal(resultText(refused.result).includes(key), false);
          assert.equal(stderr().includes(key), false, "no key in the daemon's log");
        }
      } finally {
        await close();
      }
    });
  });
}

Deno.test("the CLI reaches cloud models by provider/model and reports providers without keys", async () => {
  await withDoubles(async (d) => {
    const run = async (args: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...SERVE_PERMISSIONS, MAIN, ...args, "--ollama-host", d.ollama.host],
        clearEnv: true,
        env: childEnv(cloudEnv(d)),
        stdin: "null",
      }).output();
      const decoder = new TextDecoder();
      return {
        code: output.code,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
      };
    };
    const generated = await run([
      "ai",
      "generate",
      "hi cli",
      "--model",
      "anthropic/claude-sonnet-4-6",
    ]);
    assert.equal(generated.code, 0, generated.stderr);
    assert.equal(generated.stdout, "Echo: hi cli\n");
    const openai = await run([
      "ai",
      "generate",
      "hi again",
      "--model",
      "openai/gpt-4o-mini",
      "--json",
    ]);
    assert.equal(JSON.parse(openai.stdout).response, "Echo: hi again");
    const embedded = await run(["ai", "embed", "a", "--model", "openai/text-embedding-3-small"]);
    assert.equal(embedded.code, 0, embedded.stderr);
    assert.equal(Array.isArray(JSON.parse(embedded.stdout)), true);
    const listed = await run(["ai", "list", "--provider", "anthropic"]);
    assert.match(listed.stdout, /^NAME/);
    assert.match(listed.stdout, /claude-sonnet-4-6/);
    const providers = await run(["providers", "--json"]);
    assert.equal(providers.code, 0, providers.stderr);
    const report = JSON.parse(providers.stdout) as {
      providers: { id: string; key: string; reachable: boolean }[];
    };
    assert.deepEqual(report.providers.map((p) => [p.id, p.key, p.reachable]), [
      ["ollama", "none", true],
      ["anthropic", "ANTHROPIC_API_KEY", true],
      ["openai", "OPENAI_API_KEY", true],
    ]);
    for (const output of [generated, openai, embedded, listed, providers]) {
      for (const key of [d.anthropic.apiKey, d.openai.apiKey!]) {
        assert.equal(output.stdout.includes(key) || output.stderr.includes(key), false);
      }
    }
  });
});
