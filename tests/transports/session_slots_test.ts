/**
 * The session cap: reservations succeed up to the limit and fail after,
 * releases give slots back, and the count never goes below zero.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createSessionSlots } from "../../src/transports/session_slots.ts";

Deno.test("slots are reserved up to the limit and refused after", () => {
  const slots = createSessionSlots(3);
  assert.equal(slots.limit, 3);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => slots.tryReserve()), [true, true, true, false, false]);
  assert.equal(slots.used, 3);
});

Deno.test("a released slot can be reserved again, once", () => {
  const slots = createSessionSlots(2);
  slots.tryReserve();
  slots.tryReserve();
  slots.release();
  assert.equal(slots.used, 1);
  assert.equal(slots.tryReserve(), true);
  assert.equal(slots.tryReserve(), false);
});

Deno.test("extra releases do not create slots", () => {
  const slots = createSessionSlots(1);
  slots.release();
  slots.release();
  assert.equal(slots.used, 0);
  assert.equal(slots.tryReserve(), true);
  assert.equal(slots.tryReserve(), false, "still one slot");
});

Deno.test("opened and ended count reservations and releases, not refusals or extra releases", () => {
  const slots = createSessionSlots(2);
  slots.tryReserve();
  slots.tryReserve();
  slots.tryReserve();
  slots.release();
  slots.release();
  slots.release();
  assert.deepEqual([slots.opened, slots.ended, slots.used], [2, 2, 0]);
});

Deno.test("a cap of zero refuses every reservation", () => {
  const slots = createSessionSlots(0);
  assert.equal(slots.tryReserve(), false);
  assert.equal(slots.used, 0);
});

Deno.test("concurrent openings that await between reserve and release never exceed the cap", async () => {
  const slots = createSessionSlots(50);
  let open = 0;
  let peak = 0;
  // 1,000 openings interleaved at every await, as a burst of requests would be.
  const results = await Promise.all(Array.from({ length: 1000 }, async (_, i) => {
    if (!slots.tryReserve()) return false;
    open++;
    peak = Math.max(peak, open);
    await Promise.resolve();
    await new Promise((resolve) => setTimeout(resolve, i % 3));
    // Every tenth setup fails and gives its slot back.
    if (i % 10 === 0) {
      open--;
      slots.release();
      return false;
    }
    return true;
  }));
  assert.equal(peak, 50);
  assert.equal(slots.used, open);
  assert.equal(results.filter(Boolean).length, open);
});
