/**
 * `deno task install`: puts a `rune` command in `~/.deno/bin` (or
 * `$DENO_INSTALL_ROOT/bin`, or `--root DIR`'s `bin`).
 *
 * Why not `deno install -g`: its shim runs `deno` through `PATH`, which
 * Claude Desktop and editors started from the desktop often lack, so even
 * the absolute path of `rune` fails there with "deno: not found"; and it
 * keeps a copy of `deno.json`, `deno.lock` and a `node_modules` folder
 * from install time next to the shim. This script writes the shim itself:
 * the absolute path of the Deno that ran it, and the checkout's own
 * `deno.json`, `deno.lock` (frozen: never written) and `src/main.ts`, read
 * at every start, so a `git pull` takes effect at the next start (new npm
 * packages are fetched then; running `deno task install` again fetches
 * them at once). It depends on the checkout staying where it is and on
 * that Deno binary: after moving either, run `deno task install` again.
 * The task runs `deno cache` first so the first start needs no download.
 *
 * POSIX shells only (Linux, macOS); on Windows use `deno task compile`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { INSTALLED_PERMISSIONS, LAUNCH_ENV, SHIM_WRITE_FLAG } from "./permissions.ts";

/** Options of {@linkcode install}. */
export interface InstallOptions {
  /** Installation root; the command goes to `ROOT/bin/rune`. Default: `$DENO_INSTALL_ROOT`, else `~/.deno`. */
  root?: string;
  /** The checkout to run. Default: the one this script is in. */
  checkout?: string;
  /** The Deno binary the shim runs. Default: `Deno.execPath()`. */
  deno?: string;
}

/** Quotes `text` for a POSIX shell. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The shim's text for a checkout at `checkout` (ending in `/`) and the Deno at `deno`. */
export function shimText(checkout: string, deno: string): string {
  const args = [
    deno,
    "run",
    `--config=${checkout}deno.json`,
    "--frozen-lockfile",
    ...INSTALLED_PERMISSIONS,
    `${checkout}src/main.ts`,
  ];
  const exports = Object.entries(LAUNCH_ENV).map(([name, value]) =>
    `export ${name}=${shellQuote(value)}\n`
  ).join("");
  return `#!/bin/sh
# rune: written by "deno task install" (scripts/install.ts).
# Runs the checkout's current src/main.ts with its deno.json and deno.lock, so
# a git pull takes effect at the next start. After moving the checkout or
# this Deno binary, run "deno task install" again.
${exports}exec ${args.slice(0, -1).map(shellQuote).join(" ")} ${SHIM_WRITE_FLAG} ${
    shellQuote(args.at(-1)!)
  } "$@"
`;
}

/** Writes the `rune` shim; resolves to its path. */
export async function install(options: InstallOptions = {}): Promise<string> {
  if (Deno.build.os === "windows") {
    throw new Error(
      'deno task install writes a POSIX shell script; on Windows run "deno task compile" and ' +
        "put dist\\rune.exe on your PATH.",
    );
  }
  const home = Deno.env.get("HOME");
  const root = options.root ?? Deno.env.get("DENO_INSTALL_ROOT") ??
    (home ? `${home}/.deno` : undefined);
  if (!root) throw new Error("HOME is not set: pass --root DIR");
  const checkout = options.checkout ?? fileURLToPath(new URL("../", import.meta.url));
  const bin = `${root.replace(/\/+$/, "")}/bin`;
  await Deno.mkdir(bin, { recursive: true });
  const path = `${bin}/rune`;
  await Deno.writeTextFile(path, shimText(checkout, options.deno ?? Deno.execPath()), {
    mode: 0o755,
  });
  // writeTextFile's mode applies only to a new file.
  await Deno.chmod(path, 0o755);
  return path;
}

/** The advice printed after installing into `bin`, given the current `PATH`. */
export function pathAdvice(shim: string, path: string | undefined): string {
  const bin = shim.slice(0, shim.lastIndexOf("/"));
  const onPath = (path ?? "").split(":").includes(bin);
  const lines = [`Installed ${shim}`];
  if (!onPath) {
    lines.push(
      `${bin} is not on your PATH; add it (e.g. in ~/.profile):`,
      `  export PATH="${bin}:$PATH"`,
    );
  }
  lines.push(
    "Apps started from the desktop (Claude Desktop, editors) may not see your shell's PATH:",
    `give them the absolute path, "command": "${shim}".`,
  );
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { root: { type: "string" } } });
  try {
    const shim = await install({ root: values.root });
    console.log(pathAdvice(shim, Deno.env.get("PATH")));
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
