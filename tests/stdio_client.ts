/**
 * Test helper: starts the real `src/main.ts serve --stdio` process and
 * connects the SDK's `Client` to it through `StdioClientTransport`.
 *
 * @module
 */

import { DEV_PERMISSIONS, LAUNCH_ENV } from "../scripts/permissions.ts";
import { Client, StdioClientTransport } from "./sdk_client.ts";

/** The permissions `deno task serve` uses. */
export const SERVE_PERMISSIONS: readonly string[] = DEV_PERMISSIONS;

/**
 * A clean environment for child daemons: only what Deno needs to find its
 * cache, so a developer's OLLAMA_HOST or RUNE_TOKEN cannot leak into tests.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  // A configuration directory that does not exist: the developer's ~/.config/rune/config.json
  // (or a cloud key variable) must not change what the tests see.
  // The launchers' environment too (DENO_USR2_MEMORY_TRIM): the daemon runs as installed.
  const env: Record<string, string> = {
    ...LAUNCH_ENV,
    NO_COLOR: "1",
    XDG_CONFIG_HOME: "/nonexistent/rune-tests",
  };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/** Path of the entry point, independent of the working directory. */
export const MAIN = new URL("../src/main.ts", import.meta.url).pathname;

/** Arguments for `deno` that run `rune serve --ollama-host HOST ARGS...` as `deno task serve` does. */
export function serveArgs(ollamaHost: string, args: string[] = []): string[] {
  return ["run", ...SERVE_PERMISSIONS, MAIN, "serve", "--ollama-host", ollamaHost, ...args];
}

/** A connected stdio client. */
export interface StdioSession {
  /** The SDK client. */
  client: Client;
  /** The client transport (its `pid` is the daemon's). */
  transport: StdioClientTransport;
  /** Everything the daemon wrote to stderr so far. */
  stderr(): string;
  /** Closes the client, which ends the daemon. */
  close(): Promise<void>;
}

/** Starts the daemon on stdio against `ollamaHost` and connects a client. */
export async function connectStdio(
  ollamaHost: string,
  options: { args?: string[] } = {},
): Promise<StdioSession> {
  const transport = new StdioClientTransport({
    command: Deno.execPath(),
    args: serveArgs(ollamaHost, ["--stdio", ...(options.args ?? [])]),
    env: { ...LAUNCH_ENV, NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" },
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Uint8Array) => {
    stderr += new TextDecoder().decode(chunk);
  });
  const client = new Client({ name: "rune-test", version: "1.0.0" });
  await client.connect(transport);
  return {
    client,
    transport,
    stderr: () => stderr,
    close: () => client.close(),
  };
}
