/**
 * Fuzzes the JSON-RPC front door over stdio and WebSocket with malformed,
 * truncated, oversized and type-confused messages from a seeded PRNG. Each
 * message comes with the reply it deserves: a JSON-RPC error with the right
 * code and id (or null), a result, nothing at all (malformed notifications,
 * responses to nothing), or, for an oversized WebSocket frame, a 1009
 * close. The daemon must never exit and must still serve calls at the end.
 *
 * Set `FUZZ_SEED` to replay a run; the seed is printed either way.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startOllamaDouble } from "../ollama_double.ts";
import {
  type FaultDaemon,
  INITIALIZED,
  initializeRequest,
  type Message,
  openSocket,
  prng,
  type RawSocket,
  spawnDaemon,
  within,
} from "./support.ts";
import { resultText } from "../mcp_calls.ts";

/** Messages per transport. */
const MESSAGES = 1_500;
/** Messages between two barriers. */
const ROUND = 50;
/** The daemon's `--max-message-bytes`; larger messages are oversized. */
const MAX_MESSAGE = 4_096;
const STEP_MS = 20_000;

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;

/** What the daemon must do with one fuzzed message. */
type Expect =
  | { kind: "reply"; id: string | number | null; code?: number; toolError?: boolean }
  | { kind: "drop" }
  | { kind: "too-big" };

interface Case {
  category: string;
  text: string;
  expect: Expect;
}

/** Generates fuzz cases from a PRNG; ids are unique across the run. */
function caseGenerator(random: () => number) {
  let serial = 0;
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  const newId = (): string | number => pick([true, false]) ? `f-${++serial}` : 1e6 + ++serial;
  const junkChars = "{}[]:,\"'\\ abcxyz0123456789.-+eE\ttrue false null é€😀";
  const junk = (length: number) => Array.from({ length }, () => pick([...junkChars])).join("");
  const nonObjectParams = [1, "text", true, [1, 2], null] as const;
  const badIds = [{}, [], true, null, { id: 1 }] as const;
  const valid = (id: string | number): Message => ({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: {
      name: "ai_ollama_generate",
      arguments: { model: "llama3.2", prompt: junk(int(40)) },
    },
  });
  const reply = (id: string | number | null, code?: number): Expect => ({
    kind: "reply",
    id,
    code,
  });

  const generators: Record<string, () => Omit<Case, "category">> = {
    garbage: () => {
      let text: string;
      do {
        text = junk(1 + int(120)).trim();
        try {
          JSON.parse(text);
          text = "";
        } catch {
          // Not JSON: what we want.
        }
      } while (text === "");
      return { text, expect: reply(null, PARSE_ERROR) };
    },
    truncated: () => {
      const text = JSON.stringify(valid(newId()));
      // A proper prefix of a JSON object is never valid JSON.
      return { text: text.slice(0, 1 + int(text.length - 1)), expect: reply(null, PARSE_ERROR) };
    },
    "not an object": () => ({
      text: JSON.stringify(pick([0, -1.5, "ping", true, null, [], [valid(newId())], [1, 2]])),
      expect: reply(null, INVALID_REQUEST),
    }),
    "invalid request with an id": () => {
      const id = newId();
      const message = pick<Record<string, unknown>>([
        { jsonrpc: "2.0", id, method: pick([42, null, {}, ["ping"]]) },
        { jsonrpc: "1.0", id, method: "ping" },
        { id, method: "ping" },
        { jsonrpc: "2.0", id, method: "ping", params: pick(nonObjectParams) },
        { jsonrpc: "2.0", id },
      ]);
      return { text: JSON.stringify(message), expect: reply(id, INVALID_REQUEST) };
    },
    "request with an unusable id": () => ({
      text: JSON.stringify({ jsonrpc: "2.0", id: pick(badIds), method: "ping" }),
      expect: reply(null, INVALID_REQUEST),
    }),
    "malformed notification": () => ({
      text: JSON.stringify(pick<Record<string, unknown>>([
        { jsonrpc: "1.0", method: "notifications/initialized" },
        { method: "notifications/progress" },
        { jsonrpc: "2.0", method: "notifications/cancelled", params: pick(nonObjectParams) },
      ])),
      expect: { kind: "drop" },
    }),
    "unknown notification": () => ({
      text: JSON.stringify({ jsonrpc: "2.0", method: `notifications/fuzz/${junk(5)}` }),
      expect: { kind: "drop" },
    }),
    "response to nothing": () => ({
      text: JSON.stringify(pick<Record<string, unknown>>([
        { jsonrpc: "2.0", id: `orphan-${++serial}`, result: {} },
        { jsonrpc: "2.0", id: 9e8 + ++serial, error: { code: -1, message: "no" } },
      ])),
      expect: { kind: "drop" },
    }),
    "unknown method": () => {
      const id = newId();
      return {
        text: JSON.stringify({ jsonrpc: "2.0", id, method: `fuzz/${junk(8)}`, params: {} }),
        expect: reply(id, METHOD_NOT_FOUND),
      };
    },
    "type-confused tool arguments": () => {
      const id = newId();
      const args = pick<Record<string, unknown>>([
        { model: pick([5, "", null, ["llama3.2"]]), prompt: "hi" },
        { model: "llama3.2", prompt: pick([5, null, { text: "hi" }]) },
        { model: "llama3.2" },
        { model: "llama3.2", prompt: "hi", options: { num_predict: pick(["10", 1.5, -0.5]) } },
        { model: "llama3.2", prompt: "hi", surprise: true },
      ]);
      const name = pick(["ai_ollama_generate", "ai_ollama_generate", "ai_nobody_generate"]);
      if (name !== "ai_ollama_generate") {
        // An unknown tool is a protocol error.
        const message = {
          jsonrpc: "2.0",
          id,
          method: "tools/call",
          params: { name, arguments: {} },
        };
        return { text: JSON.stringify(message), expect: reply(id, INVALID_PARAMS) };
      }
      // Invalid arguments are a tool execution error the calling model can correct (SEP-1303).
      const message = {
        jsonrpc: "2.0",
        id,
        method: "tools/call",
        params: { name, arguments: args },
      };
      return { text: JSON.stringify(message), expect: { kind: "reply", id, toolError: true } };
    },
    "type-confused tools/call params": () => {
      const id = newId();
      const params = pick<Record<string, unknown>>([
        {},
        { name: 5 },
        { name: "ai_ollama_generate", arguments: pick(["x", 5, [1]]) },
      ]);
      return {
        text: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params }),
        expect: reply(id, INVALID_PARAMS),
      };
    },
    ping: () => {
      const id = newId();
      return { text: JSON.stringify({ jsonrpc: "2.0", id, method: "ping" }), expect: reply(id) };
    },
    oversized: () => {
      const message = valid(newId());
      (message.params as { arguments: { prompt: string } }).arguments.prompt = "x".repeat(
        MAX_MESSAGE + int(MAX_MESSAGE),
      );
      return { text: JSON.stringify(message), expect: { kind: "too-big" } };
    },
  };
  const names = Object.keys(generators);
  return (): Case => {
    const category = pick(names);
    return { category, ...generators[category]() };
  };
}

