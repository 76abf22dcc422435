/**
 * The stdio transport at the wire level: the real daemon process with raw
 * newline-delimited JSON-RPC on its stdin and stdout.
 *
 * @module
 */

import assert from "node:assert/strict";
import { splitLines } from "../../src/providers/ndjson.ts";
import { type OllamaDouble, startOllamaDouble } from "../ollama_double.ts";
import { childEnv, serveArgs } from "../stdio_client.ts";
import { generateCall } from "../mcp_calls.ts";

type Message = Record<string, unknown> & { id?: unknown; method?: string };

/** A daemon on stdio with a line reader on its stdout. */
interface RawDaemon {
  send(message: unknown): Promise<void>;
  sendRaw(text: string): Promise<void>;
  /** Next stdout message (every stdout line must be JSON). */
  next(): Promise<Message>;
  /** Reads messages until one with `id` arrives; returns all read. */
  until(id: unknown): Promise<Message[]>;
  endInput(): Promise<void>;
  child: Deno.ChildProcess;
  stderr: Promise<string>;
}

function startRaw(double: OllamaDouble, args: string[] = []): RawDaemon {
  const child = new Deno.Command(Deno.execPath(), {
    args: serveArgs(double.host, ["--stdio", ...args]),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv(),
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(splitLines())
    .getReader();
  const encoder = new TextEncoder();
  const next = async (): Promise<Message> => {
    const { value, done } = await lines.read();
    if (done) throw new Error("stdout ended");
    return JSON.parse(value);
  };
  return {
    child,
    stderr: new Response(child.stderr).text(),
    sendRaw: (text) => writer.write(encoder.encode(text)),
    send: (message) => writer.write(encoder.encode(JSON.stringify(message) + "\n")),
    next,
    async until(id) {
      const seen: Message[] = [];
      while (true) {
        const message = await next();
        seen.push(message);
        if (message.id === id && !("method" in message)) return seen;
      }
    },
    async endInput() {
      await writer.close();
    },
  };
}

const INIT = {
  jsonrpc: "2.0",
  id: "init",
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "raw", version: "1" },
  },
};

async function initialized(daemon: RawDaemon): Promise<void> {
  await daemon.send(INIT);
  await daemon.until("init");
  await daemon.send({ jsonrpc: "2.0", method: "notifications/initialized" });
}

async function finish(daemon: RawDaemon): Promise<Deno.CommandStatus> {
  await daemon.endInput().catch(() => {});
  // Drain stdout so the process can exit.
  while (true) {
    try {
      await daemon.next();
    } catch {
      break;
    }
  }
  const status = await daemon.child.status;
  await daemon.stderr;
  return status;
}

Deno.test("stdio sends every progress delta, in order, before the result", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 2 });
  const daemon = startRaw(double);
  try {
    await initialized(daemon);
    await daemon.send(generateCall(1, { prompt: "alpha beta gamma delta epsilon" }));
    const messages = await daemon.until(1);
    const progress = messages.filter((m) => m.method === "notifications/progress");
    const params = progress.map((m) => m.params as { progress: number; message: string });
    assert.ok(params.length >= 2, `several notifications, got ${params.length}`);
    assert.equal(params.map((p) => p.message).join(""), "Echo: alpha beta gamma delta epsilon");
    params.forEach((p, i) => assert.equal(p.progress, i + 1));
    const result = messages.at(-1)!.result as { content: { text: string }[] };
    assert.equal(result.content[0].text, "Echo: alpha beta gamma delta epsilon");
  } finally {
    assert.equal((await finish(daemon)).code, 0);
    await double.close();
  }
});

