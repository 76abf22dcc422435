/**
 * WebSocket backpressure in isolation: `attachWebSocket` over a fake socket
 * whose send queue the test controls.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { McpServerFactory } from "@modelcontextprotocol/server";
import { attachWebSocket, MESSAGE_OVERHEAD } from "../../src/transports/websocket.ts";

/** A socket whose `bufferedAmount` the test sets; records sends and closes. */
function fakeSocket() {
  const socket = {
    bufferedAmount: 0,
    sent: [] as string[],
    closedWith: undefined as [number, string] | undefined,
    onmessage: null as unknown,
    onclose: null as (() => void) | null,
    onerror: null as unknown,
    send(text: string) {
      this.sent.push(text);
      this.bufferedAmount += text.length;
    },
    close(code: number, reason: string) {
      this.closedWith = [code, reason];
      this.onclose?.();
    },
  };
  return socket;
}

/** No message reaches a server in these tests: the factory is never called. */
const server: McpServerFactory = () => {
  throw new Error("no server instance is needed");
};
const note = { jsonrpc: "2.0" as const, method: "notifications/message", params: {} };
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function attach(socket: ReturnType<typeof fakeSocket>, graceMs = 60) {
  return attachWebSocket(socket as unknown as WebSocket, server, {
    highWaterMark: 10_000,
    hardCap: 20_000,
    graceMs,
    pollMs: 2,
    initializeTimeoutMs: 0,
  });
}

Deno.test("send() waits while the queue is above the high-water mark and resumes as it drains", async () => {
  const socket = fakeSocket();
  const session = attach(socket, 10_000);
  socket.bufferedAmount = 15_000;
  let done = false;
  const sending = session.transport.send(note).then(() => (done = true));
  await tick(10);
  assert.equal(done, false, "waits above the high-water mark");
  assert.equal(socket.sent.length, 0);
  socket.bufferedAmount = 0;
  await sending;
  assert.equal(socket.sent.length, 1);
  session.close();
  await session.closed;
});

Deno.test("queued messages are charged their per-message overhead", async () => {
  const socket = fakeSocket();
  const session = attach(socket, 10_000);
  // Small payloads that bufferedAmount alone would let through without limit.
  const count = Math.ceil(10_000 / MESSAGE_OVERHEAD);
  for (let i = 0; i < count; i++) await session.transport.send(note);
  socket.bufferedAmount = 1;
  let done = false;
  const next = session.transport.send(note).then(() => (done = true));
  await tick(10);
  assert.equal(done, false, "the next send waits for the queue to empty");
  socket.bufferedAmount = 0;
  await next;
  session.close();
  await session.closed;
});

Deno.test("a queue stuck above the hard cap is closed with 1008 after the grace period", async () => {
  const socket = fakeSocket();
  const session = attach(socket);
  await session.transport.send({ ...note, params: { big: "x".repeat(25_000) } });
  await session.closed;
  assert.deepEqual(socket.closedWith, [1008, "client is not reading"]);
});

Deno.test("one big message, once drained, does not shorten a later grace period", async () => {
  const socket = fakeSocket();
  const session = attach(socket, 80);
  await session.transport.send({ ...note, params: { big: "x".repeat(25_000) } });
  socket.bufferedAmount = 0;
  await tick(120);
  socket.bufferedAmount = 15_000;
  const sending = session.transport.send(note);
  await tick(20);
  socket.bufferedAmount = 0;
  await sending;
  assert.equal(socket.closedWith, undefined, "a brief wait is within the grace period");
  session.close();
  await session.closed;
});

Deno.test("a client that keeps draining slowly is not closed", async () => {
  const socket = fakeSocket();
  const session = attach(socket, 40);
  socket.bufferedAmount = 30_000;
  const sending = session.transport.send(note);
  // Drain a little at a time, for longer than the grace period in total.
  for (let i = 0; i < 12; i++) {
    await tick(10);
    socket.bufferedAmount -= 2_000;
  }
  socket.bufferedAmount = 0;
  await sending;
  assert.equal(socket.closedWith, undefined);
  session.close();
  await session.closed;
});
