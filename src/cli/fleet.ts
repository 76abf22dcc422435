/**
 * `rune serve`'s fleet settings: the response cache, rate limits,
 * fallbacks, Redis and metrics, from the flags and the configuration file
 * (flags win), and the wrapped providers they make.
 *
 * Each provider is wrapped, outermost first: the cache (a hit reaches
 * nothing below), fallbacks (a refused or failing model moves to the next
 * one), then its own limits (`rpm`/`tpm`, and a back-off after its 429s),
 * over the provider itself (a host pool when it has several hosts). The
 * per-client limit sits above all of it, in the MCP layer.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import { UsageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ClientLimit } from "../mcp/client_limits.ts";
import { createMemoryTaskStore, type TaskStore } from "../mcp/tasks/store.ts";
import type { FleetEvents, HostGauge } from "../metrics/events.ts";
import { withCache } from "../providers/cache.ts";
import {
  CACHE_DEFAULTS,
  type CacheStore,
  createMemoryCacheStore,
  createRedisCacheStore,
} from "../providers/cache_store.ts";
import { withFallbacks } from "../providers/fallback.ts";
import {
  createMemoryRateStore,
  createRedisRateStore,
  type RateStore,
} from "../providers/limiter.ts";
import { parseRate, withLimits } from "../providers/limits.ts";
import type { HostState, PoolProvider } from "../providers/pool.ts";
import type { Provider } from "../providers/types.ts";
import type { RedisLink } from "../redis.ts";
import { bytesFlag } from "./options.ts";

/** The flags of the fleet settings. */
export const fleetFlags = {
  cache: { type: "string" },
  "cache-max-bytes": { type: "string" },
  redis: { type: "string" },
  "rate-limit": { type: "string" },
  metrics: { type: "string" },
} as const;

/** Help for {@linkcode fleetFlags}. */
export const FLEET_FLAGS_HELP = `Fleet (several hosts, several instances):
  --cache memory|off        cache embeddings always, and generations that are deterministic
                            (temperature 0 with a seed) or ask for it (cache: true)
                            (default memory; shared through --redis when given)
  --cache-max-bytes N       largest in-memory cache, least recently used out first
                            (default ${CACHE_DEFAULTS.maxBytes})
  --redis URL               share the cache, the rate limits and tasks with other instances,
                            e.g. redis://127.0.0.1:6379; Rune keeps serving when it is down
  --rate-limit N/s|N/m|N/h  requests per client (bearer token, or session without tokens);
                            per-provider limits are rpm and tpm in the configuration
  --metrics on|off          Prometheus metrics at GET /metrics (default on)`;

/** What the fleet settings make. */
export interface Fleet {
  /** The providers to serve, wrapped (cache, fallbacks, limits). */
  providers: Provider[];
  /** Where tasks live (Redis with --redis). */
  tasks: TaskStore;
  /** The per-client limit, when set. */
  clientLimit?: ClientLimit;
  /** For `/healthz`: every pooled provider's hosts, and the cache store. */
  health(): Record<string, unknown>;
  /** For the gauges: every host of every pool. */
  hostGauges(): HostGauge[];
  /** Bytes held by the cache. */
  cacheBytes(): number;
  /** Stops health checks and closes Redis. */
  close(): Promise<void>;
}

/** Inputs of {@linkcode setupFleet}. */
export interface FleetInputs {
  /** The parsed flags. */
  values: Record<string, unknown>;
  /** The configuration file's content. */
  config: Config;
  /** The providers as built by the registry (pools included). */
  providers: Provider[];
  /** Where everything reports. */
  events: FleetEvents;
  /** Diagnostics. */
  log: Logger;
}

/** True for a provider spread over several hosts. */
export function isPool(provider: Provider): provider is PoolProvider {
  return typeof (provider as Partial<PoolProvider>).hosts === "function";
}

/**
 * Reads the fleet flags and configuration, connects Redis, and wraps the
 * providers. The Redis client is loaded only when Redis is configured: it
 * alone would add about 24 MiB to every daemon.
 */
