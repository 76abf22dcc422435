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
import { scopesOf } from "../mcp/scopes.ts";
import type { ToolSet } from "../mcp/server.ts";
import { pooledFactory } from "../mcp/instance_pool.ts";
import type { ClientLimit } from "../mcp/client_limits.ts";
import type { TaskStore } from "../mcp/tasks/store.ts";
import { createLogger, isLogLevel, type Logger } from "../log.ts";
import { type FleetEvents, NO_EVENTS } from "../metrics/events.ts";
import type { PrometheusMetrics } from "../metrics/prometheus.ts";
import type { Provider } from "../providers/types.ts";
import type { Handler } from "../transports/http.ts";
import type { MessageTransport } from "../transports/message_transport.ts";
import { isConnectionDropped } from "../transports/connection_drop.ts";
import {
  DEFAULT_HEADER_GUARD,
  type GuardedServer,
  serveGuarded,
} from "../transports/header_guard.ts";
import { isLoopback } from "../transports/security.ts";
import { DEFAULT_MAX_MESSAGE_SIZE } from "../transports/jsonrpc.ts";
import { canReleaseMemory, watchMemoryRelease } from "../transports/memory_release.ts";
import { FLEET_FLAGS_HELP, fleetFlags, setupFleet } from "./fleet.ts";
import type { Io } from "./output.ts";
import { listenerOrigin, REMOTE_FLAGS_HELP, remoteFlags, remoteSetup } from "./remote_options.ts";
import {
  loadProviders,
  parseFlags,
  PROVIDER_FLAGS_HELP,
  providerFlags,
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
                            binding a non-loopback address requires a token or OAuth
${REMOTE_FLAGS_HELP}
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
  --header-timeout SECS     request headers must arrive within SECS, else 408 and the
                            connection is closed (default 10; 0 turns the guard off)
  --max-header-connections N  connections still sending request headers; more get 503
                            (default 256)
  --shutdown-grace SECS     on SIGINT/SIGTERM, let calls finish for SECS (default 10)
  --release-memory-after N  once N sessions ended and no new one came for 2 s, return freed
                            memory to the system (needs DENO_USR2_MEMORY_TRIM, which the
                            launchers set; Linux; default 100, 0 never)
  --log-level LEVEL         debug, info, warning, error or silent (default info)
Tools:
  --tools SET               per-provider (ai_<id>_*), router (ai_generate & co. with
                            "provider/model" names) or all (default; or "tools" in the config)
  --allow-model-management  also offer ai_ollama_pull and ai_ollama_delete, which download
                            and delete Ollama models (default off; or
                            "allow_model_management": true in the config)
${FLEET_FLAGS_HELP}
${PROVIDER_FLAGS_HELP}`;

const serveFlags = {
  ...providerFlags,
  ...fleetFlags,
  ...remoteFlags,
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
  "header-timeout": { type: "string" },
  "max-header-connections": { type: "string" },
  "shutdown-grace": { type: "string" },
  "release-memory-after": { type: "string" },
  "log-level": { type: "string" },
  tools: { type: "string" },
  "allow-model-management": { type: "boolean" },
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

/**
 * Says why `Deno.serve` could not listen on `hostname:port` and what to do;
 * anything unexpected is returned as is (a bug, rethrown).
 */
export function listenError(hostname: string, port: number, cause: unknown): unknown {
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  // --allow-net=HOST grants every port, which --port 0 needs.
  const target = port === 0 ? host : `${host}:${port}`;
  if (cause instanceof Deno.errors.AddrInUse) {
    return new RuneError(
      `Port ${port} on ${hostname} is already in use: pick another with --port, or --port 0.`,
      { cause },
    );
  }
  if (cause instanceof Deno.errors.NotCapable) {
    return new RuneError(
      `Deno's permissions do not let Rune listen on ${target}: it was started with --allow-net ` +
        `for other addresses only (the deno tasks allow loopback only). Add ` +
        `--allow-net=${target} to the "deno run" command that starts Rune, or use the installed ` +
        `rune ("deno task install"), which may listen on any address you give it.`,
      { cause },
    );
  }
  if (cause instanceof Deno.errors.PermissionDenied) {
    return new RuneError(
      `The operating system does not let Rune listen on ${target} (${cause.message}): ports ` +
        `below 1024 need privileges; pick --port 1024 or above.`,
      { cause },
    );
  }
  return cause;
}

/**
 * Pings each provider once, without holding up the daemon, and logs what
 * answered: a stopped Ollama shows at start instead of at the first call.
 * Bounded by each provider's connect timeout and by `signal` (shutdown).
 */
