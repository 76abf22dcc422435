/**
 * The provider registry: one entry per provider type with what it needs
 * (default base URL, the environment variables of the ecosystem's
 * conventions, whether it needs a key) and how to create it; and
 * {@linkcode buildProviders}, which turns the configuration file, the
 * environment and the flags into the providers the daemon serves.
 *
 * Zero-config where the ecosystem has conventions: Ollama is always there
 * (`OLLAMA_HOST`, `--ollama-host`), `ANTHROPIC_API_KEY` (+
 * `ANTHROPIC_BASE_URL`) adds `anthropic`, `OPENAI_API_KEY` (+
 * `OPENAI_BASE_URL`) adds `openai`; the configuration file adds any others
 * and may redefine these ids. Secrets are read here and handed to providers
 * as credential sources; nothing logs or returns them.
 *
 * @module
 */

import { ConfigError } from "../config/load.ts";
import type { Config, ProviderConfig, ProviderType } from "../config/schema.ts";
import type { ByteLimits } from "./budget.ts";
import { type CredentialSource, fixedCredential } from "./credential.ts";
import type { Timeouts } from "./deadline.ts";
import { createAnthropicProvider } from "./anthropic/mod.ts";
import type { Logger } from "../log.ts";
import { type FleetEvents, NO_EVENTS } from "../metrics/events.ts";
import { createOllamaProvider } from "./ollama/mod.ts";
import { normalizeModelName } from "./ollama/convert.ts";
import { createOpenAiProvider } from "./openai/mod.ts";
import { parseOllamaHost } from "./ollama_host.ts";
import { observed } from "./observed.ts";
import { createPool, type PoolOptions } from "./pool.ts";
import type { Provider } from "./types.ts";

/** What every provider is created with, from the flags. */
export interface CommonOptions {
  /** Deadlines (missing fields: each provider's defaults). */
  timeouts?: Partial<Timeouts>;
  /** Byte budgets (missing fields: the defaults). */
  limits?: Partial<ByteLimits>;
  /** The `fetch` to use (tests). */
  fetch?: typeof fetch;
  /** Where upstream tokens, errors, retries and failovers are reported (metrics). */
  events?: FleetEvents;
  /** Diagnostics of host pools (hosts going down and up). */
  log?: Logger;
  /** Pool tuning beyond the configuration (health intervals, in tests and benchmarks). */
  pool?: PoolOptions;
}

/** A provider entry with everything resolved. */
export interface ResolvedProvider {
  /** Provider id. */
  id: string;
  /** Base URL. */
  baseUrl: string;
  /** Where the key comes from; absent for keyless servers. */
  credential?: CredentialSource;
  /** Extra headers. */
  headers?: Record<string, string>;
  /** Configured model list. */
  models?: string[];
  /** Name for people (the config entry's id when it is not the type's own). */
  label?: string;
}

/** One provider type. */
export interface RegistryEntry {
  /** The type name used in the configuration file. */
  type: ProviderType;
  /** Name for people. */
  label: string;
  /** Base URL when none is configured. */
  defaultBaseUrl: string;
  /** The ecosystem's key variable (zero-config), e.g. `ANTHROPIC_API_KEY`. */
  keyEnv?: string;
  /** The ecosystem's base URL variable, e.g. `ANTHROPIC_BASE_URL`. */
  baseUrlEnv?: string;
  /** True when calls cannot work without a key. */
  needsKey: boolean;
  /** Creates the provider. */
  create(resolved: ResolvedProvider, common: CommonOptions): Provider;
  /** When two model names are the same model (for routing across hosts); default: equal. */
  modelKey?: (name: string) => string;
}