export async function setupFleet(inputs: FleetInputs): Promise<Fleet> {
  const { values, config, events, log } = inputs;
  const cacheMode = (values.cache as string | undefined) ?? config.cache?.store ?? "memory";
  if (cacheMode !== "memory" && cacheMode !== "off") {
    throw new UsageError(`--cache must be memory or off, got ${JSON.stringify(cacheMode)}`);
  }
  const maxBytes = bytesFlag(values["cache-max-bytes"], "cache-max-bytes") ??
    config.cache?.max_bytes ?? CACHE_DEFAULTS.maxBytes;
  const redisUrl = (values.redis as string | undefined) ?? config.redis;
  if (redisUrl !== undefined && !/^rediss?:\/\/[^/]/.test(redisUrl)) {
    throw new UsageError(
      `--redis needs a redis:// or rediss:// URL such as redis://127.0.0.1:6379, got ${
        JSON.stringify(redisUrl)
      }`,
    );
  }
  const rateText = (values["rate-limit"] as string | undefined) ?? config.rate_limit;
  const rate = rateText === undefined ? undefined : parseRate(rateText);

  const pools = inputs.providers.filter(isPool);
  const redis = redisUrl === undefined ? undefined : await Promise.all([
    import("../redis.ts"),
    import("../mcp/tasks/redis_store.ts"),
  ]);
  const link: RedisLink | undefined = redis && redisUrl
    ? redis[0].connectRedis(redisUrl, { log })
    : undefined;
  const localRates = createMemoryRateStore();
  const sharedRates: RateStore = link
    ? createRedisRateStore(link, { fallback: localRates })
    : localRates;
  const store: CacheStore | undefined = cacheMode === "off"
    ? undefined
    : link
    ? createRedisCacheStore(link, {
      ttlSeconds: config.cache?.ttl_seconds ?? CACHE_DEFAULTS.ttlSeconds,
      maxEntryBytes: maxBytes,
    })
    : createMemoryCacheStore({ maxBytes });

  const entries = new Map((config.providers ?? []).map((p) => [p.id, p]));
  // Providers with rpm/tpm count in the shared store; the others only remember their 429s here.
  const limited = inputs.providers.map((provider) => {
    const entry = entries.get(provider.id);
    const limits = { rpm: entry?.rpm, tpm: entry?.tpm };
    return withLimits(provider, {
      store: limits.rpm || limits.tpm ? sharedRates : localRates,
      limits,
      events,
    });
  });
  let wrapped = limited;
  if (config.fallbacks) {
    try {
      wrapped = withFallbacks(limited, config.fallbacks, { events, log });
    } catch (error) {
      throw new UsageError(
        `fallbacks in the configuration: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  if (store) wrapped = wrapped.map((provider) => withCache(provider, store, { events }));

  return {
    providers: wrapped,
    tasks: link && redis ? redis[1].createRedisTaskStore(link) : createMemoryTaskStore(),
    ...(rate && { clientLimit: { rate, store: sharedRates } }),
    health: () => ({
      ...(pools.length > 0 && {
        hosts: Object.fromEntries(pools.map((p) => [p.id, p.hosts().map(hostHealth)])),
      }),
      cache: {
        store: store ? store.kind : "off",
        ...(store && { status: store.status() }),
        ...(store?.kind === "memory" && { bytes: store.bytes(), max_bytes: maxBytes }),
      },
      ...(link && { redis: { address: link.address, status: link.up() ? "up" : "down" } }),
    }),
    hostGauges: () =>
      pools.flatMap((p) =>
        p.hosts().map((h) => ({
          provider: p.id,
          host: h.host,
          up: h.state !== "down",
          inFlight: h.inFlight,
        }))
      ),
    cacheBytes: () => store?.bytes() ?? 0,
    async close() {
      for (const pool of pools) pool.close();
      await link?.close();
    },
  };
}

/** A host as `/healthz` shows it (snake_case, like the rest of the body). */
function hostHealth(state: HostState): Record<string, unknown> {
  return {
    host: state.host,
    state: state.state,
    in_flight: state.inFlight,
    ...(state.models !== undefined && { models: state.models }),
    ...(state.loaded && { loaded: state.loaded }),
    ...(state.error && { error: state.error }),
  };
}
