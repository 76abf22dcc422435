/**
 * A second process for the store tests: writes `COUNT` API keys named
 * `PREFIX0`, `PREFIX1`, ... into the store at `HOME`, one update each,
 * after a line on stdin says go (so both writers start together).
 *
 * Usage: deno run ... store_writer.ts HOME PREFIX COUNT
 *
 * @module
 */

import { openStore } from "../../src/credentials/store.ts";

const [home, prefix, count] = Deno.args;
const store = openStore({ home, env: () => undefined, keys: { keyring: false } });
// Wait for the go signal: one byte on stdin.
await Deno.stdin.read(new Uint8Array(1));
for (let i = 0; i < Number(count); i++) {
  await store.update(`${prefix}${i}`, () =>
    Promise.resolve({
      next: { kind: "api-key", key: `sk-${prefix}-${i}`, via: "set-key", saved_at: "x" },
      result: undefined,
    }));
}
console.log("done");
