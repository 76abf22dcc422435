/**
 * `deno task compile`: a standalone `rune` binary in `dist/rune` (or
 * `--output PATH`), with the permissions of the installed command.
 *
 * `deno compile` embeds a Deno runtime (`denort`) that it downloads once
 * from dl.deno.land and then keeps in its cache. Without network that
 * download fails with a bare DNS error and leaves an empty output folder;
 * this script runs `deno compile`, and when the runtime is what failed,
 * says so and how to compile offline with `DENORT_BIN`, and removes an
 * output folder the failed run created.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { INSTALLED_PERMISSIONS, storeWriteFlag } from "./permissions.ts";

/** Output of one `deno compile` run. */
export interface CompileRun {
  /** Exit code. */
  code: number;
  /** What it wrote to stderr (also shown to the user as it came). */
  stderr: string;
}

/** Options of {@linkcode compile}. */
export interface CompileOptions {
  /** Where the binary goes. Default `dist/rune` in the checkout. */
  output?: string;
  /** `DENORT_BIN`: a local runtime to embed instead of downloading one. Default: unset. */
  denortBin?: string;
  /** Runs `deno compile` with these arguments. Default: the `deno` on PATH, stderr shown live. */
  run?: (args: string[]) => Promise<CompileRun>;
}

/** A failure the user can act on; the message says what to do. */
export class CompileError extends Error {}

/** Where `deno compile` downloads the runtime it embeds, for this Deno and platform. */
export function denortUrl(): string {
  return `https://dl.deno.land/release/v${Deno.version.deno}/denort-${Deno.build.target}.zip`;
}

/** Most stderr kept from `deno compile`, to recognise its failure. */
const MAX_STDERR = 64 * 1024;

async function runDeno(args: string[]): Promise<CompileRun> {
  const child = new Deno.Command("deno", { args, stdout: "inherit", stderr: "piped" }).spawn();
  let stderr = "";
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    await Deno.stderr.write(new TextEncoder().encode(chunk));
    stderr = (stderr + chunk).slice(-MAX_STDERR);
  }
  return { code: (await child.status).code, stderr };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Compiles `src/main.ts`; resolves to the binary's path or throws a {@linkcode CompileError}. */
export async function compile(options: CompileOptions = {}): Promise<string> {
  const checkout = fileURLToPath(new URL("../", import.meta.url));
  const output = options.output ?? `${checkout}dist/rune`;
  const folder = output.includes("/") ? output.slice(0, output.lastIndexOf("/")) || "/" : ".";
  if (
    options.denortBin !== undefined &&
    !(await Deno.stat(options.denortBin).catch(() => null))?.isFile
  ) {
    throw new CompileError(
      `DENORT_BIN is ${JSON.stringify(options.denortBin)}, which is not a file: point it at ` +
        `the denort binary unzipped from ${denortUrl()}.`,
    );
  }
  const folderExisted = await isDirectory(folder);
  const result = await (options.run ?? runDeno)([
    "compile",
    "--frozen-lockfile",
    ...INSTALLED_PERMISSIONS,
    // A compiled binary's permissions are fixed now: the store directory of this user.
    storeWriteFlag(storeDirectory()),
    `--config=${checkout}deno.json`,
    `--output=${output}`,
    `${checkout}src/main.ts`,
  ]);
  if (result.code === 0) return output;
  // deno compile creates the folder before it fetches the runtime: leave none behind.
  if (!folderExisted) await Deno.remove(folder).catch(() => {});
  if (/dl\.deno\.land|denort/.test(result.stderr) && options.denortBin === undefined) {
    throw new CompileError(
      `deno compile could not download the Deno runtime it embeds (${denortUrl()}). It ` +
        `downloads it once and keeps it in Deno's cache; this time the download failed (see ` +
        `above: no network?). To compile offline, fetch that zip on a machine with network, ` +
        `unzip it here and run: DENORT_BIN=/path/to/denort deno task compile`,
    );
  }
  throw new CompileError(`deno compile failed (exit code ${result.code}); its message is above.`);
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { output: { type: "string" } } });
  try {
    const binary = await compile({
      output: values.output,
      denortBin: Deno.env.get("DENORT_BIN") || undefined,
    });
    console.log(`Compiled ${binary}`);
  } catch (error) {
    if (!(error instanceof CompileError)) throw error;
    console.error(`error: ${error.message}`);
    Deno.exit(1);
  }
}

/** The credential store directory the compiled binary may write: `$RUNE_HOME` or `~/.config/rune`. */
function storeDirectory(): string {
  const home = Deno.env.get("RUNE_HOME");
  if (home) return home;
  return `${Deno.env.get("HOME") ?? "."}/.config/rune`;
}