Deno.test("stdio answers a malformed line with -32700 and keeps the session", async () => {
  const double = await startOllamaDouble();
  const daemon = startRaw(double);
  try {
    await initialized(daemon);
    await daemon.sendRaw("{not json\n");
    const error = await daemon.next();
    assert.deepEqual(error.error, {
      code: -32700,
      message: "Parse error: the message is not valid JSON",
    });
    assert.equal(error.id, null);
    await daemon.send({ jsonrpc: "2.0", id: "bad", method: 42 });
    const invalid = await daemon.next();
    assert.equal(invalid.id, "bad");
    assert.equal((invalid.error as { code: number }).code, -32600);
    await daemon.send({ jsonrpc: "2.0", id: 2, method: "ping" });
    const [pong] = await daemon.until(2);
    assert.deepEqual(pong.result, {});
  } finally {
    assert.equal((await finish(daemon)).code, 0);
    await double.close();
  }
});

Deno.test("stdio drops an oversized line with an error and serves the next message", async () => {
  const double = await startOllamaDouble();
  const daemon = startRaw(double, ["--max-message-bytes", "2000"]);
  try {
    await initialized(daemon);
    await daemon.send(generateCall(3, { prompt: "x".repeat(5000) }));
    const error = await daemon.next();
    assert.equal((error.error as { code: number }).code, -32600);
    assert.match((error.error as { message: string }).message, /longer than 2000/);
    await daemon.send({ jsonrpc: "2.0", id: 4, method: "ping" });
    const [pong] = await daemon.until(4);
    assert.deepEqual(pong.result, {});
  } finally {
    assert.equal((await finish(daemon)).code, 0);
    await double.close();
  }
});

Deno.test("stdio refuses requests beyond the in-flight limit", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 10 });
  const daemon = startRaw(double, ["--max-in-flight", "2"]);
  try {
    await initialized(daemon);
    const long = { numPredict: 50 };
    await daemon.send(generateCall(10, { prompt: "a", ...long }));
    await daemon.send(generateCall(11, { prompt: "b", ...long }));
    await daemon.send(generateCall(12, { prompt: "c", ...long }));
    const messages = await daemon.until(12);
    const refusal = messages.at(-1)!;
    assert.equal((refusal.error as { code: number }).code, -32000);
    assert.match((refusal.error as { message: string }).message, /Too many requests in flight/);
    // Both admitted calls complete, in whichever order.
    const replies = new Map<unknown, Message>();
    const keep = (batch: Message[]) => {
      for (const m of batch) if (m.id === 10 || m.id === 11) replies.set(m.id, m);
    };
    keep(messages);
    while (replies.size < 2) keep(await daemon.until(replies.has(10) ? 11 : 10));
    for (const [id, prompt] of [[10, "a"], [11, "b"]] as const) {
      const result = replies.get(id)!.result as { structuredContent?: { response?: string } };
      // 50 tokens cycling through "Echo:", " <prompt>".
      assert.equal(result.structuredContent?.response, `Echo: ${prompt}`.repeat(25), `call ${id}`);
    }
  } finally {
    assert.equal((await finish(daemon)).code, 0);
    await double.close();
  }
});

Deno.test("EOF on stdin aborts in-flight upstream calls and exits 0", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 20 });
  const daemon = startRaw(double);
  try {
    await initialized(daemon);
    await daemon.send(generateCall(20, { prompt: "x", numPredict: 100_000 }));
    const first = await daemon.next();
    assert.equal(first.method, "notifications/progress");
    assert.equal(double.openStreams, 1);
  } finally {
    const status = await finish(daemon);
    assert.equal(status.code, 0);
    await double.waitForOpenStreams(0);
    await double.close();
  }
});

Deno.test("SIGTERM stops the stdio daemon with exit code 0 and logs only to stderr", async () => {
  const double = await startOllamaDouble();
  const daemon = startRaw(double, ["--shutdown-grace", "0.2"]);
  await initialized(daemon);
  daemon.child.kill("SIGTERM");
  const status = await daemon.child.status;
  assert.equal(status.code, 0);
  const stderr = await daemon.stderr;
  assert.match(stderr, /rune info: serving MCP on stdio/);
  await daemon.endInput().catch(() => {});
  await daemon.next().catch(() => {});
  await double.close();
});