export async function reportProviders(
  providers: Provider[],
  log: Logger,
  options: {
    /** Aborted at shutdown. */
    signal?: AbortSignal;
  } = {},
): Promise<void> {
  await Promise.all(providers.map(async (provider) => {
    try {
      const version = await provider.ping({ signal: options.signal });
      log("info", `provider ${provider.id} at ${provider.address} answers (version ${version})`);
    } catch (error) {
      if (options.signal?.aborted) return;
      log(
        "warning",
        `provider ${provider.id} at ${provider.address} did not answer its start-up check: ` +
          `${(error as Error).message} (Rune keeps serving; calls to ${provider.id} fail until ` +
          "this is fixed)",
      );
    }
  }));
}

interface Listener {
  handler: Handler;
  server: Pick<GuardedServer, "addr" | "shutdown">;
}

/** What every MCP server instance of the daemon is built from. */
interface ServeDeps {
  providers: Provider[];
  toolSet: ToolSet;
  tasks: TaskStore;
  log: Logger;
  events: FleetEvents;
  clientLimit?: ClientLimit;
  /** Register the pull and delete tools. */
  allowModelManagement: boolean;
}

/** Starts the network listener from the parsed flags. */
async function listen(
  values: Record<string, unknown>,
  deps: ServeDeps & {
    /** Number of stdio sessions, for `/healthz`. */
    stdioSessions: () => number;
    metrics?: PrometheusMetrics;
    fleetHealth: () => Record<string, unknown>;
  },
): Promise<Listener> {
  const { providers, log, stdioSessions } = deps;
  const hostname = (values.host as string | undefined) ?? "127.0.0.1";
  const port = intFlag(values.port, "port", DEFAULT_PORT);
  if (port > 65535) throw new UsageError(`--port must be at most 65535`);
  const tokens = await readTokens(values["token-file"] as string | undefined);
  const remote = await remoteSetup(values, { hostname, log, env: (name) => Deno.env.get(name) });
  if (!isLoopback(hostname) && tokens.length === 0 && !remote.oauth) {
    throw new UsageError(
      `Refusing to listen on ${hostname} without a token: anyone on the network could use your models. Set RUNE_TOKEN or --token-file, or --oauth-issuer, or bind 127.0.0.1.`,
    );
  }
  const { factory } = pooledFactory(async (ctx) => {
    // Loaded with the first session: an idle daemon stays small.
    const { createMcpServer, ownerOf } = await import("../mcp/server.ts");
    return createMcpServer(mcpDeps(deps), {
      era: ctx.era,
      owner: ownerOf(ctx),
      scopes: scopesOf(ctx),
    });
  });
  // Loaded only with a listener: a stdio daemon needs none of the network transports.
  const { createHandler } = await import("../transports/http.ts");
  const handler = createHandler({
    factory,
    providers,
    log,
    stdioSessions,
    ...(deps.metrics && { metrics: deps.metrics }),
    fleetHealth: deps.fleetHealth,
    security: {
      hostname,
      allowedOrigins: values["allow-origin"] as string[] | undefined,
      tokens,
      ...(remote.oauth && { oauth: remote.oauth }),
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
  const onError = (error: unknown) => {
    // A response that drops its connection on purpose (a 408, a client cut off for not
    // reading) errors its body: no failure to report.
    if (isConnectionDropped(error)) return new Response(null, { status: 500 });
    log("error", `request failed: ${(error as Error)?.stack ?? error}`);
    return new Response("Internal server error\n", { status: 500 });
  };
  // 0 turns the guard off: Deno.serve then listens itself (no header deadline).
  const headerTimeoutMs = Number(values["header-timeout"]) === 0
    ? 0
    : secondsFlag(values["header-timeout"], "header-timeout") ??
      DEFAULT_HEADER_GUARD.headerTimeoutMs;
  let server: Listener["server"];
  try {
    server = headerTimeoutMs === 0
      ? Deno.serve({ hostname, port, ...remote.tls, onListen: () => {}, onError }, handler)
      : serveGuarded({
        hostname,
        port,
        ...remote.tls,
        onError,
        log,
        headerTimeoutMs,
        maxHeaderConnections: intFlag(
          values["max-header-connections"],
          "max-header-connections",
          DEFAULT_HEADER_GUARD.maxHeaderConnections,
        ),
      }, handler);
  } catch (cause) {
    throw listenError(hostname, port, cause);
  }
  const addr = server.addr;
  // Before any request is handled: the default resource URL needs the bound port.
  remote.oauth?.listening(listenerOrigin(hostname, addr.port, remote.tls !== undefined));
  const shown = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const [http, ws] = remote.tls ? ["https", "wss"] : ["http", "ws"];
  log(
    "info",
    `listening on ${http}://${shown}:${addr.port} (WebSocket ${ws}://${shown}:${addr.port}/ws, Streamable HTTP ${http}://${shown}:${addr.port}/mcp${
      tokens.length ? ", token required" : ""
    }${remote.oauth ? `, OAuth resource ${remote.oauth.resource}` : ""})`,
  );
  return { handler, server };
}

/** The MCP server dependencies from the daemon's. */
function mcpDeps(deps: ServeDeps): import("../mcp/server.ts").McpServerDeps {
  return {
    providers: deps.providers,
    tools: deps.toolSet,
    log: deps.log,
    tasks: deps.tasks,
    events: deps.events,
    allowModelManagement: deps.allowModelManagement,
    ...(deps.clientLimit && { clientLimit: deps.clientLimit }),
  };
}

/** Loads the MCP server and the stdio transport, then serves stdio until it ends. */
async function serveStdioSession(
  deps: ServeDeps,
  options: import("../transports/stdio.ts").StdioOptions,
): Promise<void> {
  const { log } = deps;
  const [{ createServerFactory }, { serveStdio }] = await Promise.all([
    import("../mcp/server.ts"),
    import("../transports/stdio.ts"),
  ]);
  await serveStdio(createServerFactory(mcpDeps(deps)), {
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
  const metricsMode = (values.metrics as string | undefined) ?? "on";
  if (metricsMode !== "on" && metricsMode !== "off") {
    throw new UsageError(`--metrics must be on or off, got ${JSON.stringify(metricsMode)}`);
  }
  const useStdio = Boolean(values.stdio);
  const useNetwork = !useStdio || values.port !== undefined || values.host !== undefined;
  // Only a network listener serves /metrics; prom-client alone costs a stdio daemon ~17 MiB.
  const metrics = metricsMode === "on" && useNetwork
    ? (await import("../metrics/prometheus.ts")).createPrometheusMetrics()
    : undefined;
  const events = metrics ?? NO_EVENTS;
  const { providers: built, config } = loadProviders(values, {
    common: { ...(metrics && { events: metrics }), log },
  });
  const toolSet = toolSetFlag(values.tools) ?? config.tools ?? "all";
  const allowModelManagement = Boolean(values["allow-model-management"]) ||
    config.allow_model_management === true;
  if (allowModelManagement) {
    log("info", "model management is on: clients may pull and delete Ollama models");
  }
  // Cache, limits, fallbacks and Redis; long calls run as tasks (in Redis with --redis).
  const fleet = await setupFleet({ values, config, providers: built, events, log });
  const { providers, tasks, clientLimit } = fleet;
  const deps: ServeDeps = {
    providers,
    toolSet,
    tasks,
    log,
    events,
    allowModelManagement,
    ...(clientLimit && { clientLimit }),
  };
  const graceMs = secondsFlag(values["shutdown-grace"], "shutdown-grace") ?? 10_000;

  let stdioTransport: MessageTransport | undefined;
  const stop = new AbortController();
  const stopStdio = new AbortController();
  const onSignal = () => stop.abort();
  // Before the "listening on" line: a SIGTERM right after it must still stop cleanly.
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const network = useNetwork
      ? await listen(values, {
        ...deps,
        stdioSessions: () => stdioTransport ? 1 : 0,
        ...(metrics && { metrics }),
        fleetHealth: () => fleet.health(),
      })
      : undefined;
    metrics?.watch({
      sessions: () => ({
        stdio: stdioTransport ? 1 : 0,
        ...(network?.handler.sessions() ?? { websocket: 0, http: 0 }),
      }),
      hosts: () => fleet.hostGauges(),
      cacheBytes: () => fleet.cacheBytes(),
    });
    // Memory freed after a load peak goes back to the system (see memory_release.ts).
    const releaseAfter = intFlag(values["release-memory-after"], "release-memory-after", 100);
    const memory = releaseAfter > 0 && canReleaseMemory()
      ? watchMemoryRelease({
        churn: () => network?.handler.churn() ?? { opened: 0, ended: 0 },
        minEnded: releaseAfter,
        // Start-up garbage too: a stdio daemon idles for hours after it.
        afterStartMs: 500,
        log,
      })
      : undefined;
    const stdioDone = useStdio
      ? serveStdioSession(deps, {
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
    if (useStdio) log("info", "serving MCP on stdio");
    const pinged = reportProviders(providers, log, { signal: stop.signal });

    await new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve();
      stop.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    log("info", "shutting down: no new sessions; waiting for calls in flight");
    memory?.stop();
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
    await pinged;
    await fleet.close();
    log("info", "stopped");
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

/** Reads `--tools`. */
function toolSetFlag(value: unknown): ToolSet | undefined {
  if (value === undefined) return undefined;
  if (value === "per-provider" || value === "router" || value === "all") return value;
  throw new UsageError(`--tools must be per-provider, router or all, got ${JSON.stringify(value)}`);
}
