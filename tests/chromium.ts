/**
 * Test helper: Debian's headless Chromium (`/usr/bin/chromium`) driven by
 * `playwright-core`, which never downloads a browser here. Tests that need
 * it are ignored, with the reason in their names, when it is missing.
 *
 * @module
 */

import fs from "node:fs";
import type { Browser, BrowserType, LaunchOptions } from "playwright-core";

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM = "/usr/bin/chromium";

/** Flags for a quiet, sandbox-free headless browser in a container. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

function chromiumMissing(): boolean {
  try {
    return !Deno.statSync(CHROMIUM).isFile;
  } catch {
    return true;
  }
}

/** True when the browser is missing and the tests that need it are ignored. */
export const SKIP_CHROMIUM = chromiumMissing();

const SKIP_REASON = ` (ignored: ${CHROMIUM} is not installed; apt-get install chromium)`;

/** A test's name, with the reason appended when it is ignored. */
export function chromiumTestName(name: string): string {
  return SKIP_CHROMIUM ? name + SKIP_REASON : name;
}

let chromiumType: Promise<BrowserType> | undefined;

/**
 * Imports playwright-core's `chromium` once. While the module loads,
 * `fs.existsSync` is made to return false instead of throwing: playwright
 * probes `/proc/sys/fs/binfmt_misc/WSLInterop` at import, and Deno 2.9's
 * `existsSync` throws `NotCapable` for `/proc/sys` paths unless the test
 * runs with `--allow-all` (Node's `existsSync` never throws).
 */
function loadChromium(): Promise<BrowserType> {
  chromiumType ??= (async () => {
    const existsSync = fs.existsSync;
    fs.existsSync = (path: fs.PathLike) => {
      try {
        return existsSync(path);
      } catch {
        return false;
      }
    };
    try {
      return (await import("playwright-core")).chromium;
    } finally {
      fs.existsSync = existsSync;
    }
  })();
  return chromiumType;
}

/**
 * Launches the browser with {@linkcode CHROMIUM_ARGS} plus `args`, in a
 * fresh temporary profile that is deleted on close.
 */
export async function launchChromium(
  args: string[] = [],
  options: Omit<LaunchOptions, "executablePath" | "args"> = {},
): Promise<Browser> {
  const chromium = await loadChromium();
  return await chromium.launch({
    timeout: 30_000,
    ...options,
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, ...args],
  });
}
