/**
 * The metered response body in isolation: a source stream the test feeds,
 * a consumer that reads when the test says so, and a clock the test moves
 * (the grace period is a timer), so every step is an event.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createMeter, type MeterOptions } from "../../src/transports/metered_body.ts";

/** Replaces `setTimeout`/`clearTimeout` with timers that run only when the test advances. */
function manualTimers() {
  const real = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
  const timers = new Map<number, { run: () => void; at: number }>();
  let now = 0;
  let next = 0;
  globalThis.setTimeout = ((run: () => void, ms = 0) => {
    timers.set(++next, { run, at: now + ms });
    return next;
  }) as unknown as typeof setTimeout;
  globalThis.clearTimeout = ((id?: number) => {
    if (id !== undefined) timers.delete(id);
  }) as unknown as typeof clearTimeout;
  return {
    /** Timers armed now. */
    get pending() {
      return timers.size;
    },
    /** Moves the clock and runs the timers that are due. */
    advance(ms: number) {
      now += ms;
      for (const [id, timer] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (timer.at > now) continue;
        timers.delete(id);
        timer.run();
      }
    },
    restore() {
      globalThis.setTimeout = real.setTimeout;
      globalThis.clearTimeout = real.clearTimeout;
    },
  };
}

/**
 * A source the test feeds chunk by chunk. `drained()` resolves once the
 * meter has taken every chunk fed so far (it asks for the next one).
 */
function source() {
  const chunks: Uint8Array[] = [];
  let asked = Promise.withResolvers<void>();
  let closed = false;
  let wake: (() => void) | undefined;
  const cancelled = Promise.withResolvers<void>();
  let cancels = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (chunks.length === 0 && !closed) {
        asked.resolve();
        await new Promise<void>((resolve) => (wake = resolve));
      }
      const chunk = chunks.shift();
      if (chunk) controller.enqueue(chunk);
      else controller.close();
    },
    cancel() {
      cancels++;
      cancelled.resolve();
    },
  }, { highWaterMark: 0 });
  return {
    stream,
    /** Feeds a chunk of `n` bytes. */
    feed(n: number) {
      asked = Promise.withResolvers<void>();
      chunks.push(new Uint8Array(n).fill(120));
      wake?.();
    },
    close() {
      closed = true;
      wake?.();
    },
    drained: () => asked.promise,
    cancelled: cancelled.promise,
    get cancels() {
      return cancels;
    },
  };
}

/** A meter with counters for its callbacks. */
function meter(options: MeterOptions) {
  const calls = { stuck: [] as number[], cancel: 0, end: 0 };
  const stuck = Promise.withResolvers<void>();
  const m = createMeter({
    ...options,
    onStuck: (queued) => {
      calls.stuck.push(queued);
      stuck.resolve();
    },
    onCancel: () => void calls.cancel++,
    onEnd: () => void calls.end++,
  });
  return { ...m, calls, stuck: stuck.promise };
}

/** Lets pending promise callbacks run (stream plumbing takes a few); no timer is involved. */
async function runCallbacks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Whether `promise` has settled once pending callbacks ran. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => (done = true), () => (done = true));
  await runCallbacks();
  return done;
}

Deno.test("producers wait above the high-water mark and resume as the consumer reads", async () => {
  const timers = manualTimers();
  try {
    const src = source();
    const m = meter({ highWaterMark: 1000, hardCap: 10_000, graceMs: 5_000 });
    const metered = m.attach(src.stream);
    src.feed(400);
    src.feed(400);
    await src.drained();
    assert.equal(metered.queued, 800);
    assert.equal(await settled(m.flow.ready()), true, "800 bytes are under the mark");
    src.feed(400);
    await src.drained();
    assert.equal(metered.queued, 1200);
    const ready = m.flow.ready();
    assert.equal(await settled(ready), false, "1,200 bytes are over the mark: the producer waits");
    assert.equal(timers.pending, 1, "a waiting producer starts the grace clock");

    const reader = metered.body.getReader();
    const first = await reader.read();
    assert.equal(first.value?.byteLength, 400);
    assert.equal(metered.queued, 800);
    await ready;
    assert.equal(timers.pending, 0, "the grace clock stops once the queue is under the mark");
    src.close();
    let total = 400;
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
    }
    assert.equal(total, 1200, "every byte reaches the client, in order");
    assert.deepEqual(m.calls, { stuck: [], cancel: 0, end: 1 });
  } finally {
    timers.restore();
  }
});