Deno.test("a call with id 0 is cancelled like any other and frees its slot", async () => {
  const double = await startOllamaDouble({ tokenDelayMs: 5 });
  const daemon = startRaw(double, ["--max-in-flight", "1"]);
  try {
    await initialized(daemon);
    await daemon.send(generateCall(0, { prompt: "zero", numPredict: 100_000 }));
    await double.waitForOpenStreams(1);
    await daemon.send({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: 0, reason: "test" },
    });
    await double.waitForOpenStreams(0);
    await daemon.send(generateCall(1, { prompt: "one" }));
    const seen = await daemon.until(1);
    const reply = seen.at(-1)!;
    assert.equal(reply.error, undefined, "the slot of id 0 was given back");
    assert.equal(
      (reply.result as { structuredContent: { response: string } }).structuredContent.response,
      "Echo: one",
    );
    // A cancelled request is never answered.
    assert.equal(seen.filter((m) => m.id === 0 && !("method" in m)).length, 0);
  } finally {
    assert.equal((await finish(daemon)).code, 0);
    await double.close();
  }
});

Deno.test("tools/call without params is an invalid-params error", async () => {
  const double = await startOllamaDouble();
  const daemon = startRaw(double);
  try {
    await initialized(daemon);
    await daemon.send({ jsonrpc: "2.0", id: 9, method: "tools/call" });
    const [reply] = await daemon.until(9);
    assert.equal((reply.error as { code: number }).code, -32602);
  } finally {
    assert.equal((await finish(daemon)).code, 0);
    await double.close();
  }
});

Deno.test("a refusal of garbage sent right behind initialize arrives after the initialize result", async () => {
  const double = await startOllamaDouble();
  const daemon = startRaw(double);
  try {
    // Both in one write: the refusal is decided at once, the handshake is answered later.
    await daemon.sendRaw(`${JSON.stringify(INIT)}\nthis is not json\n`);
    const first = await daemon.next();
    assert.equal(first.id, "init");
    assert.equal((first.result as { protocolVersion: string }).protocolVersion, "2025-06-18");
    const second = await daemon.next();
    assert.deepEqual(second, {
      jsonrpc: "2.0",
      id: null,
      error: { code: -32700, message: "Parse error: the message is not valid JSON" },
    });
  } finally {
    assert.equal((await finish(daemon)).code, 0);
    await double.close();
  }
});

Deno.test("a 2026-07-28 client speaks statelessly over stdio: discover, then enveloped calls", async () => {
  const double = await startOllamaDouble();
  const daemon = startRaw(double);
  const meta = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
  };
  try {
    await daemon.send({
      jsonrpc: "2.0",
      id: 1,
      method: "server/discover",
      params: { _meta: meta },
    });
    const [discover] = await daemon.until(1);
    assert.deepEqual((discover.result as { supportedVersions: string[] }).supportedVersions, [
      "2026-07-28",
    ]);
    await daemon.send({
      jsonrpc: "2.0",
      id: 2,
      method: "tools/call",
      params: {
        name: "ai_ollama_generate",
        arguments: { model: "llama3.2", prompt: "stateless" },
        _meta: { ...meta, progressToken: "p" },
      },
    });
    const seen = await daemon.until(2);
    const reply = seen.at(-1)!;
    const result = reply.result as { resultType: string; structuredContent: { response: string } };
    assert.equal(result.resultType, "complete");
    assert.equal(result.structuredContent.response, "Echo: stateless");
    const progress = seen.filter((m) => m.method === "notifications/progress");
    assert.equal(
      progress.map((m) => (m.params as { message: string }).message).join(""),
      "Echo: stateless",
    );
    // initialize, ping and logging/setLevel do not exist in this era.
    await daemon.send({ jsonrpc: "2.0", id: 3, method: "ping", params: { _meta: meta } });
    const [ping] = await daemon.until(3);
    assert.equal((ping.error as { code: number }).code, -32601);
  } finally {
    assert.equal((await finish(daemon)).code, 0);
    await double.close();
  }
});
