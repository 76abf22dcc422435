/**
 * One provider id over several hosts (`--ollama-host` repeated, `hosts` in
 * the configuration): a Provider that routes each call to one of its host
 * Providers and never knows their wire format.
 *
 * - **Model-aware routing.** Each host's models (and which are loaded) come
 *   from its `listModels`; a call goes to a host that has the model,
 *   preferring one where it is loaded, then the fewest calls in flight
 *   (round robin among equals). A host whose list is not known yet may be
 *   tried; a host known not to have the model never is.
 * - **Per-host concurrency.** At most `maxInFlightPerHost` calls run on a
 *   host (default 4, like `OLLAMA_NUM_PARALLEL`); further calls wait, in a
 *   bounded queue, for a slot on any host that has their model.
 * - **Health.** A background check per host (`ping`, then `listModels`)
 *   runs every `healthIntervalMs` while the host is up and with exponential
 *   backoff while it is down. The circuit opens (the host is "down" and
 *   gets no calls) at once when a host refuses connections, and after
 *   `failureThreshold` consecutive failed calls otherwise; the next good
 *   check closes it.
 * - **Failover.** A call whose host fails before the first chunk is
 *   retried on another host that has the model, transparently. After the
 *   first chunk it fails with {@linkcode MidStreamError}: retrying then would
 *   show the client the same text twice.
 *
 * @module
 */

import type { FleetEvents } from "../metrics/events.ts";
import { poolModelManagement } from "./pool_manage.ts";
import { NO_EVENTS } from "../metrics/events.ts";
import type { Logger } from "../log.ts";
import { isAbortError } from "../errors.ts";
import {
  ConnectionDroppedError,
  InvalidResponseError,
  ModelNotFoundError,
  OverloadedError,
  ProviderError,
  ProviderPermissionError,
  ProviderTimeoutError,
  ProviderUnreachableError,
  UpstreamError,
} from "./errors.ts";
import type {
  CallOptions,
  ChatRequest,
  Chunk,
  EmbedRequest,
  EmbedResult,
  GenerateRequest,
  ModelDetails,
  ModelInfo,
  Provider,
} from "./types.ts";

/** One host of a pool. */
export interface PoolHost {
  /** `host:port`, as `/healthz`, `/metrics` and `hosts` arrays show it. */
  address: string;
  /** The provider that talks to this host. */
  provider: Provider;
}

/** Defaults of {@linkcode PoolOptions}, in one place. */
export const POOL_DEFAULTS = {
  maxInFlightPerHost: 4,
  maxQueued: 1024,
  healthIntervalMs: 10_000,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  failureThreshold: 3,
  firstCheckWaitMs: 2_000,
} as const;

/** Options of {@linkcode createPool}. */
export interface PoolOptions {
  /**
   * Most calls running on one host at once.
   * @default 4
   */
  maxInFlightPerHost?: number;
  /**
   * Most calls waiting for a free host; more fail at once as overloaded.
   * @default 1024
   */
  maxQueued?: number;
  /**
   * Time between health checks of a host that is up, in ms.
   * @default 10000
   */
  healthIntervalMs?: number;
  /**
   * First wait before re-checking a host that is down, doubled each time, in ms.
   * @default 500
   */
  backoffBaseMs?: number;
  /**
   * Longest wait between checks of a host that is down, in ms.
   * @default 30000
   */
  backoffMaxMs?: number;
  /**
   * Consecutive failed calls (timeouts, dropped replies, 5xx) that open a host's circuit;
   * a refused connection opens it at once.
   * @default 3
   */
  failureThreshold?: number;
  /**
   * How long a call waits for the first health check of hosts not checked yet, in ms.
   * @default 2000
   */
  firstCheckWaitMs?: number;
  /**
   * The name under which two listings mean the same model (Ollama: `llama3.2` is
   * `llama3.2:latest`). Default: the name as it is.
   */
  modelKey?: (name: string) => string;
  /** Failovers are reported here. */
  events?: FleetEvents;
  /** State changes of hosts are logged here. */
  log?: Logger;
  /** Called whenever a host goes up or down (tests, `/healthz` caches). */
  onHostChange?: (state: HostState) => void;
}

