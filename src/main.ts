/**
 * Entry point of the `rune` binary and of `deno task serve`.
 *
 * @module
 */

import { main } from "./cli/main.ts";

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}