/** One side of the conversation: stdio lines or WebSocket frames. */
interface Wire {
  send(text: string): Promise<void>;
  next(): Promise<Message>;
}

function describe(c: Case): string {
  const text = c.text.length > 200 ? `${c.text.slice(0, 200)}... (${c.text.length} chars)` : c.text;
  return `${c.category}: ${text}`;
}

/**
 * Sends `cases`, then a barrier ping, and checks every reply up to the
 * barrier's: each expected reply arrives once with the right code, and
 * nothing else arrives (a dropped message that got a reply fails here or,
 * if late, in a later round as an unexpected id).
 */
async function runRound(wire: Wire, cases: Case[], barrierId: string, seed: number) {
  const byId = new Map<string | number, Case>();
  const nulls: Case[] = [];
  for (const c of cases) {
    if (c.expect.kind !== "reply") continue;
    if (c.expect.id === null) nulls.push(c);
    else byId.set(c.expect.id, c);
  }
  for (const c of cases) await wire.send(c.text);
  await wire.send(JSON.stringify({ jsonrpc: "2.0", id: barrierId, method: "ping" }));
  let barrier = false;
  while (!barrier || byId.size > 0) {
    const message = await within(STEP_MS, `replies of a round (seed ${seed})`, wire.next());
    if (message.method !== undefined) {
      assert.fail(`unexpected ${message.method} from the server (seed ${seed})`);
    }
    if (message.id === barrierId) {
      assert.deepEqual(message.result, {}, `barrier ping (seed ${seed})`);
      barrier = true;
      continue;
    }
    if (message.id === null) {
      const c = nulls.shift();
      assert.ok(c, `an error reply nobody earned: ${JSON.stringify(message)} (seed ${seed})`);
      assert.equal(message.error?.code, (c.expect as { code?: number }).code, describe(c));
      continue;
    }
    const c = byId.get(message.id as string | number);
    assert.ok(
      c,
      `a reply to an id nobody is waiting for: ${JSON.stringify(message)} (seed ${seed})`,
    );
    byId.delete(message.id as string | number);
    const code = (c.expect as { code?: number }).code;
    if ((c.expect as { toolError?: boolean }).toolError) {
      const result = message.result as { isError?: boolean; content: unknown };
      assert.equal(result?.isError, true, `${describe(c)} got ${JSON.stringify(message)}`);
      assert.match(resultText(result), /Invalid arguments for tool ai_ollama_generate: /);
      continue;
    }
    if (code === undefined) assert.deepEqual(message.result, {}, describe(c));
    else assert.equal(message.error?.code, code, `${describe(c)} got ${JSON.stringify(message)}`);
    assert.equal(typeof message.error?.message === "string" || code === undefined, true);
  }
  assert.equal(nulls.length, 0, `missing id-null errors for: ${nulls.map(describe).join("\n")}`);
}