/** What `/healthz` shows of one host. */
export interface HostState {
  /** `host:port`. */
  host: string;
  /** `up`: routed to; `down`: circuit open; `unknown`: not checked yet. */
  state: "up" | "down" | "unknown";
  /** Calls running on it now. */
  inFlight: number;
  /** Models it has, when known. */
  models?: number;
  /** Models loaded on it, when known. */
  loaded?: string[];
  /** Why it is down. */
  error?: string;
}

/** A Provider over several hosts, with the controls the daemon needs. */
export interface PoolProvider extends Provider {
  /** Every host's state. */
  hosts(): HostState[];
  /** Checks every host now; resolves when all checks have settled. */
  refresh(signal?: AbortSignal): Promise<void>;
  /** Stops the background checks. */
  close(): void;
}

/**
 * A call failed after its first chunk: it is not retried elsewhere (the
 * client already has part of the answer).
 */
export class MidStreamError extends ProviderError {}

/** Every host is down, or no host has room in the queue. */
export class PoolUnavailableError extends ProviderUnreachableError {}

/** Every host has its maximum in flight and the queue is full. */
export class PoolBusyError extends OverloadedError {
  /** A local refusal, not the upstream's: not counted as an upstream error. */
  readonly local = true;
}

interface Host {
  address: string;
  provider: Provider;
  /** undefined until the first check. */
  up: boolean | undefined;
  failures: number;
  inFlight: number;
  /** Model keys it has; undefined while unknown. */
  models: Set<string> | undefined;
  loaded: Set<string>;
  error?: string;
  backoffMs: number;
  timer?: ReturnType<typeof setTimeout>;
  checking?: Promise<void>;
}

