/**
 * The benchmark's /proc parsers: CPU times from /proc/PID/stat (a command
 * name may hold spaces and parentheses) and the open-files limit from
 * /proc/PID/limits.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseOpenFilesLimit, parseStatCpu } from "../../bench/procs.ts";

/** A /proc/PID/stat line with utime 250, stime 50, cutime 1200, cstime 300 ticks. */
const STAT = "4242 (deno (main) x) S 1 4242 4242 0 -1 4194304 5000 0 0 0 250 50 1200 300 20 0 " +
  "9 0 123456 1000000000 20000 18446744073709551615 1 1 0 0 0 0 0 16781312 17990 0 0 0 17 1 0 0";

Deno.test("parseStatCpu reads utime + stime and cutime + cstime in ms past a tricky name", () => {
  assert.deepEqual(parseStatCpu(STAT), { self: 3000, children: 15000 });
});

Deno.test("parseStatCpu gives undefined for a line that is not a stat line", () => {
  assert.equal(parseStatCpu(""), undefined);
  assert.equal(parseStatCpu("4242 (deno) S 1 2"), undefined);
});

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 20000                files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("parseOpenFilesLimit reads the soft and hard open-files limits", () => {
  assert.deepEqual(parseOpenFilesLimit(LIMITS), { soft: 1024, hard: 20000 });
  assert.deepEqual(
    parseOpenFilesLimit(
      "Max open files            unlimited            unlimited            files",
    ),
    { soft: Infinity, hard: Infinity },
  );
  assert.equal(parseOpenFilesLimit("Max cpu time  unlimited  unlimited  seconds"), undefined);
});
