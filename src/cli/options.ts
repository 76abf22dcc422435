/**
 * Flags shared by `rune serve` and `rune ai`: where Ollama is, how long
 * to wait for it, and how much of its replies to read. Parsing uses `node:util` `parseArgs`; its errors become
 * usage errors (exit 2).
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadConfig } from "../config/load.ts";
import { storedCredentials } from "../credentials/sources.ts";
import type { Config } from "../config/schema.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_BYTE_LIMITS, formatBytes } from "../providers/budget.ts";
import { DEFAULT_OLLAMA_TIMEOUTS } from "../providers/ollama/mod.ts";
import { buildProviders, type CommonOptions } from "../providers/registry.ts";
import type { Provider } from "../providers/types.ts";

/** Flags every command that talks to a provider accepts. */
export const providerFlags = {
  config: { type: "string" },
  "ollama-host": { type: "string", multiple: true },
  "connect-timeout": { type: "string" },
  "first-token-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  "total-timeout": { type: "string" },
  "max-reply-bytes": { type: "string" },
  "max-stream-bytes": { type: "string" },
} as const satisfies ParseArgsConfig["options"];

/** Help text for {@linkcode providerFlags}. */
export const PROVIDER_FLAGS_HELP = `Provider options:
  --config FILE               providers and settings (default: $RUNE_CONFIG, else
                              ~/.config/rune/config.json if it exists)
  --ollama-host HOST          Ollama address (default: $OLLAMA_HOST, else 127.0.0.1:11434);
                              repeat it for several hosts: calls go to a host that has the
                              model (loaded first, then the least busy), with failover
  --connect-timeout SECS      wait for Ollama's reply headers (default ${
  DEFAULT_OLLAMA_TIMEOUTS.connectMs / 1000
})
  --first-token-timeout SECS  wait for the first token, e.g. while a model loads (default ${
  DEFAULT_OLLAMA_TIMEOUTS.firstTokenMs / 1000
})
  --idle-timeout SECS         longest silence between two tokens (default ${
  DEFAULT_OLLAMA_TIMEOUTS.idleMs / 1000
})
  --total-timeout SECS        longest whole call (default ${DEFAULT_OLLAMA_TIMEOUTS.totalMs / 1000})
  --max-reply-bytes N         largest JSON reply read from a provider: model lists, embeddings
                              (default ${DEFAULT_BYTE_LIMITS.maxReplyBytes}, ${
  formatBytes(DEFAULT_BYTE_LIMITS.maxReplyBytes)
})
  --max-stream-bytes N        largest text + thinking + tool calls of one streamed reply
                              (default ${DEFAULT_BYTE_LIMITS.maxStreamBytes}, ${
  formatBytes(DEFAULT_BYTE_LIMITS.maxStreamBytes)
})`;

/** Parses `args` with `options`, turning parse failures into {@linkcode UsageError}s. */
export function parseFlags<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      allowPositionals: true,
      strict: true,
    });
    return {
      values: values as Record<string, string | boolean | string[] | undefined>,
      positionals,
    };
  } catch (error) {
    throw new UsageError((error as Error).message, { cause: error });
  }
}

/** Reads a positive number of seconds from a flag, in milliseconds. */
export function secondsFlag(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new UsageError(
      `--${flag} needs a positive number of seconds, got ${JSON.stringify(value)}`,
    );
  }
  return Math.round(seconds * 1000);
}

/** Reads a positive whole number of bytes from a flag. */
export function bytesFlag(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const bytes = Number(value);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new UsageError(
      `--${flag} needs a positive whole number of bytes, got ${JSON.stringify(value)}`,
    );
  }
  return bytes;
}

/** The providers and the configuration, from parsed flags, the file and the environment. */
export interface ProviderSetup {
  /** The providers to serve, Ollama first. */
  providers: Provider[];
  /** The configuration file's content (empty without one). */
  config: Config;
  /** The file it came from. */
  configPath?: string;
}

/** Builds the providers from parsed flags, the configuration file and the environment. */
export function loadProviders(
  values: Record<string, unknown>,
  options: {
    /** Metrics and logs of the providers (the daemon's). */
    common?: Pick<CommonOptions, "events" | "log" | "pool">;
  } = {},
): ProviderSetup {
  const timeouts = {
    connectMs: secondsFlag(values["connect-timeout"], "connect-timeout"),
    firstTokenMs: secondsFlag(values["first-token-timeout"], "first-token-timeout"),
    idleMs: secondsFlag(values["idle-timeout"], "idle-timeout"),
    totalMs: secondsFlag(values["total-timeout"], "total-timeout"),
  };
  for (const key of Object.keys(timeouts) as (keyof typeof timeouts)[]) {
    if (timeouts[key] === undefined) delete timeouts[key];
  }
  const limits = {
    maxReplyBytes: bytesFlag(values["max-reply-bytes"], "max-reply-bytes"),
    maxStreamBytes: bytesFlag(values["max-stream-bytes"], "max-stream-bytes"),
  };
  for (const key of Object.keys(limits) as (keyof typeof limits)[]) {
    if (limits[key] === undefined) delete limits[key];
  }
  // Read first, so a start command without the permission is told about this variable.
  const given = values["ollama-host"] as string[] | string | undefined;
  const hosts = given === undefined ? [] : Array.isArray(given) ? given : [given];
  const ollamaHost = hosts.length ? hosts[0] : env("OLLAMA_HOST");
  const { config, path } = loadConfig({ file: values.config as string | undefined, env });
  const providers = buildProviders({
    config,
    configPath: path,
    env,
    ollamaHost,
    ...(hosts.length > 1 && { ollamaHosts: hosts }),
    common: { timeouts, limits, ...options.common },
    // Keys and OAuth tokens from the encrypted store (rune auth), when no variable holds a key.
    storedCredential: storedCredentials({ config, env }),
  });
  return { providers, config, configPath: path };
}

/** Builds the providers from parsed flags, the configuration file and the environment. */
export function providersFromFlags(values: Record<string, unknown>): Provider[] {
  return loadProviders(values).providers;
}

/**
 * Reads a variable. A variable the permissions do not allow is an error (the
 * CLI says which permission to grant), never silently unset: a key or an
 * address the user set must not be ignored.
 */
function env(name: string): string | undefined {
  return Deno.env.get(name);
}
