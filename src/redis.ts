/**
 * The daemon's link to Redis (`--redis URL`), shared by the response
 * cache, the rate limits and the task store, through npm `@redis/client`
 * (the official node-redis client; it needs no dependencies and no
 * environment access once its Redis Enterprise maintenance handshake is
 * off).
 *
 * Redis is a helper, never a requirement: the link connects in the
 * background and reconnects with backoff; while it is down, commands fail
 * at once (the offline queue is off) so callers fall back (no cache,
 * per-process limits) instead of waiting, and a command that gets no answer
 * fails after {@linkcode REDIS_COMMAND_TIMEOUT_MS}. Every change of state
 * is logged once.
 *
 * @module
 */

import { createClient } from "@redis/client";
import type { Logger } from "./log.ts";
import { RuneError } from "./errors.ts";

/** Longest wait for one Redis command before the caller goes on without it. */
export const REDIS_COMMAND_TIMEOUT_MS = 1_000;

/** Longest wait between reconnection attempts. */
const MAX_RECONNECT_MS = 5_000;

/** The client type of `@redis/client`. */
export type RedisClient = ReturnType<typeof createClient>;

/** Redis could not run a command (down, or too slow). */
export class RedisUnavailableError extends RuneError {}

/** The shared connection and its state. */
export interface RedisLink {
  /** `host:port` for messages (never the password). */
  readonly address: string;
  /** Whether commands can run now. */
  up(): boolean;
  /** Runs a command on the main connection, bounded by the command timeout. */
  run<T>(command: (client: RedisClient) => Promise<T>): Promise<T>;
  /** A second connection for pub/sub, made on first use. */
  subscriber(): Promise<RedisClient>;
  /** Calls `listener` on every change of state. */
  onChange(listener: (up: boolean) => void): void;
  /** Closes both connections. */
  close(): Promise<void>;
}

/** Options of {@linkcode connectRedis}. */
export interface RedisOptions {
  /** State changes are logged here. */
  log?: Logger;
  /**
   * Longest wait for one command, in ms.
   * @default 1000
   */
  commandTimeoutMs?: number;
}

/** Starts connecting to `url` in the background; never throws for an unreachable Redis. */
export function connectRedis(url: string, options: RedisOptions = {}): RedisLink {
  const log = options.log ?? (() => {});
  const timeoutMs = options.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS;
  const parsed = new URL(url);
  const address = `${parsed.hostname}:${parsed.port || "6379"}`;
  const listeners: ((up: boolean) => void)[] = [];
  let state: boolean | undefined;
  let closed = false;

  function make(): RedisClient {
    return createClient(
      {
        url,
        // Fail at once while disconnected: callers go on without Redis rather than wait.
        disableOfflineQueue: true,
        // Redis Enterprise's handshake reads environment variables Rune is not allowed.
        maintNotifications: "disabled",
        socket: {
          connectTimeout: 2_000,
          reconnectStrategy: (retries: number) => Math.min(MAX_RECONNECT_MS, 100 * 2 ** retries),
        },
      } as Parameters<typeof createClient>[0],
    );
  }

  function change(up: boolean, why?: string): void {
    if (state === up || closed) return;
    const first = state === undefined;
    state = up;
    if (up) log("info", `redis at ${address} is ${first ? "connected" : "back"}`);
    else {
      log(
        "warning",
        `redis at ${address} is ${first ? "not reachable" : "down"}${why ? ` (${why})` : ""}: ` +
          "serving without the shared cache, with per-process rate limits, until it is back",
      );
    }
    for (const listener of listeners) listener(up);
  }

  const client = make();
  client.on("ready", () => change(true));
  client.on("error", (error: Error) => change(false, error.message));
  client.on("end", () => change(false, "connection closed"));
  client.connect().catch((error: Error) => change(false, error.message));
  let sub: Promise<RedisClient> | undefined;

  return {
    address,
    up: () => state === true && client.isReady,
    async run<T>(command: (client: RedisClient) => Promise<T>): Promise<T> {
      if (!client.isReady) throw new RedisUnavailableError(`redis at ${address} is down`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        return await Promise.race([
          command(client),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () =>
                reject(
                  new RedisUnavailableError(
                    `redis at ${address} did not answer in ${timeoutMs} ms`,
                  ),
                ),
              timeoutMs,
            );
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    subscriber() {
      sub ??= (async () => {
        const s = client.duplicate();
        s.on("error", () => {});
        // Subscriptions must wait for the connection: its offline queue stays on.
        await s.connect();
        return s as RedisClient;
      })();
      return sub;
    },
    onChange(listener) {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      const s = await sub?.catch(() => undefined);
      for (const c of [s, client]) {
        if (!c) continue;
        if (c.isReady) await c.close().catch(() => c.destroy());
        else if (c.isOpen) c.destroy();
      }
    },
  };
}
