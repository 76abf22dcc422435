/**
 * Where the response cache keeps its entries: in this process (an LRU
 * bounded by bytes), or in Redis, shared by every Rune instance that uses
 * it (entries expire after a TTL; the memory Redis gives them is bounded by
 * its own `maxmemory` with an LRU policy, see README).
 *
 * A store never fails a call: a Redis that is down or slow makes `get`
 * miss and `set` do nothing, and `status()` says so for `/healthz`.
 *
 * @module
 */

import type { RedisLink } from "../redis.ts";

/** Defaults of the cache, in one place. */
export const CACHE_DEFAULTS = {
  /** 64 MiB. */
  maxBytes: 64 * 1024 * 1024,
  /** One day. */
  ttlSeconds: 24 * 60 * 60,
} as const;

/** A cache store. */
export interface CacheStore {
  /** `memory` or `redis`, for `/healthz`. */
  readonly kind: "memory" | "redis";
  /** The value under `key`, or undefined (also when the store cannot answer). */
  get(key: string): Promise<string | undefined>;
  /** Keeps `value` under `key` (silently nothing when it cannot). */
  set(key: string, value: string): Promise<void>;
  /** Bytes held (memory), or written by this instance (Redis). */
  bytes(): number;
  /** Whether the store answers. */
  status(): "up" | "down";
}

const encoder = new TextEncoder();

/** UTF-8 length of `text`. */
function byteLength(text: string): number {
  return encoder.encode(text).length;
}

/** Options of {@linkcode createMemoryCacheStore}. */
export interface MemoryCacheOptions {
  /**
   * Most bytes of keys and values held; the least recently used entries go first.
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number;
}

/** An in-process LRU store bounded by bytes; an entry larger than the bound is not kept. */
export function createMemoryCacheStore(options: MemoryCacheOptions = {}): CacheStore {
  const maxBytes = options.maxBytes ?? CACHE_DEFAULTS.maxBytes;
  // A Map iterates in insertion order: re-inserting on use makes the first entry the oldest.
  const entries = new Map<string, { value: string; size: number }>();
  let bytes = 0;
  return {
    kind: "memory",
    get(key) {
      const entry = entries.get(key);
      if (!entry) return Promise.resolve(undefined);
      entries.delete(key);
      entries.set(key, entry);
      return Promise.resolve(entry.value);
    },
    set(key, value) {
      const size = byteLength(key) + byteLength(value);
      const old = entries.get(key);
      if (old) {
        entries.delete(key);
        bytes -= old.size;
      }
      if (size > maxBytes) return Promise.resolve();
      while (bytes + size > maxBytes) {
        const [oldest, entry] = entries.entries().next().value!;
        entries.delete(oldest);
        bytes -= entry.size;
      }
      entries.set(key, { value, size });
      bytes += size;
      return Promise.resolve();
    },
    bytes: () => bytes,
    status: () => "up",
  };
}

/** Options of {@linkcode createRedisCacheStore}. */
export interface RedisCacheOptions {
  /**
   * How long an entry is kept, in seconds.
   * @default 86400
   */
  ttlSeconds?: number;
  /**
   * Largest entry written, in bytes (a bigger one is not kept).
   * @default 67108864 (64 MiB)
   */
  maxEntryBytes?: number;
  /**
   * Key prefix.
   * @default "rune:cache:"
   */
  prefix?: string;
}

/** A store in Redis, shared by every instance using the same Redis. */
export function createRedisCacheStore(
  link: RedisLink,
  options: RedisCacheOptions = {},
): CacheStore {
  const ttl = options.ttlSeconds ?? CACHE_DEFAULTS.ttlSeconds;
  const maxEntry = options.maxEntryBytes ?? CACHE_DEFAULTS.maxBytes;
  const prefix = options.prefix ?? "rune:cache:";
  let written = 0;
  return {
    kind: "redis",
    async get(key) {
      try {
        const value = await link.run((c) => c.get(prefix + key));
        return typeof value === "string" ? value : undefined;
      } catch {
        return undefined;
      }
    },
    async set(key, value) {
      const size = byteLength(value);
      if (size > maxEntry) return;
      try {
        await link.run((c) => c.set(prefix + key, value, { EX: ttl }));
        written += size;
      } catch {
        // Without Redis the call still succeeds, only uncached.
      }
    },
    bytes: () => written,
    status: () => link.up() ? "up" : "down",
  };
}
