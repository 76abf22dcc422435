/**
 * `rune serve`: the daemon. Serves MCP over stdio (`--stdio`) and over the
 * network (WebSocket and Streamable HTTP, see `transports/http.ts`), each
 * session with its own MCP server instance. SIGINT/SIGTERM stop accepting,
 * give in-flight calls a grace period, then abort them and exit 0.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { createLogger, isLogLevel } from "../log.ts";
import { createMcpServer } from "../mcp/server.ts";
import { serveStdio } from "../transports/stdio.ts";
import type { Io } from "./output.ts";
import { parseFlags, PROVIDER_FLAGS_HELP, providerFlags, providersFromFlags } from "./options.ts";

/** Help for `rune serve`. */
export const SERVE_HELP = `Usage: rune serve [options]

Serves MCP over stdio (--stdio).

Options:
  --stdio                  speak MCP on stdin/stdout (logs go to stderr)
  --max-message-bytes N    largest accepted message (default 33554432)
  --max-in-flight N        most concurrent requests per session (default 64)
  --log-level LEVEL        debug, info, warning, error or silent (default info)
${PROVIDER_FLAGS_HELP}`;

const serveFlags = {
  ...providerFlags,
  stdio: { type: "boolean" },
  "max-message-bytes": { type: "string" },
  "max-in-flight": { type: "string" },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function intFlag(value: unknown, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    throw new UsageError(`--${flag} needs a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Runs `rune serve`; resolves to the exit code once the daemon stopped. */
export async function runServe(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, serveFlags);
  if (values.help) {
    await io.out(SERVE_HELP + "\n");
    return 0;
  }
  if (positionals.length) {
    throw new UsageError(`Unexpected argument "${positionals[0]}" for rune serve`);
  }
  const level = (values["log-level"] as string | undefined) ?? "info";
  if (!isLogLevel(level)) {
    throw new UsageError(`--log-level must be debug, info, warning, error or silent`);
  }
  const log = createLogger({ level });
  const providers = providersFromFlags(values);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    log("info", `serving MCP on stdio (Ollama at ${providers[0].address})`);
    await serveStdio(createMcpServer({ providers, log }), {
      signal: stop.signal,
      maxMessageSize: intFlag(values["max-message-bytes"], "max-message-bytes", 32 * 1024 * 1024),
      maxInFlight: intFlag(values["max-in-flight"], "max-in-flight", 64),
    });
    log("info", "stdio closed; shutting down");
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