/** The registry: one entry per provider type. */
export const REGISTRY: Partial<Record<ProviderType, RegistryEntry>> = {
  ollama: {
    type: "ollama",
    label: "Ollama",
    defaultBaseUrl: "http://127.0.0.1:11434",
    baseUrlEnv: "OLLAMA_HOST",
    needsKey: false,
    modelKey: normalizeModelName,
    create: (resolved, common) =>
      createOllamaProvider({
        id: resolved.id,
        baseUrl: resolved.baseUrl,
        ...(common.timeouts && { timeouts: common.timeouts }),
        ...(common.limits && { limits: common.limits }),
        ...(common.fetch && { fetch: common.fetch }),
      }),
  },
  anthropic: {
    type: "anthropic",
    label: "Anthropic",
    defaultBaseUrl: "https://api.anthropic.com",
    keyEnv: "ANTHROPIC_API_KEY",
    baseUrlEnv: "ANTHROPIC_BASE_URL",
    needsKey: true,
    create: (resolved, common) =>
      createAnthropicProvider({
        id: resolved.id,
        ...(resolved.label && { label: resolved.label }),
        baseUrl: resolved.baseUrl,
        ...(resolved.credential && { credential: resolved.credential }),
        ...(resolved.headers && { headers: resolved.headers }),
        ...(resolved.models && { models: resolved.models }),
        ...(common.timeouts && { timeouts: common.timeouts }),
        ...(common.limits && { limits: common.limits }),
        ...(common.fetch && { fetch: common.fetch }),
        ...(common.events && { onRetry: () => common.events!.retry(resolved.id) }),
        ...(resolved.id !== "anthropic" &&
          { addressSetting: `the base_url of provider "${resolved.id}"` }),
      }),
  },
  openai: {
    type: "openai",
    label: "OpenAI",
    defaultBaseUrl: "https://api.openai.com/v1",
    keyEnv: "OPENAI_API_KEY",
    baseUrlEnv: "OPENAI_BASE_URL",
    // OpenAI-compatible local servers (vLLM, llama.cpp, LM Studio) need no key.
    needsKey: false,
    create: (resolved, common) =>
      createOpenAiProvider({
        id: resolved.id,
        ...(resolved.label && { label: resolved.label }),
        baseUrl: resolved.baseUrl,
        ...(resolved.credential && { credential: resolved.credential }),
        ...(resolved.headers && { headers: resolved.headers }),
        ...(resolved.models && { models: resolved.models }),
        ...(common.timeouts && { timeouts: common.timeouts }),
        ...(common.limits && { limits: common.limits }),
        ...(common.fetch && { fetch: common.fetch }),
        ...(common.events && { onRetry: () => common.events!.retry(resolved.id) }),
      }),
  },
};

/** Inputs of {@linkcode buildProviders}. */
export interface BuildOptions {
  /** The configuration file's content. */
  config: Config;
  /** The file it came from, for messages. */
  configPath?: string;
  /** Reads an environment variable (undefined when unset or not allowed). */
  env: (name: string) => string | undefined;
  /** `--ollama-host`, if given once. */
  ollamaHost?: string;
  /** `--ollama-host` given several times: one Ollama provider over all of them. */
  ollamaHosts?: string[];
  /** Deadlines, budgets, fetch. */
  common?: CommonOptions;
  /** Extra credential lookup (the credential store), tried when no variable holds a key. */
  storedCredential?: (id: string) => CredentialSource | undefined;
}

/** A credential that fails every call with advice, for a provider configured without its key. */
function missingCredential(id: string, advice: string): CredentialSource {
  return {
    describe: `no key for "${id}"`,
    get: () => Promise.reject(new ConfigError(`Provider "${id}" has no API key: ${advice}`)),
  };
}

/** The providers to serve, in order: Ollama, zero-config ones, then the file's. */
export function buildProviders(options: BuildOptions): Provider[] {
  const { config, env } = options;
  const common = options.common ?? {};
  const where = options.configPath ?? "the configuration file";
  const entries: ProviderConfig[] = [...(config.providers ?? [])];
  const ids = new Set<string>();
  for (const entry of entries) {
    if (ids.has(entry.id)) {
      throw new ConfigError(
        `${where}: provider id "${entry.id}" is declared twice: ids must be unique.`,
      );
    }
    ids.add(entry.id);
  }
  const zero: ProviderConfig[] = [];
  if (!ids.has("ollama")) zero.push({ id: "ollama", type: "ollama" });
  for (const entry of Object.values(REGISTRY)) {
    // A key in its variable or in the credential store (rune auth set-key) enables the type's id.
    if (
      entry?.keyEnv && entry.type !== "ollama" && !ids.has(entry.type) &&
      (env(entry.keyEnv) || options.storedCredential?.(entry.type))
    ) {
      zero.push({ id: entry.type, type: entry.type });
    }
  }
  return [...zero, ...entries].map((entry) => create(entry, { ...options, common, where }));
}