/** Creates a pool over `hosts` (at least one); health checks start at once. */
export function createPool(hosts: PoolHost[], options: PoolOptions = {}): PoolProvider {
  if (hosts.length === 0) throw new Error("a pool needs at least one host");
  const first = hosts[0].provider;
  const id = first.id;
  const max = options.maxInFlightPerHost ?? POOL_DEFAULTS.maxInFlightPerHost;
  const maxQueued = options.maxQueued ?? POOL_DEFAULTS.maxQueued;
  const healthMs = options.healthIntervalMs ?? POOL_DEFAULTS.healthIntervalMs;
  const backoffBase = options.backoffBaseMs ?? POOL_DEFAULTS.backoffBaseMs;
  const backoffMax = options.backoffMaxMs ?? POOL_DEFAULTS.backoffMaxMs;
  const threshold = options.failureThreshold ?? POOL_DEFAULTS.failureThreshold;
  const firstWait = options.firstCheckWaitMs ?? POOL_DEFAULTS.firstCheckWaitMs;
  const key = options.modelKey ?? ((name: string) => name);
  const events = options.events ?? NO_EVENTS;
  const log = options.log ?? (() => {});
  const closing = new AbortController();
  let turn = 0;
  const waiters: (() => void)[] = [];

  const all: Host[] = hosts.map((h) => ({
    address: h.address,
    provider: h.provider,
    up: undefined,
    failures: 0,
    inFlight: 0,
    models: undefined,
    loaded: new Set(),
    backoffMs: backoffBase,
  }));

  // Pulls and deletes go to every host (see pool_manage.ts): only when all of them can.
  const managed = all.flatMap((h) =>
    h.provider.modelManagement
      ? [{
        address: h.address,
        management: h.provider.modelManagement,
        changed: (model: string, installed: boolean) => {
          if (installed) h.models?.add(key(model));
          else {
            h.models?.delete(key(model));
            h.loaded.delete(key(model));
          }
        },
      }]
      : []
  );

  function stateOf(host: Host): HostState {
    return {
      host: host.address,
      state: host.up === undefined ? "unknown" : host.up ? "up" : "down",
      inFlight: host.inFlight,
      ...(host.models && { models: host.models.size, loaded: [...host.loaded] }),
      ...(host.up === false && host.error && { error: host.error }),
    };
  }

  function setUp(host: Host, state: { up: boolean; why?: string }): void {
    const { up, why } = state;
    const was = host.up;
    host.up = up;
    if (up) {
      host.failures = 0;
      host.error = undefined;
      host.backoffMs = backoffBase;
    } else if (why) host.error = why;
    if (was === up) return;
    if (up) {
      if (was === false) {
        log("info", `${id} host ${host.address} answers again: routing calls to it`);
      }
      wake();
    } else {
      log(
        "warning",
        `${id} host ${host.address} is down (${host.error ?? "no answer"}): routing calls to the ` +
          "other hosts until a health check succeeds",
      );
    }
    options.onHostChange?.(stateOf(host));
  }

  /** One health check: reachable (ping), then its models (listModels). */
  function check(host: Host): Promise<void> {
    host.checking ??= (async () => {
      const signal = closing.signal;
      try {
        await host.provider.ping({ signal });
        const models = await host.provider.listModels({ signal });
        host.models = new Set(models.map((m) => key(m.name)));
        host.loaded = new Set(models.filter((m) => m.loaded).map((m) => key(m.name)));
        setUp(host, { up: true });
      } catch (error) {
        if (signal.aborted) return;
        setUp(host, { up: false, why: (error as Error).message });
      } finally {
        host.checking = undefined;
      }
      schedule(host);
    })();
    return host.checking;
  }

  function schedule(host: Host, delay?: number): void {
    if (closing.signal.aborted) return;
    clearTimeout(host.timer);
    let wait = delay;
    if (wait === undefined) {
      if (host.up) wait = healthMs;
      else {
        wait = host.backoffMs;
        host.backoffMs = Math.min(backoffMax, host.backoffMs * 2);
      }
    }
    const timer = setTimeout(() => void check(host), wait);
    // The checks alone must not keep a CLI command running.
    Deno.unrefTimer(timer);
    host.timer = timer;
  }

  for (const host of all) void check(host);

  function wake(): void {
    for (const resolve of waiters.splice(0)) resolve();
  }

  /** Hosts that may serve `model`, best first (see the module doc); `tried` are left out. */
  function candidates(model: string, tried: ReadonlySet<Host>): Host[] {
    const wanted = key(model);
    const scored: [Host, number][] = [];
    for (const host of all) {
      if (tried.has(host) || host.up === false) continue;
      const score = host.models === undefined
        ? 1
        : !host.models.has(wanted)
        ? 0
        : host.loaded.has(wanted)
        ? 3
        : 2;
      if (score > 0) scored.push([host, score]);
    }
    const start = turn++;
    const order = (h: Host) => (all.indexOf(h) - start + all.length * 2) % all.length;
    scored.sort(([a, sa], [b, sb]) => sb - sa || a.inFlight - b.inFlight || order(a) - order(b));
    return scored.map(([host]) => host);
  }

  /** Waits for hosts never checked (bounded), so a first call can route by model. */
  async function firstChecks(signal?: AbortSignal): Promise<void> {
    const pending = all.filter((h) => h.up === undefined).map((h) => h.checking ?? check(h));
    if (pending.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await untilAborted(
        Promise.race([
          Promise.all(pending),
          new Promise((resolve) => (timer = setTimeout(resolve, firstWait))),
        ]),
        signal,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Why no host can take a call for `model`. */
  async function noHost(model: string, signal?: AbortSignal): Promise<Error> {
    const down = all.filter((h) => h.up === false);
    if (down.length === all.length) {
      return new PoolUnavailableError(
        "other",
        `Every host of ${first.label} (provider "${id}") is down: ${
          down.map((h) => `${h.address} (${h.error ?? "no answer"})`).join("; ")
        }. Rune checks them in the background and routes calls again as soon as one answers.`,
      );
    }
    const wanted = key(model);
    const away = down.filter((h) => h.models?.has(wanted));
    if (away.length > 0) {
      return new PoolUnavailableError(
        "other",
        `The hosts of ${first.label} that have "${model}" are down: ${
          away.map((h) => `${h.address} (${h.error ?? "no answer"})`).join("; ")
        }. Rune checks them in the background and routes calls again as soon as one answers.`,
      );
    }
    // The lists may be stale (a model just pulled): look again before saying it is nowhere.
    await Promise.all(all.filter((h) => h.up !== false).map((h) => check(h)));
    signal?.throwIfAborted();
    return new ModelNotFoundError(
      model,
      `Model "${model}" is on none of the hosts of ${first.label} (provider "${id}") that ` +
        `answer (${
          all.filter((h) => h.up !== false).map((h) => h.address).join(", ")
        }): install it on one of them, or pick one from the model list.`,
    );
  }

  /** A host for `model` with a free slot (its slot taken), waiting in the queue when all are busy. */
  async function acquire(
    model: string,
    tried: ReadonlySet<Host>,
    signal?: AbortSignal,
  ): Promise<Host | undefined> {
    await firstChecks(signal);
    for (let looked = false;;) {
      const hosts = candidates(model, tried);
      if (hosts.length === 0) {
        if (tried.size > 0) return undefined;
        if (looked) throw await noHost(model, signal);
        looked = true;
        // Lists may be stale; noHost refreshes them, then one more look.
        const reason = await noHost(model, signal);
        if (candidates(model, tried).length === 0) throw reason;
        continue;
      }
      const free = hosts.find((h) => h.inFlight < max);
      if (free) {
        free.inFlight++;
        return free;
      }
      if (waiters.length >= maxQueued) {
        throw new PoolBusyError(
          503,
          `Every host of ${first.label} (provider "${id}") that has "${model}" runs ${max} calls ` +
            `and ${maxQueued} more are waiting: retry in a moment, or add hosts.`,
        );
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const at = waiters.indexOf(done);
          if (at >= 0) waiters.splice(at, 1);
          reject(signal!.reason);
        };
        const done = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        if (signal?.aborted) return reject(signal.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        waiters.push(done);
      });
    }
  }

  function release(host: Host): void {
    host.inFlight--;
    wake();
  }

  function succeeded(host: Host, model: string): void {
    host.failures = 0;
    // The backend keeps a model loaded after a call: route the next one there.
    const name = key(model);
    host.loaded.add(name);
    host.models?.add(name);
  }

  function failed(host: Host, failure: { error: unknown; model: string }): void {
    const { error, model } = failure;
    if (error instanceof ModelNotFoundError) {
      host.models?.delete(key(model));
      host.loaded.delete(key(model));
      return;
    }
    if (!hurtsHealth(error)) return;
    host.failures++;
    host.error = (error as Error).message;
    if (error instanceof ProviderUnreachableError || host.failures >= threshold) {
      setUp(host, { up: false, why: (error as Error).message });
      schedule(host, host.backoffMs);
    }
  }

  function failingOver(last: { host: Host; error: unknown }, to: Host): void {
    events.failover(id);
    log(
      "info",
      `${id}: ${last.host.address} failed before the first token (${
        (last.error as Error).message
      }); retrying on ${to.address}`,
    );
  }

  async function* complete(
    call: (provider: Provider) => AsyncIterable<Chunk>,
    options: { model: string; signal?: AbortSignal },
  ): AsyncGenerator<Chunk> {
    const { model, signal } = options;
    const tried = new Set<Host>();
    let last: { host: Host; error: unknown } | undefined;
    for (;;) {
      const host = await acquire(model, tried, signal);
      if (!host) throw last!.error;
      if (last) failingOver(last, host);
      tried.add(host);
      let started = false;
      const iterator = call(host.provider)[Symbol.asyncIterator]();
      let finished = false;
      try {
        for (;;) {
          let next: IteratorResult<Chunk>;
          try {
            next = await iterator.next();
          } catch (error) {
            finished = true;
            if (isAbortError(error) || signal?.aborted) throw error;
            failed(host, { error, model });
            if (started) {
              throw new MidStreamError(
                `${(error as Error).message} The answer had already started, so Rune did not ` +
                  "retry it on another host (the text would repeat): call again.",
                { cause: error },
              );
            }
            if (!failsOver(error)) throw error;
            last = { host, error };
            break;
          }
          if (next.done) {
            finished = true;
            return;
          }
          started = true;
          if (next.value.type === "done") {
            finished = true;
            succeeded(host, model);
          }
          yield next.value;
          if (finished) return;
        }
      } finally {
        release(host);
        if (!finished) await iterator.return?.(undefined);
      }
    }
  }

  async function embed(request: EmbedRequest, options: CallOptions = {}): Promise<EmbedResult> {
    const tried = new Set<Host>();
    let last: { host: Host; error: unknown } | undefined;
    for (;;) {
      const host = await acquire(request.model, tried, options.signal);
      if (!host) throw last!.error;
      if (last) failingOver(last, host);
      tried.add(host);
      try {
        const result = await host.provider.embed(request, options);
        succeeded(host, request.model);
        return result;
      } catch (error) {
        if (isAbortError(error) || options.signal?.aborted) throw error;
        failed(host, { error, model: request.model });
        if (!failsOver(error)) throw error;
        last = { host, error };
      } finally {
        release(host);
      }
    }
  }

  async function listModels(options: CallOptions = {}): Promise<ModelInfo[]> {
    const listed = await Promise.allSettled(
      all.map((h) =>
        h.up === false
          ? Promise.reject(
            new PoolUnavailableError("other", `${h.address} is down: ${h.error ?? "no answer"}`),
          )
          : h.provider.listModels(options)
      ),
    );
    const merged = new Map<string, ModelInfo>();
    let firstError: unknown;
    listed.forEach((outcome, i) => {
      const host = all[i];
      if (outcome.status === "rejected") {
        firstError ??= outcome.reason;
        return;
      }
      host.models = new Set(outcome.value.map((m) => key(m.name)));
      host.loaded = new Set(outcome.value.filter((m) => m.loaded).map((m) => key(m.name)));
      for (const model of outcome.value) {
        const name = key(model.name);
        const seen = merged.get(name);
        if (!seen) merged.set(name, { ...model, hosts: [host.address] });
        else {
          seen.hosts!.push(host.address);
          if (!seen.loaded && model.loaded) seen.loaded = model.loaded;
        }
      }
    });
    if (merged.size === 0 && firstError !== undefined) {
      options.signal?.throwIfAborted();
      throw firstError;
    }
    return [...merged.values()];
  }

  async function showModel(model: string, options: CallOptions = {}): Promise<ModelDetails> {
    await firstChecks(options.signal);
    const hosts = candidates(model, new Set());
    if (hosts.length === 0) throw await noHost(model, options.signal);
    let error: unknown;
    for (const host of hosts) {
      try {
        return await host.provider.showModel(model, options);
      } catch (caught) {
        if (isAbortError(caught) || options.signal?.aborted || !failsOver(caught)) throw caught;
        error ??= caught;
      }
    }
    throw error;
  }

  async function ping(options: CallOptions = {}): Promise<string> {
    let error: unknown;
    for (const host of [...all].sort((a, b) => Number(b.up !== false) - Number(a.up !== false))) {
      try {
        return await host.provider.ping(options);
      } catch (caught) {
        if (options.signal?.aborted) throw caught;
        error ??= caught;
      }
    }
    throw error;
  }

  return {
    id,
    type: first.type,
    label: first.label,
    address: all.map((h) => h.address).join(", "),
    ...(first.credentialSource && { credentialSource: first.credentialSource }),
    capabilities: () => first.capabilities(),
    listModels,
    showModel,
    generate: (request: GenerateRequest, options: CallOptions = {}) =>
      complete((p) => p.generate(request, options), {
        model: request.model,
        signal: options.signal,
      }),
    chat: (request: ChatRequest, options: CallOptions = {}) =>
      complete((p) => p.chat(request, options), { model: request.model, signal: options.signal }),
    embed,
    ping,
    ...(managed.length === all.length && { modelManagement: poolModelManagement(managed) }),
    hosts: () => all.map(stateOf),
    refresh: async (signal?: AbortSignal) => {
      await untilAborted(Promise.all(all.map((h) => check(h))), signal);
    },
    close: () => {
      closing.abort();
      for (const host of all) clearTimeout(host.timer);
    },
  };
}

/** Failures that another host may not have: worth a failover before the first chunk. */
export function failsOver(error: unknown): boolean {
  if (error instanceof PoolBusyError) return false;
  if (error instanceof UpstreamError) {
    return error.status === 429 || error.status >= 500;
  }
  if (error instanceof ProviderTimeoutError) {
    return error.phase === "connect" || error.phase === "first-token";
  }
  return error instanceof ProviderUnreachableError || error instanceof ProviderPermissionError ||
    error instanceof ConnectionDroppedError || error instanceof InvalidResponseError ||
    error instanceof ModelNotFoundError;
}

/** Failures that say the host itself is unwell (not busy, not a bad request). */
function hurtsHealth(error: unknown): boolean {
  if (error instanceof UpstreamError) return error.status >= 500 && error.status !== 503;
  return error instanceof ProviderUnreachableError || error instanceof ProviderTimeoutError ||
    error instanceof ConnectionDroppedError || error instanceof InvalidResponseError;
}

/** Settles like `promise`, or rejects with the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
