/**
 * `rune serve`: the daemon. One process serves MCP over stdio (`--stdio`),
 * WebSocket (`GET /ws`) and Streamable HTTP (`/mcp`) at once, each session
 * with its own MCP server instance. SIGINT/SIGTERM stop accepting, give
 * in-flight calls a grace period, then abort them, close sockets with 1001
 * and exit 0.
 *
 * @module
 */

import { RuneError, UsageError } from "../errors.ts";
import { createLogger, isLogLevel, type Logger } from "../log.ts";
import type { Provider } from "../providers/types.ts";
import { createHandler, type Handler } from "../transports/http.ts";
import type { MessageTransport } from "../transports/message_transport.ts";
import { isConnectionDropped } from "../transports/connection_drop.ts";
import { isLoopback } from "../transports/security.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../transports/jsonrpc.ts";
import type { Io } from "./output.ts";
import {
  parseFlags,
  PROVIDER_FLAGS_HELP,
  providerFlags,
  providersFromFlags,
  secondsFlag,
} from "./options.ts";

/** Default TCP port of the network endpoints. */
export const DEFAULT_PORT = 8484;

/** Help for `rune serve`. */
export const SERVE_HELP = `Usage: rune serve [options]

Serves MCP over WebSocket (GET /ws, subprotocol "mcp") and Streamable HTTP
(/mcp) on one port, plus GET /healthz and a playground page at GET /.
With --stdio alone it speaks MCP on stdin/stdout only; with --stdio and
--port it does both (EOF on stdin then stops the daemon).

Network:
  --host ADDR               bind address (default 127.0.0.1)
  --port N                  port, 0 picks a free one (default ${DEFAULT_PORT});
                            the bound address is printed on stderr
  --allow-origin ORIGIN     also accept this browser Origin, repeatable
                            (localhost origins are always accepted)
  --token-file FILE         require the bearer token in FILE (default: $RUNE_TOKEN);
                            binding a non-loopback address requires a token
Transports:
  --stdio                   speak MCP on stdin/stdout (logs go to stderr)
Limits and timeouts:
  --max-message-bytes N     largest accepted message (default ${DEFAULT_MAX_MESSAGE_SIZE})
  --max-in-flight N         most concurrent requests per session (default 64)
  --max-sessions N          most concurrent network sessions (default 1024)
  --high-water-mark N       WebSocket sends wait above N queued bytes (default 1048576)
  --hard-cap N              queued bytes that start the slow-client grace (default 8388608)
  --slow-client-grace SECS  close a client stuck above the hard cap (1008) after SECS (default 10)
  --init-timeout SECS       close a session that sends no initialize (default 30)
  --ws-idle-timeout SECS    close a WebSocket that stops answering pings (default 60)
  --http-idle-timeout SECS  close an HTTP session unused for SECS (default 600)
  --body-timeout SECS       a request body must arrive within SECS, else 408 (default 30)
  --min-body-rate N         and at N bytes/s or faster after 5 s (default 1024)
  --max-receiving N         requests still sending their body at once; more get 503
                            (default 256)
  --shutdown-grace SECS     on SIGINT/SIGTERM, let calls finish for SECS (default 10)
  --log-level LEVEL         debug, info, warning, error or silent (default info)
${PROVIDER_FLAGS_HELP}`;

