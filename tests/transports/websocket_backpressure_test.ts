/**
 * WebSocket backpressure in isolation: `attachWebSocket` over a fake socket
 * whose send queue the test controls, and a manual clock: every queue check
 * and every millisecond of the grace period happen when the test says so,
 * so the outcome never depends on the machine's speed.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { McpServerFactory } from "@modelcontextprotocol/server";
import {
  attachWebSocket,
  MESSAGE_OVERHEAD,
  type QueueClock,
} from "../../src/transports/websocket.ts";

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
/** A clock that only moves when the test advances it; at most one check is scheduled. */
function manualClock() {
  let now = 0;
  let check: (() => void) | undefined;
  const clock: QueueClock = {
    now: () => now,
    every(fn) {
      assert.equal(check, undefined, "one queue check at a time");
      check = fn;
      return () => (check = undefined);
    },
  };
  return {
    clock,
    /** Whether the session is polling its queue. */
    get polling() {
      return check !== undefined;
    },
    /** Moves the clock by `ms` and runs the scheduled queue check once, as its timer would. */
    advance(ms: number) {
      now += ms;
      check?.();
    },
  };
}

const note = { jsonrpc: "2.0" as const, method: "notifications/message", params: {} };

/**
 * Lets every pending promise callback run: the fake socket does no I/O, so
 * once a macrotask comes round, a send that was going to finish has.
 */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

const HIGH_WATER = 10_000;
const HARD_CAP = 20_000;
const POLL_MS = 5;

function attach(socket: ReturnType<typeof fakeSocket>, clock: QueueClock, graceMs: number) {
  return attachWebSocket(socket as unknown as WebSocket, server, {
    highWaterMark: HIGH_WATER,
    hardCap: HARD_CAP,
    graceMs,
    pollMs: POLL_MS,
    initializeTimeoutMs: 0,
    clock,
  });
}

/** Reports whether `promise` (a send) has resolved; its rejection stays with `promise`. */
function track(promise: Promise<void>) {
  const state = { done: false, promise };
  promise.then(() => (state.done = true), () => {});
  return state;
}

Deno.test("send() waits while the queue is above the high-water mark and resumes as it drains", async () => {
  const socket = fakeSocket();
  const time = manualClock();
  const session = attach(socket, time.clock, 10_000);
  socket.bufferedAmount = 15_000;
  const sending = track(session.transport.send(note));
  await settle();
  time.advance(POLL_MS);
  await settle();
  assert.equal(sending.done, false, "waits above the high-water mark");
  assert.deepEqual(socket.sent, []);
  socket.bufferedAmount = HIGH_WATER;
  time.advance(POLL_MS);
  await sending.promise;
  assert.deepEqual(socket.sent, [JSON.stringify(note)], "sent once the queue is at the mark");
  assert.equal(time.polling, false, "polling stops when nobody waits");
  session.close();
  await session.closed;
});

Deno.test("queued messages are charged their per-message overhead", async () => {
  const socket = fakeSocket();
  const time = manualClock();
  const session = attach(socket, time.clock, 10_000);
  // Small payloads that bufferedAmount alone would let through without limit.
  const count = Math.ceil(HIGH_WATER / MESSAGE_OVERHEAD);
  for (let i = 0; i < count; i++) await session.transport.send(note);
  assert.equal(socket.sent.length, count, "below the mark every send goes out at once");
  socket.bufferedAmount = 1;
  const next = track(session.transport.send(note));
  await settle();
  time.advance(POLL_MS);
  await settle();
  assert.equal(next.done, false, `1 byte + ${count} x ${MESSAGE_OVERHEAD} is above the mark`);
  socket.bufferedAmount = 0;
  time.advance(POLL_MS);
  await next.promise;
  assert.equal(socket.sent.length, count + 1);
  session.close();
  await session.closed;
});

Deno.test("a queue stuck above the hard cap is closed with 1008 once the grace period is over", async () => {
  const socket = fakeSocket();
  const time = manualClock();
  const session = attach(socket, time.clock, 60);
  await session.transport.send({ ...note, params: { big: "x".repeat(25_000) } });
  assert.equal(time.polling, true, "above the hard cap the queue is watched");
  time.advance(60);
  assert.equal(socket.closedWith, undefined, "still open at exactly the grace period");
  time.advance(1);
  await session.closed;
  assert.deepEqual(socket.closedWith, [1008, "client is not reading"]);
});

Deno.test("a send left waiting on a queue that does not drain is closed with 1008 after the grace period", async () => {
  const socket = fakeSocket();
  const time = manualClock();
  const session = attach(socket, time.clock, 40);
  // Above the high-water mark but below the hard cap: only the waiting send makes it stuck.
  socket.bufferedAmount = 15_000;
  const sending = session.transport.send(note);
  time.advance(POLL_MS);
  time.advance(40);
  assert.equal(socket.closedWith, undefined, "still open at exactly the grace period");
  time.advance(POLL_MS);
  await assert.rejects(sending, /WebSocket closed/);
  await session.closed;
  assert.deepEqual(socket.closedWith, [1008, "client is not reading"]);
});

Deno.test("one big message, once drained, does not shorten a later grace period", async () => {
  const socket = fakeSocket();
  const time = manualClock();
  const session = attach(socket, time.clock, 80);
  await session.transport.send({ ...note, params: { big: "x".repeat(25_000) } });
  socket.bufferedAmount = 0;
  time.advance(POLL_MS);
  assert.equal(time.polling, false, "a drained queue is no longer watched");
  time.advance(1_000);
  socket.bufferedAmount = 15_000;
  const sending = track(session.transport.send(note));
  time.advance(POLL_MS);
  // Measured from when this send started waiting, the grace period has barely begun.
  time.advance(70);
  assert.equal(socket.closedWith, undefined, "a wait shorter than the grace period");
  socket.bufferedAmount = 0;
  time.advance(POLL_MS);
  await sending.promise;
  assert.equal(socket.closedWith, undefined);
  session.close();
  await session.closed;
});

Deno.test("a client that keeps draining slowly is not closed", async () => {
  const socket = fakeSocket();
  const time = manualClock();
  const session = attach(socket, time.clock, 40);
  socket.bufferedAmount = 30_000;
  const sending = track(session.transport.send(note));
  // Drain a little at a time, for three times the grace period in total.
  for (let i = 0; i < 12; i++) {
    time.advance(10);
    socket.bufferedAmount -= 1_000;
  }
  assert.equal(socket.bufferedAmount, 18_000, "still above the high-water mark");
  assert.equal(sending.done, false);
  assert.equal(socket.closedWith, undefined, "a draining client is never closed");
  socket.bufferedAmount = 0;
  time.advance(POLL_MS);
  await sending.promise;
  assert.equal(socket.closedWith, undefined);
  session.close();
  await session.closed;
});
