/**
 * The memory release after load (`src/transports/memory_release.ts`): it
 * happens once enough sessions ended and none opened for an interval, never
 * while sessions keep arriving, and its signal never ends the process.
 *
 * @module
 */

import assert from "node:assert/strict";
import { canReleaseMemory, watchMemoryRelease } from "../../src/transports/memory_release.ts";

/** Keeps the event loop alive while `promise` is pending: the watch's own timer does not. */
async function awaitAlive<T>(promise: Promise<T>): Promise<T> {
  const keep = setInterval(() => {}, 1000);
  try {
    return await promise;
  } finally {
    clearInterval(keep);
  }
}

Deno.test("memory is released once enough sessions ended and none opened for an interval", async () => {
  const churn = { opened: 0, ended: 0 };
  let looks = 0;
  const done = Promise.withResolvers<{ opened: number; ended: number; looks: number }>();
  const watch = watchMemoryRelease({
    minEnded: 5,
    intervalMs: 5,
    churn() {
      looks++;
      // Sessions keep arriving for ten looks, and only four have ended by then.
      if (looks <= 10) {
        churn.opened++;
        churn.ended = Math.min(looks - 1, 4);
      } else churn.ended = 5;
      return { ...churn };
    },
    release: () => done.resolve({ ...churn, looks }),
  });
  try {
    const at = await awaitAlive(done.promise);
    assert.equal(at.ended, 5, "not before five ended");
    assert.ok(at.looks >= 11, `not while sessions kept opening (look ${at.looks})`);
    assert.equal(watch.releases, 1);
  } finally {
    watch.stop();
  }
});

Deno.test({
  name: "the release signal (SIGUSR2 to the process itself) never ends the process",
  ignore: !canReleaseMemory(),
  async fn() {
    const arrived = Promise.withResolvers<void>();
    let looks = 0;
    const seen = () => arrived.resolve();
    Deno.addSignalListener("SIGUSR2", seen);
    const watch = watchMemoryRelease({
      minEnded: 1,
      intervalMs: 5,
      // One session ended after the watch started.
      churn: () => ({ opened: 1, ended: looks++ === 0 ? 0 : 1 }),
    });
    try {
      await awaitAlive(arrived.promise);
      assert.equal(watch.releases, 1);
    } finally {
      watch.stop();
      Deno.removeSignalListener("SIGUSR2", seen);
    }
  },
});

Deno.test("memory freed during start-up is released once, without any session ending", async () => {
  let released = 0;
  const first = Promise.withResolvers<void>();
  const watch = watchMemoryRelease({
    minEnded: 1,
    intervalMs: 5,
    afterStartMs: 20,
    churn: () => ({ opened: 0, ended: 0 }),
    release: () => {
      released++;
      first.resolve();
    },
  });
  try {
    await awaitAlive(first.promise);
    // Ten more looks at a churn that never moves: no second release.
    await awaitAlive(new Promise((resolve) => setTimeout(resolve, 50)));
    assert.equal(released, 1);
    assert.equal(watch.releases, 1);
  } finally {
    watch.stop();
  }
});
