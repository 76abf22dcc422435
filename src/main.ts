/**
 * Entry point of the `rune` binary and of `deno task serve`.
 *
 * @module
 */

import { main } from "./cli/main.ts";

if (import.meta.main) {
  // Exit right away: a call cut short by Ctrl-C or shutdown may still hold sockets and timers.
  Deno.exit(await main(Deno.args));
}
