/**
 * The `rune` command line: dispatches to `serve` and `ai`, prints help and
 * the version, and maps errors onto exit codes (0 success, 1 a failure the
 * user can fix, 2 usage error). Bugs are rethrown with their stack.
 *
 * @module
 */

import { RuneError, UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { type Io, processIo, style } from "./output.ts";

/** Top-level help. */
export const HELP = `rune ${VERSION}: an MCP daemon for local and cloud language models

Usage:
  rune serve [--stdio] [--port N] [options]   serve MCP (see "rune serve --help")
  rune ai list [--provider ID]                list models of every provider
  rune providers                              configured providers, keys set, reachable
  rune auth login|set-key|status|logout       sign in, store keys encrypted (see "rune auth --help")
  rune ai show MODEL                          model details and capabilities
  rune ai generate PROMPT --model M           stream a completion
  rune ai chat --model M                      chat (interactive on a terminal)
  rune ai embed TEXT --model M                print an embedding
  rune ai compare PROMPT -m A -m B [...]      compare models side by side, with timings
  rune ai pull MODEL                          download an Ollama model (progress bar)
  rune ai ps                                  Ollama models loaded in memory
  rune ai rm MODEL                            delete an Ollama model
  rune --version | --help

Environment: OLLAMA_HOST (Ollama address), RUNE_MODEL (default model),
RUNE_TOKEN (bearer token for network clients), RUNE_HOME (credential store
directory, default ~/.config/rune), RUNE_PASSPHRASE (store passphrase), NO_COLOR.
Exit codes: 0 success, 1 failure (message on stderr), 2 usage error, 130 interrupted.`;

/**
 * Explains a permission Deno refused (`NotCapable`): which one, and how to
 * grant it. Deno's own message names the permission and the target, e.g.
 * `Requires env access to "HOME", run again with the --allow-env flag`.
 */
export function permissionHint(error: Error): string {
  const match = /Requires (\w+) access to "([^"]*)"(?:, run again with the (--allow-[\w-]+) flag)?/
    .exec(error.message);
  const how = 'see "Permissions" in README.md for what each way of running Rune grants.';
  if (!match) {
    return `${error.message}\nDeno refused a permission Rune was not started with; ${how}`;
  }
  const [, kind, target, flag = `--allow-${kind}`] = match;
  return `Deno refused ${kind} access to ${JSON.stringify(target)}: Rune was started without ` +
    `that permission. Grant it by adding ${flag}=${target} to the command that starts Rune ` +
    `(or widen the ${flag} it has); ${how}`;
}

/** Runs the CLI with `args`; resolves to the process exit code. */
export async function main(args: string[], io: Io = processIo()): Promise<number> {
  try {
    const [command, ...rest] = args;
    switch (command) {
      case "--version":
      case "-V":
      case "version":
        await io.out(`rune ${VERSION}\n`);
        return 0;
      case "--help":
      case "-h":
      case "help":
        await io.out(HELP + "\n");
        return 0;
      case undefined:
        io.err(HELP + "\n");
        return 2;
      case "serve":
        // Each command loads only what it needs: startup time and memory stay small.
        return await (await import("./serve.ts")).runServe(rest, io);
      case "ai":
        return await (await import("./ai.ts")).runAi(rest, io);
      case "auth":
        return await (await import("./auth.ts")).runAuth(rest, io);
      case "providers":
        // The same report as "rune ai providers".
        return await (await import("./ai.ts")).runAi(["providers", ...rest], io);
      default:
        throw new UsageError(`Unknown command "${command}": see "rune --help".`);
    }
  } catch (error) {
    // The reader went away (`rune ai generate ... | head`): nothing left to say.
    if (error instanceof Deno.errors.BrokenPipe) return 0;
    if (error instanceof UsageError) {
      io.err(`${style(io, "red", "error")}: ${error.message}\n`);
      return 2;
    }
    if (error instanceof RuneError) {
      io.err(`${style(io, "red", "error")}: ${error.message}\n`);
      return 1;
    }
    if (error instanceof Deno.errors.NotCapable) {
      io.err(`${style(io, "red", "error")}: ${permissionHint(error)}\n`);
      return 1;
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      // The operating system refused (a file's mode, a privileged port), not Deno's sandbox.
      io.err(`${style(io, "red", "error")}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
