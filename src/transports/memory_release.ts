/**
 * Gives memory back to the system once a load peak is over.
 *
 * What stays resident after many sessions ended is not the sessions (heap
 * snapshots after waves of dropped clients and rounds of HTTP sessions show
 * none left; the live heap after a forced collection stays at 21 MiB over
 * seven rounds of 1,000 HTTP sessions) but memory freed and kept for reuse:
 * glibc's malloc keeps the native buffers of hundreds of connections
 * (sockets, WebSocket and HTTP buffers) as free chunks inside its heap and
 * returns only what sits at its top (after four waves of 500 dropped
 * WebSocket clients: 221 MiB of heap, 218 MiB of it free chunks), and V8
 * keeps the pages its heap grew to (after rounds of 1,000 HTTP sessions:
 * ~235 MiB of heap pages, mostly garbage) until its memory reducer runs,
 * seconds to minutes later. With this release RSS after a wave of 500
 * dropped clients falls from ~240 to ~102 MiB, after a round of 1,000 HTTP
 * sessions from ~250 to ~95 MiB (`bench/churn.ts`).
 *
 * Deno returns both on SIGUSR2 when it was started with
 * `DENO_USR2_MEMORY_TRIM` set (`malloc_trim(0)`, then V8's low-memory
 * notification: a full collection that releases free pages). The launchers
 * set it (`deno task serve`, the installed `rune`); this module sends the
 * signal to the daemon itself when the churn stops: at least
 * {@linkcode MemoryReleaseOptions.minEnded} sessions or requests ended since
 * the last release, and none opened during the last interval. A full
 * collection pauses the daemon for some milliseconds, so it is never done
 * while sessions keep arriving, and at most once per interval.
 *
 * Without `DENO_USR2_MEMORY_TRIM` (a compiled `rune`, a hand-written
 * `deno run`) the signal does nothing: a listener is installed first, so
 * SIGUSR2 never takes its default action (ending the process). Linux only
 * (glibc); elsewhere nothing is started.
 *
 * @module
 */

import type { Logger } from "../log.ts";

/** Options of {@linkcode watchMemoryRelease}. */
export interface MemoryReleaseOptions {
  /** Sessions and stateless requests opened and ended since the start. */
  churn(): { opened: number; ended: number };
  /**
   * Sessions or requests that must have ended since the last release.
   * @default 100
   */
  minEnded?: number;
  /**
   * How often the churn is looked at; the load counts as over when nothing
   * opened during one interval.
   * @default 2000
   */
  intervalMs?: number;
  /**
   * Also releases once this long after the watch starts (milliseconds):
   * what loading the modules, reading the configuration and opening the
   * first session freed (a stdio daemon idles ~13 MiB lower); `0` skips it.
   * @default 0
   */
  afterStartMs?: number;
  /** Gives the memory back. Default: SIGUSR2 to the daemon itself. */
  release?: () => void;
  /** Diagnostics sink. */
  log?: Logger;
}

/** A running watch. */
export interface MemoryRelease {
  /** Releases done so far. */
  readonly releases: number;
  /** Stops watching (and removes the SIGUSR2 listener). */
  stop(): void;
}

/** Whether this process can ask Deno for a trim (glibc's `malloc_trim` exists on Linux only). */
export function canReleaseMemory(): boolean {
  return Deno.build.os === "linux";
}

/** Watches the churn and releases memory after each load peak. */
export function watchMemoryRelease(options: MemoryReleaseOptions): MemoryRelease {
  const minEnded = options.minEnded ?? 100;
  const intervalMs = options.intervalMs ?? 2000;
  const log = options.log ?? (() => {});
  let release = options.release;
  const ignore = () => {};
  if (release === undefined) {
    // Deno's own handler (with DENO_USR2_MEMORY_TRIM) trims; this one only makes sure the
    // signal can never end the daemon when that handler is absent.
    Deno.addSignalListener("SIGUSR2", ignore);
    release = () => Deno.kill(Deno.pid, "SIGUSR2");
  }
  let releases = 0;
  const releaseNow = (why: string, level: "info" | "debug") => {
    log(level, `releasing memory: ${why}`);
    releases++;
    try {
      release();
    } catch (error) {
      log("warning", `could not release memory: ${(error as Error).message}`);
    }
  };
  let { opened: lastOpened, ended: endedAtRelease } = options.churn();
  const timer = setInterval(() => {
    const { opened, ended } = options.churn();
    const quiet = opened === lastOpened;
    lastOpened = opened;
    if (!quiet || ended - endedAtRelease < minEnded) return;
    // Tests and benchmarks read this line: it marks the release (and counts every session).
    releaseNow(`${ended - endedAtRelease} sessions ended (${ended} in all)`, "info");
    endedAtRelease = ended;
  }, intervalMs);
  // The watch alone never keeps the daemon running.
  Deno.unrefTimer(timer);
  const afterStart = options.afterStartMs
    ? setTimeout(() => releaseNow("freed during start-up", "debug"), options.afterStartMs)
    : undefined;
  if (afterStart !== undefined) Deno.unrefTimer(afterStart);
  return {
    get releases() {
      return releases;
    },
    stop() {
      clearInterval(timer);
      clearTimeout(afterStart);
      if (options.release === undefined) Deno.removeSignalListener("SIGUSR2", ignore);
    },
  };
}
