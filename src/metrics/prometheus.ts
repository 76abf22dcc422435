/**
 * The metrics behind `GET /metrics`, in Prometheus text format, kept with
 * npm `prom-client` (it runs under Deno; Rune uses its registry, counters,
 * gauges and histograms, and not its Node process metrics).
 *
 * Series names are a contract (README "Metrics"). Label values come from
 * configuration (providers, hosts, tools) except the model, which clients
 * choose: at most {@linkcode MAX_MODEL_LABELS} distinct models get their own
 * series, later ones are counted under `model="other"`, so no client can
 * grow the daemon's memory by inventing model names.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { CallEnd, CallLabels, FleetEvents, HostGauge, LimitScope } from "./events.ts";

/** Distinct `provider/model` pairs that get their own series; later ones are `other`. */
export const MAX_MODEL_LABELS = 256;

/** Distinct client identities that get their own series; later ones are `other`. */
export const MAX_CLIENT_LABELS = 256;

/** Seconds buckets of call latency and time to first token (a cache hit to a long generation). */
const SECONDS_BUCKETS = [
  0.001,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
];

/** Tokens-per-second buckets. */
const RATE_BUCKETS = [1, 5, 10, 20, 40, 80, 160, 320, 640, 1280];

/** Where the gauges read their values at each scrape. */
export interface GaugeSources {
  /** Open sessions by transport (`stdio`, `websocket`, `http`). */
  sessions?: () => Record<string, number>;
  /** Every upstream host of every provider. */
  hosts?: () => HostGauge[];
  /** Bytes held by the response cache. */
  cacheBytes?: () => number;
}

/** The Prometheus metrics: fleet events in, text format out. */
export interface PrometheusMetrics extends FleetEvents {
  /** Adds gauge sources (read at each scrape). */
  watch(sources: GaugeSources): void;
  /** The text exposition of every series. */
  render(): Promise<string>;
  /** The `content-type` of {@linkcode render}'s text. */
  readonly contentType: string;
}