const serveFlags = {
  ...providerFlags,
  stdio: { type: "boolean" },
  host: { type: "string" },
  port: { type: "string" },
  "allow-origin": { type: "string", multiple: true },
  "token-file": { type: "string" },
  "max-message-bytes": { type: "string" },
  "max-in-flight": { type: "string" },
  "max-sessions": { type: "string" },
  "high-water-mark": { type: "string" },
  "hard-cap": { type: "string" },
  "slow-client-grace": { type: "string" },
  "init-timeout": { type: "string" },
  "ws-idle-timeout": { type: "string" },
  "http-idle-timeout": { type: "string" },
  "body-timeout": { type: "string" },
  "min-body-rate": { type: "string" },
  "max-receiving": { type: "string" },
  "shutdown-grace": { type: "string" },
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

/**
 * The accepted bearer tokens: `$RUNE_TOKEN`, or every non-empty line of
 * `--token-file` (one token per client; lines starting with `#` are comments).
 */
async function readTokens(file: string | undefined): Promise<string[]> {
  if (file === undefined) {
    const env = Deno.env.get("RUNE_TOKEN")?.trim();
    return env ? [env] : [];
  }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (cause) {
    throw new RuneError(
      `Cannot read --token-file ${JSON.stringify(file)}: ${(cause as Error).message}`,
      { cause },
    );
  }
  const tokens = text.split("\n").map((line) => line.trim()).filter((line) =>
    line !== "" && !line.startsWith("#")
  );
  if (tokens.length === 0) throw new RuneError(`--token-file ${JSON.stringify(file)} is empty`);
  return tokens;
}

/** Resolves once `check()` is true or `ms` passed; polls because in-flight counts emit no events. */
async function waitUntil(check: () => boolean, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check() && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits for `promise`, but at most `ms`. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}

interface Listener {
  handler: Handler;
  server: Deno.HttpServer<Deno.NetAddr>;
}

/** Starts the network listener from the parsed flags. */
async function listen(
  values: Record<string, unknown>,
  { providers, log, stdioSessions }: {
    providers: Provider[];
    log: Logger;
    /** Number of stdio sessions, for `/healthz`. */
    stdioSessions: () => number;
  },
): Promise<Listener> {
  const hostname = (values.host as string | undefined) ?? "127.0.0.1";
  const port = intFlag(values.port, "port", DEFAULT_PORT);
  if (port > 65535) throw new UsageError(`--port must be at most 65535`);
  const tokens = await readTokens(values["token-file"] as string | undefined);
  if (!isLoopback(hostname) && tokens.length === 0) {
    throw new UsageError(
      `Refusing to listen on ${hostname} without a token: anyone on the network could use your models. Set RUNE_TOKEN or --token-file, or bind 127.0.0.1.`,
    );
  }
  const handler = createHandler({
    // Loaded with the first session: an idle daemon stays small.
    factory: async () => (await import("../mcp/server.ts")).createMcpServer({ providers, log }),
    providers,
    log,
    stdioSessions,
    security: {
      hostname,
      allowedOrigins: values["allow-origin"] as string[] | undefined,
      tokens,
    },
    limits: {
      maxMessageSize: intFlag(
        values["max-message-bytes"],
        "max-message-bytes",
        DEFAULT_MAX_MESSAGE_SIZE,
      ),
      maxInFlight: intFlag(values["max-in-flight"], "max-in-flight", 64),
      maxSessions: intFlag(values["max-sessions"], "max-sessions", 1024),
      highWaterMark: intFlag(values["high-water-mark"], "high-water-mark", 1024 * 1024),
      hardCap: intFlag(values["hard-cap"], "hard-cap", 8 * 1024 * 1024),
      graceMs: secondsFlag(values["slow-client-grace"], "slow-client-grace") ?? 10_000,
      initializeTimeoutMs: secondsFlag(values["init-timeout"], "init-timeout") ?? 30_000,
      idleTimeoutSeconds: (secondsFlag(values["ws-idle-timeout"], "ws-idle-timeout") ?? 60_000) /
        1000,
      httpSessionIdleMs: secondsFlag(values["http-idle-timeout"], "http-idle-timeout") ?? 600_000,
      bodyTimeoutMs: secondsFlag(values["body-timeout"], "body-timeout") ?? 30_000,
      minBodyRate: intFlag(values["min-body-rate"], "min-body-rate", 1024),
      maxReceiving: intFlag(values["max-receiving"], "max-receiving", 256),
    },
  });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname,
      port,
      onListen: () => {},
      onError: (error) => {
        // A response that drops its connection on purpose (a 408, a client cut off for not
        // reading) errors its body: no failure to report.
        if (isConnectionDropped(error)) return new Response(null, { status: 500 });
        log("error", `request failed: ${(error as Error)?.stack ?? error}`);
        return new Response("Internal server error\n", { status: 500 });
      },
    }, handler);
  } catch (cause) {
    if (cause instanceof Deno.errors.AddrInUse) {
      throw new RuneError(
        `Port ${port} on ${hostname} is already in use: pick another with --port, or --port 0.`,
        {
          cause,
        },
      );
    }
    throw cause;
  }
  const addr = server.addr;
  const shown = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  log(
    "info",
    `listening on http://${shown}:${addr.port} (WebSocket ws://${shown}:${addr.port}/ws, Streamable HTTP http://${shown}:${addr.port}/mcp${
      tokens.length ? ", token required" : ""
    })`,
  );
  return { handler, server };
}

/** Loads the MCP server and the stdio transport, then serves stdio until it ends. */
async function serveStdioSession(
  providers: Provider[],
  log: Logger,
  options: import("../transports/stdio.ts").StdioOptions,
): Promise<void> {
  const [{ createServerFactory }, { serveStdio }] = await Promise.all([
    import("../mcp/server.ts"),
    import("../transports/stdio.ts"),
  ]);
  await serveStdio(createServerFactory({ providers, log }), {
    ...options,
    onError: (error) => log("debug", `stdio: ${error.message}`),
  });
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
  const useStdio = Boolean(values.stdio);
  const useNetwork = !useStdio || values.port !== undefined || values.host !== undefined;
  const graceMs = secondsFlag(values["shutdown-grace"], "shutdown-grace") ?? 10_000;

  let stdioTransport: MessageTransport | undefined;
  const network = useNetwork
    ? await listen(values, { providers, log, stdioSessions: () => stdioTransport ? 1 : 0 })
    : undefined;

  const stop = new AbortController();
  const stopStdio = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const stdioDone = useStdio
      ? serveStdioSession(providers, log, {
        signal: stopStdio.signal,
        maxMessageSize: intFlag(
          values["max-message-bytes"],
          "max-message-bytes",
          DEFAULT_MAX_MESSAGE_SIZE,
        ),
        maxInFlight: intFlag(values["max-in-flight"], "max-in-flight", 64),
        initializeTimeoutMs: 0,
        onSession: (transport) => (stdioTransport = transport),
      }).finally(() => {
        stdioTransport = undefined;
        // The client that started us is gone: stop the whole daemon.
        stop.abort();
      })
      : undefined;
    if (useStdio) log("info", `serving MCP on stdio (Ollama at ${providers[0].address})`);
    else log("info", `Ollama at ${providers[0].address}`);

    await new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve();
      stop.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    log("info", "shutting down: no new sessions; waiting for calls in flight");
    network?.handler.drain();
    stdioTransport?.drain();
    const inFlight = () => (network?.handler.inFlight() ?? 0) + (stdioTransport?.inFlight ?? 0);
    await waitUntil(() => inFlight() === 0, graceMs);
    if (inFlight() > 0) {
      log("warning", `aborting ${inFlight()} call(s) still in flight after the grace period`);
    }
    stopStdio.abort();
    await network?.handler.closeAll();
    // A client stuck mid-request (a stalled body) must not hold the exit forever.
    if (network) await settleWithin(network.server.shutdown(), graceMs);
    await stdioDone;
    log("info", "stopped");
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