/** Fuzzes one wire; `tooBig` handles an oversized message and returns the wire to continue on. */
async function fuzz(
  label: string,
  seed: number,
  start: Wire,
  tooBig: (c: Case) => Promise<Wire>,
): Promise<Wire> {
  const next = caseGenerator(prng(seed));
  let wire = start;
  let round: Case[] = [];
  let barriers = 0;
  const flush = async () => {
    await runRound(wire, round, `${label}-barrier-${++barriers}`, seed);
    round = [];
  };
  for (let i = 0; i < MESSAGES; i++) {
    const c = next();
    if (c.expect.kind === "too-big") {
      await flush();
      wire = await tooBig(c);
      continue;
    }
    round.push(c);
    if (round.length === ROUND) await flush();
  }
  await flush();
  return wire;
}

async function initializeOn(wire: Wire): Promise<void> {
  await wire.send(JSON.stringify(initializeRequest("init")));
  const reply = await within(STEP_MS, "initialize", wire.next());
  assert.equal(reply.id, "init");
  await wire.send(JSON.stringify(INITIALIZED));
}

async function socketWire(daemon: FaultDaemon): Promise<{ ws: RawSocket; wire: Wire }> {
  const ws = await openSocket(daemon.wsUrl);
  const encoder = new TextEncoder();
  let binary = false;
  const wire: Wire = {
    send(text) {
      // Every other message goes as a binary frame, which MCP clients should not send but may.
      binary = !binary;
      ws.socket.send(binary ? encoder.encode(text) : text);
      return Promise.resolve();
    },
    next: () => ws.next(),
  };
  await initializeOn(wire);
  return { ws, wire };
}

/** Asserts a wire still serves: a ping and a real tool call. */
async function assertServes(wire: Wire, label: string): Promise<void> {
  await wire.send(JSON.stringify({ jsonrpc: "2.0", id: `${label}-final-ping`, method: "ping" }));
  const pong = await within(STEP_MS, "final ping", wire.next());
  assert.deepEqual(pong, { jsonrpc: "2.0", id: `${label}-final-ping`, result: {} });
  await wire.send(JSON.stringify({
    jsonrpc: "2.0",
    id: `${label}-final-call`,
    method: "tools/call",
    params: { name: "ai_ollama_list_models", arguments: {} },
  }));
  const listed = await within(STEP_MS, "final tools call", wire.next());
  assert.equal(listed.id, `${label}-final-call`);
  const result = listed.result as { isError?: boolean; content: unknown };
  assert.equal(result.isError, undefined, resultText(result));
  assert.match(resultText(result), /llama3\.2:latest/);
}

Deno.test("thousands of malformed messages get the right errors and never stop the daemon", async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 32));
  console.log(`fuzz seed ${seed} (replay with FUZZ_SEED=${seed})`);
  const double = await startOllamaDouble();
  const daemon = await spawnDaemon(double.host, {
    stdio: true,
    args: ["--max-message-bytes", String(MAX_MESSAGE), "--log-level", "info"],
  });
  let socket: RawSocket | undefined;
  try {
    const stdio = daemon.stdio!;
    const stdioWire: Wire = { send: (text) => stdio.sendRaw(`${text}\n`), next: stdio.next };
    await initializeOn(stdioWire);
    const lines = await fuzz("stdio", seed, stdioWire, async (c) => {
      // Over stdio an oversized line is dropped with an invalid-request error.
      await stdioWire.send(c.text);
      const error = await within(STEP_MS, "the oversized-line error", stdioWire.next());
      assert.equal(error.id, null);
      assert.equal(error.error?.code, INVALID_REQUEST);
      assert.match(error.error!.message, /longer than/);
      return stdioWire;
    });

    let opened = await socketWire(daemon);
    socket = opened.ws;
    let reconnects = 0;
    const frames = await fuzz("ws", seed + 1, opened.wire, async (c) => {
      await opened.wire.send(c.text);
      const closed = await within(STEP_MS, "the 1009 close", opened.ws.closed);
      assert.equal(closed.code, 1009, "an oversized frame closes the socket with 1009");
      reconnects++;
      opened = await socketWire(daemon);
      socket = opened.ws;
      return opened.wire;
    });
    console.log(`${MESSAGES} messages per transport, ${reconnects} WebSocket reconnects`);

    assert.equal(daemon.exited, false, "the daemon is still running");
    await assertServes(lines, "stdio");
    await assertServes(frames, "ws");
  } finally {
    await socket?.close();
    const status = await daemon.stop();
    await double.close();
    assert.equal(status.code, 0, daemon.stderr().slice(-4000));
  }
});
