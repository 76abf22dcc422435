/**
 * Reuses server instances across stateless (2026-07-28) HTTP requests.
 *
 * The SDK's stateless entry asks the factory for an instance per request
 * and accepts any instance that is not serving another exchange (it checks
 * that the instance has no transport). Building one costs about a
 * millisecond of CPU and 25 KiB of garbage (every tool registered anew), more
 * than the rest of a `tools/call`, so finished instances wait here for the
 * next request of the same caller instead of being rebuilt.
 *
 * An instance is handed to one request at a time: it leaves the pool when
 * handed out and comes back only when its exchange closed (the SDK calls
 * its `onclose`). Instances that never connect (a refused request, a
 * `subscriptions/listen` probe) are simply not returned. Instances are
 * pooled per caller (identity and scopes), because an instance's tasks
 * belong to the caller it was built for. Everything else (connections,
 * 2025 sessions) gets a fresh instance, as before.
 *
 * @module
 */

import type { McpServer, McpServerFactory } from "@modelcontextprotocol/server";

/** The factory context the SDK passes (the parts the pool reads). */
type FactoryContext = Parameters<McpServerFactory>[0];

/** Options of {@linkcode pooledFactory}. */
export interface InstancePoolOptions {
  /**
   * Most idle instances kept, over all callers (about 25 KiB each); the
   * caller used least recently loses its instances first.
   * @default 32
   */
  maxIdle?: number;
}

/** A factory that pools, with its idle count for tests and metrics. */
export interface PooledFactory {
  /** The factory to hand to the SDK's serving entries. */
  factory: McpServerFactory;
  /** Instances waiting for a request now. */
  readonly idle: number;
  /** Instances built so far. */
  readonly built: number;
}

/** Whether `ctx` is a stateless 2026-07-28 HTTP request (the only kind pooled). */
function isStatelessRequest(ctx: FactoryContext): boolean {
  return ctx.era === "modern" && ctx.requestInfo !== undefined;
}

/** The caller an instance may be reused for: identity and granted scopes. */
function callerKey(ctx: FactoryContext): string {
  const auth = ctx.authInfo as
    | { clientId?: string; scopes?: string[]; extra?: Record<string, unknown> }
    | undefined;
  if (auth === undefined) return "";
  // Scoped instances register only the tools their scopes allow (see mcp/scopes.ts).
  return JSON.stringify([
    auth.clientId ?? "",
    [...(auth.scopes ?? [])].sort(),
    auth.extra?.scoped === true,
  ]);
}

/**
 * Wraps `create` so that stateless HTTP requests reuse finished instances
 * of the same caller; every other context gets `create`'s fresh instance.
 */
export function pooledFactory(
  create: (ctx: FactoryContext) => McpServer | Promise<McpServer>,
  options: InstancePoolOptions = {},
): PooledFactory {
  const maxIdle = options.maxIdle ?? 32;
  // Insertion order is recency: a key is re-inserted whenever it is used.
  const idle = new Map<string, McpServer[]>();
  const waiting = new WeakSet<McpServer>();
  let idleCount = 0;
  let built = 0;

  function release(key: string, instance: McpServer): void {
    // Once per exchange: a second close must not queue the instance twice.
    if (maxIdle <= 0 || waiting.has(instance)) return;
    waiting.add(instance);
    const list = idle.get(key) ?? [];
    idle.delete(key);
    list.push(instance);
    idle.set(key, list);
    idleCount++;
    while (idleCount > maxIdle) {
      const [oldestKey, oldest] = idle.entries().next().value!;
      waiting.delete(oldest.shift()!);
      idleCount--;
      if (oldest.length === 0) idle.delete(oldestKey);
    }
  }

  function take(key: string): McpServer | undefined {
    const list = idle.get(key);
    while (list !== undefined && list.length > 0) {
      const instance = list.pop()!;
      waiting.delete(instance);
      idleCount--;
      if (list.length === 0) idle.delete(key);
      // Never hand out an instance still bound to an exchange.
      if (instance.server.transport === undefined) return instance;
    }
    return undefined;
  }

  const factory: McpServerFactory = async (ctx) => {
    if (!isStatelessRequest(ctx)) {
      built++;
      return await create(ctx);
    }
    const key = callerKey(ctx);
    const reused = take(key);
    if (reused !== undefined) return reused;
    const instance = await create(ctx);
    built++;
    // The SDK chains its exchange teardown in front of this and restores it afterwards.
    instance.server.onclose = () => release(key, instance);
    return instance;
  };

  return {
    factory,
    get idle() {
      return idleCount;
    },
    get built() {
      return built;
    },
  };
}