Deno.test("a client stuck above the hard cap is cut off after the grace period", async () => {
  const timers = manualTimers();
  try {
    const src = source();
    const m = meter({ highWaterMark: 100, hardCap: 1000, graceMs: 5_000 });
    const metered = m.attach(src.stream);
    src.feed(600);
    src.feed(600);
    await src.drained();
    assert.equal(metered.queued, 1200);
    const ready = m.flow.ready();
    timers.advance(4_999);
    assert.deepEqual(m.calls.stuck, [], "still within the grace period");
    timers.advance(1);
    await m.stuck;
    assert.deepEqual(m.calls, { stuck: [1200], cancel: 1, end: 1 });
    await src.cancelled;
    assert.equal(metered.queued, 0, "the queue is dropped");
    await ready;
    await assert.rejects(metered.body.getReader().read(), /client is not reading/);
    assert.equal(src.cancels, 1);
    assert.deepEqual(m.calls, { stuck: [1200], cancel: 1, end: 1 }, "each callback once");
  } finally {
    timers.restore();
  }
});

Deno.test("a client that reads below the hard cap within the grace period is not cut off", async () => {
  const timers = manualTimers();
  try {
    const src = source();
    const m = meter({ highWaterMark: 100, hardCap: 1000, graceMs: 5_000 });
    const metered = m.attach(src.stream);
    src.feed(600);
    src.feed(600);
    await src.drained();
    timers.advance(4_000);
    const reader = metered.body.getReader();
    await reader.read();
    assert.equal(metered.queued, 600);
    assert.equal(timers.pending, 0, "under the hard cap with nobody waiting: no clock");
    timers.advance(60_000);
    assert.deepEqual(m.calls, { stuck: [], cancel: 0, end: 0 });
    await reader.cancel();
  } finally {
    timers.restore();
  }
});

Deno.test("a producer left waiting without any read is cut off after the grace period", async () => {
  const timers = manualTimers();
  try {
    const src = source();
    const m = meter({ highWaterMark: 100, hardCap: 1_000_000, graceMs: 5_000 });
    m.attach(src.stream);
    src.feed(200);
    await src.drained();
    assert.equal(
      timers.pending,
      0,
      "over the mark but under the cap: no clock until someone waits",
    );
    const ready = m.flow.ready();
    timers.advance(5_000);
    await m.stuck;
    await ready;
    assert.deepEqual(m.calls, { stuck: [200], cancel: 1, end: 1 });
  } finally {
    timers.restore();
  }
});

Deno.test("a client that stops reading after the source ended is still cut off", async () => {
  const timers = manualTimers();
  try {
    const src = source();
    const m = meter({ highWaterMark: 100, hardCap: 1000, graceMs: 5_000 });
    const metered = m.attach(src.stream);
    // The whole (large) result is in the queue and the exchange is over upstream.
    src.feed(3000);
    await src.drained();
    src.close();
    // The meter sees the end of the source a few callbacks later: no timer involved.
    await runCallbacks();
    assert.equal(metered.queued, 3000);
    timers.advance(5_000);
    await m.stuck;
    assert.equal(
      metered.queued,
      0,
      "the unread result is not kept for a client that does not read",
    );
    assert.deepEqual(m.calls, { stuck: [3000], cancel: 1, end: 1 });
  } finally {
    timers.restore();
  }
});

Deno.test("a consumer that cancels ends the exchange once: onCancel, source cancelled, producers freed", async () => {
  const src = source();
  const m = meter({ highWaterMark: 100 });
  const metered = m.attach(src.stream);
  src.feed(500);
  await src.drained();
  const ready = m.flow.ready();
  await metered.body.cancel("client went away");
  await src.cancelled;
  await ready;
  assert.deepEqual(m.calls, { stuck: [], cancel: 1, end: 1 });
  assert.equal(await settled(m.flow.ready()), true, "later producers do not wait either");
  assert.equal(src.cancels, 1);
});

Deno.test("onEnd runs exactly once when the body completes, and onCancel never", async () => {
  const src = source();
  const m = meter({});
  const metered = m.attach(src.stream);
  src.feed(10);
  src.close();
  const reader = metered.body.getReader();
  assert.equal((await reader.read()).value?.byteLength, 10);
  assert.equal((await reader.read()).done, true);
  await reader.cancel().catch(() => {});
  assert.deepEqual(m.calls, { stuck: [], cancel: 0, end: 1 });
  assert.equal(src.cancels, 0);
});

Deno.test("a source that errors ends the body with what was queued", async () => {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  const m = meter({});
  const metered = m.attach(stream);
  controller.enqueue(new Uint8Array(7));
  controller.error(new Error("upstream broke"));
  const reader = metered.body.getReader();
  assert.equal((await reader.read()).value?.byteLength, 7);
  assert.equal((await reader.read()).done, true);
  assert.deepEqual(m.calls, { stuck: [], cancel: 0, end: 1 });
});

Deno.test("before a body is attached, and after release(), producers never wait", async () => {
  const m = meter({ highWaterMark: 0 });
  assert.equal(await settled(m.flow.ready()), true, "nothing queued yet");
  m.release();
  assert.equal(await settled(m.flow.ready()), true);
  assert.deepEqual(m.calls, { stuck: [], cancel: 0, end: 0 });
});