function create(
  entry: ProviderConfig,
  options: BuildOptions & { common: CommonOptions; where: string },
): Provider {
  const registry = REGISTRY[entry.type];
  if (!registry) {
    throw new ConfigError(
      `${options.where}: provider "${entry.id}" has type "${entry.type}", which this build of Rune does not support.`,
    );
  }
  const zeroConfig = !(options.config.providers ?? []).some((p) => p.id === entry.id);
  if (entry.hosts && entry.base_url) {
    throw new ConfigError(
      `${options.where}: provider "${entry.id}" has both base_url and hosts: give one of them.`,
    );
  }
  let baseUrls: string[];
  if (entry.type === "ollama") {
    // OLLAMA_HOST and --ollama-host follow Ollama's own rules (host, host:port, :port, ...).
    const given = entry.hosts ?? (entry.base_url !== undefined ? [entry.base_url] : undefined) ??
      (zeroConfig
        ? options.ollamaHosts?.length
          ? options.ollamaHosts
          : [options.ollamaHost ?? options.env("OLLAMA_HOST")]
        : [undefined]);
    baseUrls = given.map((host) => parseOllamaHost(host));
  } else {
    baseUrls = entry.hosts?.map((host) => checkedUrl(host, entry.id, options.where)) ?? [
      entry.base_url ??
        (zeroConfig && registry.baseUrlEnv ? options.env(registry.baseUrlEnv) : undefined) ??
        registry.defaultBaseUrl,
    ];
  }
  const credential = credentialFor(entry, registry, { ...options, zeroConfig });
  const events = options.common.events ?? NO_EVENTS;
  const hosts = baseUrls.map((baseUrl) => {
    const provider = registry.create({
      id: entry.id,
      ...(entry.id !== entry.type && { label: entry.id }),
      baseUrl,
      credential,
      ...(entry.headers && { headers: entry.headers }),
      ...(entry.models && { models: entry.models }),
    }, options.common);
    // Metrics wrap each host (no wrapper, no per-chunk cost, when nothing listens).
    return {
      address: hostPort(baseUrl),
      provider: options.common.events ? observed(provider, events) : provider,
    };
  });
  const provider = hosts.length === 1 ? hosts[0].provider : createPool(hosts, {
    events,
    ...(options.common.log && { log: options.common.log }),
    ...(registry.modelKey && { modelKey: registry.modelKey }),
    ...options.common.pool,
    ...(entry.max_in_flight_per_host && { maxInFlightPerHost: entry.max_in_flight_per_host }),
  });
  // Where the key comes from, for "rune providers" and /healthz (never the key).
  return credential ? { ...provider, credentialSource: credential.describe } : provider;
}

/** `host:port` of a base URL, the port spelled out even when it is the scheme's default. */
export function hostPort(baseUrl: string): string {
  const url = new URL(baseUrl);
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}

/** A configured host of a provider other than Ollama: an http(s) URL. */
function checkedUrl(value: string, id: string, where: string): string {
  try {
    const url = new URL(value);
    if (url.protocol === "http:" || url.protocol === "https:") return value;
  } catch {
    // Reported below.
  }
  throw new ConfigError(
    `${where}: provider "${id}" has host ${
      JSON.stringify(value)
    }: expected an http:// or https:// URL.`,
  );
}

/** Where a provider's key comes from, in order: its variable, the credential store. */
function credentialFor(
  entry: ProviderConfig,
  registry: RegistryEntry,
  options: BuildOptions & { zeroConfig: boolean; where: string },
): CredentialSource | undefined {
  const variable = entry.api_key_env ?? (options.zeroConfig ? registry.keyEnv : undefined);
  const key = variable ? options.env(variable)?.trim() : undefined;
  if (variable && key) {
    return fixedCredential(
      key,
      options.zeroConfig ? variable : `config entry "${entry.id}" (api_key_env ${variable})`,
    );
  }
  const stored = options.storedCredential?.(entry.id);
  if (stored) return stored;
  // A keyless server is fine, unless the configuration says where its key should be.
  if (!registry.needsKey && entry.api_key_env === undefined) return undefined;
  return missingCredential(
    entry.id,
    variable
      ? `set ${variable} (and allow it with --allow-env=${variable}), or store one with "rune auth set-key ${entry.id}".`
      : `set api_key_env for it in ${options.where}, or store one with "rune auth set-key ${entry.id}".`,
  );
}