/** Creates the metrics with their own registry (never prom-client's global one). */
export function createPrometheusMetrics(): PrometheusMetrics {
  const registry = new Registry();
  const sources: GaugeSources[] = [];
  const models = new Set<string>();
  const registers = [registry];

  /** The model label, bounded (see the module doc). */
  function model(provider: string, name: string): string {
    const key = `${provider}/${name}`;
    if (models.has(key)) return name;
    if (models.size >= MAX_MODEL_LABELS) return "other";
    models.add(key);
    return name;
  }

  const clients = new Set<string>();
  /** The client label, bounded like the model label. */
  function client(id: string): string {
    if (clients.has(id)) return id;
    if (clients.size >= MAX_CLIENT_LABELS) return "other";
    clients.add(id);
    return id;
  }

  const clientCalls = new Counter({
    name: "rune_client_tool_calls_total",
    help: "MCP tool calls by client identity (token:N, oauth:<hash>, anonymous) and outcome.",
    labelNames: ["client", "outcome"],
    registers,
  });
  const calls = new Counter({
    name: "rune_tool_calls_total",
    help:
      "MCP tool calls by tool, provider, model and outcome (ok, error, cancelled, rate_limited).",
    labelNames: ["tool", "provider", "model", "outcome"],
    registers,
  });
  const duration = new Histogram({
    name: "rune_tool_call_duration_seconds",
    help: "Duration of MCP tool calls, from arrival to result.",
    labelNames: ["tool", "provider", "model", "outcome"],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const ttft = new Histogram({
    name: "rune_time_to_first_token_seconds",
    help: "Time from a tool call's arrival to its first streamed token.",
    labelNames: ["tool", "provider", "model", "outcome"],
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const tokens = new Counter({
    name: "rune_tokens_total",
    help: "Tokens consumed (direction=in) and produced (direction=out) by upstream calls.",
    labelNames: ["provider", "model", "direction"],
    registers,
  });
  const speed = new Histogram({
    name: "rune_tokens_per_second",
    help: "Generation speed of upstream calls, in tokens per second.",
    labelNames: ["provider", "model"],
    buckets: RATE_BUCKETS,
    registers,
  });
  const upstreamErrors = new Counter({
    name: "rune_upstream_errors_total",
    help: "Failed upstream calls by provider and kind.",
    labelNames: ["provider", "kind"],
    registers,
  });
  const retries = new Counter({
    name: "rune_retries_total",
    help: "Requests a provider retried before the first token.",
    labelNames: ["provider"],
    registers,
  });
  const failovers = new Counter({
    name: "rune_failovers_total",
    help: "Calls moved to another host of the same provider before the first token.",
    labelNames: ["provider"],
    registers,
  });
  const fallbacks = new Counter({
    name: "rune_fallbacks_total",
    help:
      "Calls answered by a configured fallback model (labelled with the first model's provider).",
    labelNames: ["provider"],
    registers,
  });
  const hits = new Counter({
    name: "rune_cache_hits_total",
    help: "Cacheable calls answered from the cache.",
    registers,
  });
  const misses = new Counter({
    name: "rune_cache_misses_total",
    help: "Cacheable calls not found in the cache.",
    registers,
  });
  const limited = new Counter({
    name: "rune_rate_limited_total",
    help: "Calls refused by a rate limit, by scope (client or provider).",
    labelNames: ["scope"],
    registers,
  });
  new Gauge({
    name: "rune_cache_bytes",
    help: "Bytes held by the response cache (with Redis: bytes this instance wrote to it).",
    registers,
    collect() {
      let bytes = 0;
      for (const source of sources) bytes += source.cacheBytes?.() ?? 0;
      this.set(bytes);
    },
  });
  new Gauge({
    name: "rune_sessions",
    help: "Open MCP sessions by transport.",
    labelNames: ["transport"],
    registers,
    collect() {
      for (const source of sources) {
        for (const [transport, n] of Object.entries(source.sessions?.() ?? {})) {
          this.set({ transport }, n);
        }
      }
    },
  });
  new Gauge({
    name: "rune_upstream_host_up",
    help: "Whether Rune routes calls to an upstream host (1) or not (0).",
    labelNames: ["provider", "host"],
    registers,
    collect() {
      for (const source of sources) {
        for (const h of source.hosts?.() ?? []) {
          this.set({ provider: h.provider, host: h.host }, h.up ? 1 : 0);
        }
      }
    },
  });
  new Gauge({
    name: "rune_upstream_in_flight",
    help: "Calls running on an upstream host now.",
    labelNames: ["provider", "host"],
    registers,
    collect() {
      for (const source of sources) {
        for (const h of source.hosts?.() ?? []) {
          this.set({ provider: h.provider, host: h.host }, h.inFlight);
        }
      }
    },
  });

  return {
    contentType: registry.contentType,
    watch(source) {
      sources.push(source);
    },
    render: () => registry.metrics(),
    toolCall(labels: CallLabels, end: CallEnd) {
      const values = {
        tool: labels.tool,
        provider: labels.provider,
        model: labels.model === "" ? "" : model(labels.provider, labels.model),
        outcome: end.outcome,
      };
      calls.inc(values);
      clientCalls.inc({ client: client(labels.client ?? "anonymous"), outcome: end.outcome });
      duration.observe(values, end.seconds);
      if (end.ttftSeconds !== undefined) ttft.observe(values, end.ttftSeconds);
    },
    tokens(labels, counts) {
      const { provider } = labels;
      const m = model(provider, labels.model);
      if (counts.input > 0) tokens.inc({ provider, model: m, direction: "in" }, counts.input);
      if (counts.output > 0) tokens.inc({ provider, model: m, direction: "out" }, counts.output);
    },
    tokensPerSecond(labels, value) {
      if (Number.isFinite(value) && value > 0) {
        speed.observe(
          { provider: labels.provider, model: model(labels.provider, labels.model) },
          value,
        );
      }
    },
    upstreamError: (provider, kind) => upstreamErrors.inc({ provider, kind }),
    retry: (provider) => retries.inc({ provider }),
    failover: (provider) => failovers.inc({ provider }),
    fallback: (provider) => fallbacks.inc({ provider }),
    cacheHit: () => hits.inc(),
    cacheMiss: () => misses.inc(),
    rateLimited: (scope: LimitScope) => limited.inc({ scope }),
  };
}
