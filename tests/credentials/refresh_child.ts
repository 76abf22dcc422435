/**
 * Another process for the OAuth tests: asks the store at `HOME` for
 * provider `ID`'s access token with its clock at `NOW` (ms), after a line
 * on stdin says go, and prints the token it got.
 *
 * Usage: deno run ... refresh_child.ts HOME ID NOW
 *
 * @module
 */

import { storedCredentialSource } from "../../src/credentials/sources.ts";
import { openStore } from "../../src/credentials/store.ts";

const [home, id, now] = Deno.args;
const store = openStore({
  home,
  env: (name) => name === "RUNE_PASSPHRASE" ? "correct horse battery staple" : undefined,
  keys: { keyring: false },
});
const source = storedCredentialSource(id, store, { now: () => Number(now), signIn: "login" });
await Deno.stdin.read(new Uint8Array(1));
console.log(await source.get());
