/**
 * Turns the benchmark's measurements into `bench/RESULTS.md`: the machine
 * and its load, the setup, tables of every figure next to its target
 * (✅/❌, computed here from the measured values): the original targets,
 * then one table per issue (protocol eras, cloud providers, the floors),
 * the side-by-side comparison with the peer, and the details behind them.
 *
 * @module
 */

import type { LoadReport } from "./procs.ts";
import type { Era } from "./rpc.ts";
import type {
  Capacity,
  Cloud,
  CpuPerCall,
  DisconnectStorm,
  Relay,
  Stalled,
  Throughput,
  ToolNames,
} from "./scenarios.ts";
import { bytes, count, ms, type Summary } from "./stats.ts";

/** Relay and cancel through one cloud provider's SSE. */
export interface ProviderStreaming {
  /** As-fast-as-possible relay, the median of three runs. */
  relay: Relay;
  /** Tokens per second of each measured run, ascending. */
  relayRuns: number[];
  /** Cancel to upstream closed. */
  cancel: { latency: Summary; missed: number };
}

/** Everything one run measured. */
export interface Results {
  /** Lines describing the machine. */
  machine: string[];
  /** How the peer was run. */
  peerLabel: string;
  /** The peer's tool names. */
  peerTools: ToolNames;
  /** Idle RSS readings, bytes. */
  idleRss: {
    /** Rune on stdio after `initialize`. */
    runeStdio: number;
    /** Rune on stdio after `server/discover` (2026-07-28). */
    runeStdioModern: number;
    /** The network daemon once the latency section's sessions were opened. */
    runeNetwork: number;
    /** A fresh network daemon, no session yet. */
    runeNetworkFresh?: number;
    /** `deno eval` with an idle timer. */
    bareDeno: number;
    /** The peer after `initialize`. */
    peer: number;
  };
  /**
   * Generate round trips by client: `direct-stream`, `direct-nostream`,
   * `stdio`, `ws`, `http`, `noop` (legacy era) and the same with ` 2026`,
   * `noop deno-stdio`, `peer`.
   */
  overhead: Record<string, Summary>;
  /** Cloud generate round trips: `<provider> direct` and `<provider> stdio`. */
  providerOverhead: Record<string, Summary>;
  /** Relay and cancel through each cloud provider's SSE. */
  providerStreaming: Record<Cloud, ProviderStreaming>;
  /** CPU per sequential call: `floor` (one streamed fetch), `stdio`, `ws`, `... 2026`. */
  sequentialCpu: Record<string, CpuPerCall>;
  /** list_models round trips by client. */
  list: Record<string, Summary>;
  /** Throughput runs: the median run of each era and session count. */
  throughput: Throughput[];
  /** Idle session capacity. */
  capacity: Capacity;
  /**
   * The same without the header guard (`--header-timeout 0`), which costs
   * each connection two loopback sockets: what the guard costs.
   */
  capacityUnguarded?: Capacity;
  /** Clock offset to the emitter and the round trip it was measured with. */
  clock: { offset: number; rtt: number };
  /** As-fast-as-possible relay. */
  relayFast: Relay;
  /** Tokens per second of each measured fast run, ascending. */
  relayFastRuns: number[];
  /** Paced relay. */
  relayPaced: Relay;
  /** p99 delay of each paced run, ascending. */
  relayPacedP99s: number[];
  /** Tokens per second of the paced relay. */
  pacedRate: number;
  /** Cancel to upstream close. */
  cancel: { latency: Summary; missed: number };
  /**
   * Cancel to upstream close in the 2026-07-28 era: `notifications/cancelled`
   * over WebSocket, and closing the request's stream over Streamable HTTP.
   */
  modernCancel: Record<"ws 2026" | "http 2026", { latency: Summary; missed: number }>;
  /** WebSocket dropped mid-stream to upstream close. */
  disconnect: { latency: Summary; missed: number };
  /** Waves of clients that drop a streaming call. */
  disconnectStorm: DisconnectStorm;
  /** Client that stops reading, at the default high-water mark. */
  stalled: Stalled;
  /** The same at each high-water mark tried. */
  stalledRuns: Stalled[];
  /** Cold starts. */
  coldStart: {
    rune: { median: number; summary: Summary };
    runeModern: { median: number; summary: Summary };
    peer: { median: number; summary: Summary };
  };
  /** calls/s of each throughput run by era and session count, ascending. */
  throughputRuns: Record<Era, Record<number, number[]>>;
  /** 1-minute load average before and after the run. */
  loadAverage: [number, number];
  /** The machine's load during the run, and the CPU the run's own processes used. */
  load: LoadReport & { ownCpuMs: number };
  /** Wall time of the run, seconds. */
  durationSeconds: number;
}

/**
 * How much RSS a second wave of disconnecting clients may leave beyond the
 * first: V8 returns memory lazily, so this is generous; a leak of what the
 * wave's sessions held would exceed it.
 */
export const STORM_ALLOWANCE = 64 * 1024 * 1024;

/** Memory a non-reading client may cost beyond the high-water mark. */
export const STALLED_ALLOWANCE = 8 * 1024 * 1024;

/**
 * 100-session throughput before the move to SDK v2, as the issues quote it
 * (issue 16's table; issue 9 asks for no more than 5 % below it).
 */
export const ISSUE_THROUGHPUT = 5_210;
/** 100-session throughput in the last full `bench/RESULTS.md` before SDK v2 (2026-11-25). */
export const RESULTS_THROUGHPUT = 5_852;
/** The share of the earlier throughput issue 9 accepts. */
export const THROUGHPUT_SHARE = 0.95;

/** Issue 16's goals. */
export const GOALS = {
  /** stdio overhead p50, ms. */
  stdioOverhead: 0.5,
  /** Daemon CPU per sequential call over stdio, ms. */
  stdioCpu: 0.4,
  /** Daemon CPU per sequential call over WebSocket, ms. */
  wsCpu: 0.35,
  /** Daemon CPU per call at 100 sessions, ms. */
  cpuAt100: 0.1,
  /** stdio idle RSS after initialize, bytes (50 MiB). */
  stdioIdleRss: 50 * 2 ** 20,
  /** Idle sessions to hold. */
  sessions: 10_000,
  /** RSS per idle session, bytes (32 KiB). */
  perSession: 32 * 1024,
  /** RSS growth with the idle sessions open, bytes (320 MiB). */
  sessionsGrowth: 320 * 2 ** 20,
} as const;

/** Issue 9's and the original targets. */
export const TARGETS = {
  /** Overhead p50 over stdio and WebSocket, ms (issue 9; WebSocket was 2 ms before). */
  overhead: 1,
  /** Cold start, ms. */
  coldStart: 300,
  /** Idle RSS, bytes (60 MB). */
  idleRss: 60e6,
  /** Relay rate, tokens/s. */
  relay: 50_000,
  /** Cancel to upstream closed, ms. */
  cancel: 50,
} as const;

function mark(ok: boolean): string {
  return ok ? "✅" : "❌";
}

function diff(a: Summary, b: Summary, key: "p50" | "p99"): number {
  return a[key] - b[key];
}

function mb(value: number): string {
  if (Math.abs(value) < 2 ** 20) return `${(value / 1024).toFixed(0)} KiB`;
  return `${(value / 2 ** 20).toFixed(1)} MiB`;
}

type Row = [string, string, string, string];

/** Overhead of client `name` over the direct streamed request: p50 and p99. */
function overheadOf(r: Results, name: string): [number, number] {
  const base = r.overhead["direct-stream"];
  const o = r.overhead[name];
  return o && base ? [diff(o, base, "p50"), diff(o, base, "p99")] : [NaN, NaN];
}

function pair([p50, p99]: [number, number]): string {
  return `${ms(p50)} / ${ms(p99)}`;
}

/** The median throughput run of `era` at `sessions`. */
function throughputOf(r: Results, era: Era, sessions: number): Throughput | undefined {
  return r.throughput.find((t) => t.era === era && t.sessions === sessions);
}

const ERA_LABEL: Readonly<Record<Era, string>> = { legacy: "2025", modern: "2026-07-28" };

/** The lowest 100-session throughput issue 9 accepts, calls/s. */
const THROUGHPUT_FLOOR = ISSUE_THROUGHPUT * THROUGHPUT_SHARE;

function cancelText(c: { latency: Summary; missed: number }): string {
  return `${ms(c.latency.p50)} / ${ms(c.latency.p99)}` +
    (c.missed ? ` (${c.missed} never closed)` : "");
}

function cancelOk(c: { latency: Summary; missed: number }): boolean {
  return c.latency.n > 0 && c.latency.p99 < TARGETS.cancel && c.missed === 0;
}

/** The targets the benchmark had before issues 9, 10 and 16 (legacy era, Ollama). */
function targetRows(r: Results): Row[] {
  const t100 = throughputOf(r, "legacy", 100);
  const tp = (n: number) => throughputOf(r, "legacy", n);
  const stalledCost = r.stalled.rssPeak - r.stalled.rssBefore;
  const perSession = (r.capacity.rssAfter - r.capacity.rssBefore) / Math.max(1, r.capacity.held);
  const idleNet = r.idleRss.runeNetworkFresh ?? r.idleRss.runeNetwork;
  return [
    [
      "list_models, stdio (p50 / p99)",
      `${ms(r.list.stdio.p50)} / ${ms(r.list.stdio.p99)}`,
      "p50 ≤ 5 ms",
      mark(r.list.stdio.p50 <= 5),
    ],
    [
      "list_models, WebSocket (p50 / p99)",
      `${ms(r.list.ws.p50)} / ${ms(r.list.ws.p99)}`,
      "p50 ≤ 5 ms",
      mark(r.list.ws.p50 <= 5),
    ],
    ["Throughput, 1 WebSocket session", `${count(tp(1)?.callsPerSecond ?? NaN)} calls/s`, "—", ""],
    [
      "Throughput, 10 WebSocket sessions",
      `${count(tp(10)?.callsPerSecond ?? NaN)} calls/s`,
      "—",
      "",
    ],
    [
      "Concurrent idle WebSocket sessions held",
      `${count(r.capacity.held)} of ${count(r.capacity.target)} tried`,
      "≥ 1,000",
      mark(r.capacity.held >= 1000),
    ],
    ["Memory per idle WebSocket session (after warm-up)", `${bytes(perSession)}`, "—", ""],
    [
      "Relay, as fast as possible (Ollama NDJSON, progress on)",
      `${count(r.relayFast.tokensPerSecond)} tokens/s`,
      `≥ ${count(TARGETS.relay)} tokens/s`,
      mark(r.relayFast.tokensPerSecond >= TARGETS.relay),
    ],
    [
      `Relay added delay at ${count(r.pacedRate)} tokens/s (p50 / p99)`,
      `${ms(r.relayPaced.delay.p50)} / ${ms(r.relayPaced.delay.p99)}`,
      "p99 < 5 ms",
      mark(r.relayPaced.delay.p99 < 5),
    ],
    [
      "Relay delay while saturated (p50 / p99)",
      `${ms(r.relayFast.delay.p50)} / ${ms(r.relayFast.delay.p99)}`,
      "— (queueing)",
      "",
    ],
    [
      "Cancel → upstream closed (Ollama, p50 / p99)",
      cancelText(r.cancel),
      `< ${TARGETS.cancel} ms`,
      mark(cancelOk(r.cancel)),
    ],
    [
      "Client drops the WebSocket mid-stream → upstream closed (p50 / p99)",
      cancelText(r.disconnect),
      "— (< 50 ms like cancel)",
      mark(cancelOk(r.disconnect)),
    ],
    [
      "Idle RSS, network daemon (fresh, no sessions)",
      mb(idleNet),
      "< 60 MB",
      mark(idleNet < TARGETS.idleRss),
    ],
    ["RSS under load (peak, 100 sessions)", mb(t100?.peakRss ?? NaN), "—", ""],
    [
      `${r.disconnectStorm.clients} clients drop mid-stream, 2nd wave: RSS left (after − after 1st)`,
      `${mb(r.disconnectStorm.after - r.disconnectStorm.baseline)} (peak ${
        mb(r.disconnectStorm.peak)
      })`,
      `≤ ${mb(STORM_ALLOWANCE)}`,
      mark(r.disconnectStorm.after - r.disconnectStorm.baseline <= STORM_ALLOWANCE),
    ],
    [
      "Non-reading client: RSS growth (peak − before)",
      `${mb(stalledCost)} (HWM ${mb(r.stalled.highWaterMark)})`,
      `≤ HWM + ${mb(STALLED_ALLOWANCE)}`,
      mark(stalledCost <= r.stalled.highWaterMark + STALLED_ALLOWANCE),
    ],
  ];
}

/** Issue 9: both protocol eras on every transport, no regression. */
function eraRows(r: Results): Row[] {
  const rows: Row[] = [];
  for (const era of ["legacy", "modern"] as const) {
    const suffix = era === "legacy" ? "" : " 2026";
    const label = ERA_LABEL[era];
    const stdio = overheadOf(r, `stdio${suffix}`);
    const ws = overheadOf(r, `ws${suffix}`);
    rows.push(
      [
        `Overhead, stdio, ${label} (p50 / p99)`,
        pair(stdio),
        `p50 ≤ ${TARGETS.overhead} ms`,
        mark(stdio[0] <= TARGETS.overhead),
      ],
      [
        `Overhead, WebSocket, ${label} (p50 / p99)`,
        pair(ws),
        `p50 ≤ ${TARGETS.overhead} ms`,
        mark(ws[0] <= TARGETS.overhead),
      ],
      [
        `Overhead, Streamable HTTP, ${label} (p50 / p99)`,
        pair(overheadOf(r, `http${suffix}`)),
        "—",
        "",
      ],
    );
  }
  for (const era of ["legacy", "modern"] as const) {
    const t = throughputOf(r, era, 100)?.callsPerSecond ?? NaN;
    rows.push([
      `Throughput, 100 WebSocket sessions, ${ERA_LABEL[era]}`,
      `${count(t)} calls/s (${(t / ISSUE_THROUGHPUT * 100).toFixed(0)} % of ${
        count(ISSUE_THROUGHPUT)
      }; ${(t / RESULTS_THROUGHPUT * 100).toFixed(0)} % of ${count(RESULTS_THROUGHPUT)})`,
      `≥ ${count(THROUGHPUT_FLOOR)} calls/s (95 % of the issues' ${
        count(ISSUE_THROUGHPUT)
      }; 95 % of RESULTS.md's ${count(RESULTS_THROUGHPUT)} would be ${
        count(RESULTS_THROUGHPUT * THROUGHPUT_SHARE)
      })`,
      mark(t >= THROUGHPUT_FLOOR),
    ]);
  }
  for (const era of ["legacy", "modern"] as const) {
    const t1 = throughputOf(r, era, 1)?.callsPerSecond ?? NaN;
    const t10 = throughputOf(r, era, 10)?.callsPerSecond ?? NaN;
    rows.push([
      `Throughput, 1 / 10 WebSocket sessions, ${ERA_LABEL[era]}`,
      `${count(t1)} / ${count(t10)} calls/s`,
      "—",
      "",
    ]);
  }
  const cold = [
    ["Cold start, spawn → initialize reply (median)", r.coldStart.rune.median],
    [
      "Cold start, spawn → server/discover reply, 2026-07-28 (median)",
      r.coldStart.runeModern.median,
    ],
  ] as const;
  for (const [name, value] of cold) {
    rows.push([name, ms(value), `< ${TARGETS.coldStart} ms`, mark(value < TARGETS.coldStart)]);
  }
  rows.push(
    [
      "Cancel → upstream closed, 2026-07-28 over WebSocket (notifications/cancelled, p50 / p99)",
      cancelText(r.modernCancel["ws 2026"]),
      `< ${TARGETS.cancel} ms`,
      mark(cancelOk(r.modernCancel["ws 2026"])),
    ],
    [
      "Cancel → upstream closed, 2026-07-28 over Streamable HTTP (request stream closed, p50 / p99)",
      cancelText(r.modernCancel["http 2026"]),
      `< ${TARGETS.cancel} ms`,
      mark(cancelOk(r.modernCancel["http 2026"])),
    ],
    [
      "Idle RSS, stdio daemon after initialize",
      mb(r.idleRss.runeStdio),
      "< 60 MB",
      mark(r.idleRss.runeStdio < TARGETS.idleRss),
    ],
    [
      "Idle RSS, stdio daemon after server/discover (2026-07-28)",
      mb(r.idleRss.runeStdioModern),
      "< 60 MB",
      mark(r.idleRss.runeStdioModern < TARGETS.idleRss),
    ],
  );
  return rows;
}

/** Issue 10: the cloud providers. */
function providerRows(r: Results): Row[] {
  const rows: Row[] = [];
  for (const provider of ["anthropic", "openai"] as const) {
    const direct = r.providerOverhead[`${provider} direct`];
    const stdio = r.providerOverhead[`${provider} stdio`];
    const p50 = diff(stdio, direct, "p50");
    rows.push([
      `Overhead of ai_${provider}_generate over stdio (p50 / p99)`,
      `${ms(p50)} / ${ms(diff(stdio, direct, "p99"))}`,
      `p50 ≤ ${TARGETS.overhead} ms`,
      mark(p50 <= TARGETS.overhead),
    ]);
  }
  for (const provider of ["anthropic", "openai"] as const) {
    const streaming = r.providerStreaming[provider];
    rows.push(
      [
        `Relay through ${
          provider === "anthropic" ? "Anthropic" : "OpenAI"
        } SSE, as fast as possible`,
        `${count(streaming.relay.tokensPerSecond)} tokens/s`,
        `≥ ${count(TARGETS.relay)} tokens/s`,
        mark(streaming.relay.tokensPerSecond >= TARGETS.relay),
      ],
      [
        `Cancel → upstream closed, ${
          provider === "anthropic" ? "Anthropic" : "OpenAI"
        } (p50 / p99)`,
        cancelText(streaming.cancel),
        `< ${TARGETS.cancel} ms`,
        mark(cancelOk(streaming.cancel)),
      ],
    );
  }
  return rows;
}

type FloorRow = [string, string, string, string, string];

/** Issue 16: each goal beside the floor measured in the same run. */
function floorRows(r: Results): FloorRow[] {
  const [stdio50] = overheadOf(r, "stdio");
  const noop = r.overhead.noop;
  const cpu = (name: string) => r.sequentialCpu[name]?.perCall ?? NaN;
  const floorCpu = `${ms(cpu("floor"))} (one streamed fetch in a Deno process)`;
  const at100 = throughputOf(r, "legacy", 100)?.daemonCpuPerCall ?? NaN;
  const capacityRow = (c: Capacity, what: string): FloorRow => {
    const growth = c.rssAfter - c.rssFresh;
    const perSession = growth / Math.max(1, c.held);
    return [
      what,
      `${count(c.held)} of ${count(c.target)} held${c.capped ? ` (capped: ${c.capped})` : ""}; ${
        mb(c.rssFresh)
      } → ${mb(c.rssAfter)} (${mb(growth)}, ${mb(perSession)} each)`,
      "–",
      `held, ≤ ${mb(GOALS.perSession)} each (≤ ${mb(GOALS.sessionsGrowth)} growth)`,
      mark(
        c.held >= GOALS.sessions && perSession <= GOALS.perSession &&
          growth <= GOALS.sessionsGrowth,
      ),
    ];
  };
  return [
    [
      "stdio overhead over a direct streamed request, p50",
      ms(stdio50),
      `${ms(noop?.p50 ?? NaN)} (a no-op MCP tool round trip)`,
      `≤ ${GOALS.stdioOverhead} ms`,
      mark(stdio50 <= GOALS.stdioOverhead),
    ],
    [
      "daemon CPU per sequential call, stdio",
      ms(cpu("stdio")),
      floorCpu,
      `≤ ${GOALS.stdioCpu} ms`,
      mark(cpu("stdio") <= GOALS.stdioCpu),
    ],
    [
      "daemon CPU per sequential call, WebSocket",
      ms(cpu("ws")),
      floorCpu,
      `≤ ${GOALS.wsCpu} ms`,
      mark(cpu("ws") <= GOALS.wsCpu),
    ],
    [
      "daemon CPU per call at 100 sessions",
      ms(at100),
      "–",
      `≤ ${GOALS.cpuAt100} ms`,
      mark(at100 <= GOALS.cpuAt100),
    ],
    [
      "stdio idle RSS after initialize",
      mb(r.idleRss.runeStdio),
      `${mb(r.idleRss.bareDeno)} (bare Deno)`,
      `< ${mb(GOALS.stdioIdleRss)}`,
      mark(r.idleRss.runeStdio < GOALS.stdioIdleRss),
    ],
    capacityRow(r.capacity, `${count(GOALS.sessions)} idle initialized WebSocket sessions`),
    ...(r.capacityUnguarded
      ? [capacityRow(
        r.capacityUnguarded,
        `${count(GOALS.sessions)} idle WebSocket sessions, header guard off (--header-timeout 0)`,
      )]
      : []),
  ];
}

function peerRows(r: Results): [string, string, string][] {
  const o = r.overhead;
  const streamBase = o["direct-stream"];
  const plainBase = o["direct-nostream"];
  return [
    [
      "generate round trip over stdio (p50 / p99)",
      `${ms(o.stdio.p50)} / ${ms(o.stdio.p99)}`,
      `${ms(o.peer.p50)} / ${ms(o.peer.p99)}`,
    ],
    [
      "overhead over its own upstream request (p50 / p99)",
      `${ms(diff(o.stdio, streamBase, "p50"))} / ${ms(diff(o.stdio, streamBase, "p99"))}`,
      `${ms(diff(o.peer, plainBase, "p50"))} / ${ms(diff(o.peer, plainBase, "p99"))}`,
    ],
    [
      "list models over stdio (p50 / p99)",
      `${ms(r.list.stdio.p50)} / ${ms(r.list.stdio.p99)}`,
      `${ms(r.list.peer.p50)} / ${ms(r.list.peer.p99)}`,
    ],
    [
      "cold start, spawn → initialize reply (median / max)",
      `${ms(r.coldStart.rune.median)} / ${ms(r.coldStart.rune.summary.max)}`,
      `${ms(r.coldStart.peer.median)} / ${ms(r.coldStart.peer.summary.max)}`,
    ],
    ["idle RSS after initialize", mb(r.idleRss.runeStdio), mb(r.idleRss.peer)],
  ];
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function summaryRows(record: Record<string, Summary>): string[][] {
  return Object.entries(record).map(([name, s]) => [
    name,
    String(s.n),
    s.p50.toFixed(3),
    s.p99.toFixed(3),
    s.mean.toFixed(3),
    s.max.toFixed(3),
  ]);
}

function details(r: Results): string {
  const o = r.overhead;
  const eraRuns = (era: Era) =>
    Object.entries(r.throughputRuns[era]).map(([n, runs]) =>
      `${n} session(s) ${runs.map(count).join(" / ")}`
    ).join("; ");
  const cpuRow = (name: string, what: string) => {
    const c = r.sequentialCpu[name];
    return [what, c ? ms(c.perCall) : "n/a", c ? c.runs.map(ms).join(", ") : "n/a"];
  };
  const c = r.capacity;
  const fd = (limit?: { soft: number; hard: number }) =>
    limit ? `${count(limit.soft)} (hard ${count(limit.hard)})` : "unreadable";
  const lines = [
    "Raw round trips (ms; `noop` is the no-op server on the SDK's `StdioServerTransport`, " +
    "`noop deno-stdio` the same on a minimal Deno stdio transport, ` 2026` the 2026-07-28 " +
    "era, `peer` ollama-mcp):",
    "",
    table(
      ["client", "n", "p50", "p99", "mean", "max"],
      summaryRows({ ...o, ...prefixed("list ", r.list) }),
    ),
    "",
    "Cloud providers, raw round trips (ms): the streamed request sent directly to each " +
    "double, and the generate tool over stdio, interleaved:",
    "",
    table(["client", "n", "p50", "p99", "mean", "max"], summaryRows(r.providerOverhead)),
    "",
    "Daemon CPU per sequential call, from /proc/PID/stat around batches of calls made one " +
    "at a time (the targets take turns, one batch each per round; the median round is " +
    "shown, then every round):",
    "",
    table(["process", "CPU per call", "rounds"], [
      cpuRow("floor", "one streamed fetch in a Deno process (`bench/fetch_floor.ts`)"),
      cpuRow("stdio", "Rune over stdio, 2025"),
      cpuRow("stdio 2026", "Rune over stdio, 2026-07-28"),
      cpuRow("ws", "Rune over WebSocket, 2025"),
      cpuRow("ws 2026", "Rune over WebSocket, 2026-07-28"),
    ]),
    "",
    "Throughput (each session keeps one call in flight; three runs of each era and count, " +
    "interleaved, the median run shown; all runs: 2025 " + eraRuns("legacy") +
    "; 2026-07-28 " + eraRuns("modern") + " calls/s):",
    "",
    table(
      [
        "era",
        "sessions",
        "calls",
        "calls/s",
        "latency p50",
        "latency p99",
        "daemon CPU/call",
        "double CPU/call",
        "client CPU/call",
        "machine CPU busy",
        "peak RSS",
      ],
      r.throughput.map((t) => [
        ERA_LABEL[t.era],
        String(t.sessions),
        count(t.calls),
        count(t.callsPerSecond),
        ms(t.latency.p50),
        ms(t.latency.p99),
        ms(t.daemonCpuPerCall),
        ms(t.doubleCpuPerCall),
        ms(t.clientCpuPerCall),
        `${(t.machineBusy * 100).toFixed(0)} %`,
        mb(t.peakRss),
      ]),
    ),
    "",
    `Idle sessions: RSS ${mb(c.rssFresh)} fresh, ${mb(c.rssBefore)} after a warm-up of 20 ` +
    `sessions, ${mb(c.rssAfter)} with ${count(c.held)} sessions open (confirmed by /healthz; ` +
    `opened in ${c.openSeconds.toFixed(1)} s, 100 handshakes at a time; ` +
    `${bytes((c.rssAfter - c.rssBefore) / Math.max(1, c.held))} each after the warm-up); ` +
    `a sample of them answered list_models afterwards: ${c.responsive ? "yes" : "no"}. ` +
    `Open-files limits (soft): daemon ${fd(c.fdLimits.daemon)}, benchmark ` +
    `${fd(c.fdLimits.bench)}; Deno raises its soft limit to the hard one at start, and the ` +
    "daemon ran with `--max-sessions` 100 above the target" +
    (c.capped ? `; fewer sessions were tried than asked: ${c.capped}.` : "."),
    "",
    `Relay: clock offset to the emitter ${ms(r.clock.offset)} (±${ms(r.clock.rtt / 2)}). ` +
    `Fast stream (median of ${r.relayFastRuns.map(count).join(", ")} tokens/s): ` +
    `${count(r.relayFast.received)} of ${count(r.relayFast.requested)} tokens ` +
    `received in ${count(r.relayFast.notifications)} notifications. Paced stream (median of p99s ` +
    `${r.relayPacedP99s.map(ms).join(", ")}): ` +
    `${count(r.relayPaced.received)} of ${count(r.relayPaced.requested)} tokens in ` +
    `${count(r.relayPaced.notifications)} notifications.`,
    "",
    "Cloud streaming through the emitter's SSE (the same daemon, `ANTHROPIC_BASE_URL` and " +
    "`OPENAI_BASE_URL` pointing at the emitter):",
    "",
    table(
      [
        "provider",
        "relay tokens/s (runs)",
        "tokens received",
        "notifications",
        "delay while saturated p50 / p99",
        "cancel → upstream closed p50 / p99",
      ],
      (["anthropic", "openai"] as const).map((provider) => {
        const p = r.providerStreaming[provider];
        return [
          provider,
          `${count(p.relay.tokensPerSecond)} (${p.relayRuns.map(count).join(", ")})`,
          `${count(p.relay.received)} of ${count(p.relay.requested)}`,
          count(p.relay.notifications),
          `${ms(p.relay.delay.p50)} / ${ms(p.relay.delay.p99)}`,
          cancelText(p.cancel),
        ];
      }),
    ),
    "",
    "Non-reading client (raw TCP WebSocket that sends initialize and an endless fast " +
    "generate with progress, then never reads):",
    "",
    table(
      [
        "--high-water-mark",
        "RSS before",
        "RSS peak",
        "RSS at end",
        "upstream written at half time",
        "upstream written at end",
      ],
      r.stalledRuns.map((s) => [
        mb(s.highWaterMark),
        mb(s.rssBefore),
        mb(s.rssPeak),
        mb(s.rssEnd),
        bytes(s.upstreamBytes[0]),
        `${bytes(s.upstreamBytes[1])} (${count(s.upstreamTokens)} tokens)`,
      ]),
    ),
    "",
    "Upstream bytes that stop growing mean the daemon stopped reading Ollama (backpressure); " +
    "what it wrote before that sits mostly in the kernel's socket buffers, not in the daemon.",
  ];
  return lines.join("\n");
}

function prefixed(prefix: string, record: Record<string, Summary>): Record<string, Summary> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [prefix + k, v]));
}

function limits(r: Results): string[] {
  const out: string[] = [];
  const t100 = throughputOf(r, "legacy", 100);
  const t100Modern = throughputOf(r, "modern", 100);
  const slow = [t100, t100Modern].filter((t): t is Throughput =>
    t !== undefined && t.callsPerSecond < THROUGHPUT_FLOOR
  );
  for (const t of slow) {
    const total = t.daemonCpuPerCall + t.doubleCpuPerCall + t.clientCpuPerCall;
    const cores = navigator.hardwareConcurrency;
    out.push(
      `- **Throughput, 100 sessions, ${ERA_LABEL[t.era]}** (${count(t.callsPerSecond)} calls/s) ` +
        `is bounded by the machine: the ${cores} cores were ` +
        `${(t.machineBusy * 100).toFixed(0)} % busy during the run. Each call costs ` +
        `${ms(t.daemonCpuPerCall)} of daemon CPU, ${ms(t.doubleCpuPerCall)} in the double and ` +
        `${ms(t.clientCpuPerCall)} in the client (${ms(total)} charged to the three processes, ` +
        `which alone would allow ${count((cores * 1000) / total)} calls/s); the rest of the ` +
        "machine's time goes to loopback TCP in the kernel, which is not charged to them, and " +
        `to whatever else runs on the shared machine (see Machine). ${
          count(THROUGHPUT_FLOOR)
        } calls/s would need the daemon below ${
          ms((cores * 1000) / THROUGHPUT_FLOOR - t.doubleCpuPerCall - t.clientCpuPerCall)
        } per call here, even before kernel time.`,
    );
  }
  if (r.relayPaced.delay.p99 >= 5) {
    out.push(
      `- **Relay delay p99** (${ms(r.relayPaced.delay.p99)}, median ` +
        `${ms(r.relayPaced.delay.p50)}, max ${ms(r.relayPaced.delay.max)}): the delay is ` +
        "sub-millisecond for almost every token; the tail is a few isolated stalls of several " +
        "ms. Emitter, daemon and client share the cores, and a GC pause or a descheduled " +
        "process in any of them shows up here; the runs' p99s (listed under Details) vary " +
        "from run to run for that reason.",
    );
  }
  const idle = r.idleRss.runeNetworkFresh ?? r.idleRss.runeNetwork;
  const stdioIdle = Math.max(r.idleRss.runeStdio, r.idleRss.runeStdioModern);
  if (Math.max(idle, stdioIdle) >= TARGETS.idleRss || r.idleRss.runeStdio >= GOALS.stdioIdleRss) {
    out.push(
      `- **Idle RSS**: a bare \`deno eval\` process takes ${mb(r.idleRss.bareDeno)} here; ` +
        `Rune on stdio ${mb(r.idleRss.runeStdio)} after initialize and ` +
        `${mb(r.idleRss.runeStdioModern)} after server/discover; the fresh network daemon ` +
        `(no session yet) ${mb(idle)}; the peer on Node ${mb(r.idleRss.peer)}. The ` +
        "difference to bare Deno is the code loaded (the MCP SDK v2, zod, the providers, " +
        "Rune's modules); issue 16 asks for a profile of it.",
    );
  }
  const cpuMisses = [
    ["stdio", GOALS.stdioCpu],
    ["ws", GOALS.wsCpu],
  ] as const;
  for (const [name, goal] of cpuMisses) {
    const cpu = r.sequentialCpu[name]?.perCall ?? NaN;
    const floor = r.sequentialCpu.floor?.perCall ?? NaN;
    if (!(cpu > goal)) continue;
    out.push(
      `- **Daemon CPU per sequential call, ${name === "ws" ? "WebSocket" : "stdio"}** ` +
        `(${ms(cpu)}, goal ${ms(goal)}): ${(cpu / floor).toFixed(1)} × the floor of one ` +
        `streamed fetch (${ms(floor)}) in this run` +
        (cpu > floor
          ? `, so ${ms(cpu - floor)} per call is Rune's own work (reading, parsing and ` +
            "validating the request, dispatch, parsing the stream, progress, the reply)"
          : "; at or below the floor, so the CPU readings were too noisy to split (a loaded " +
            "machine slows every process's CPU time)") +
        ". `bench/cpu.ts --transport " + `${name} --profile DIR\` profiles it.`,
    );
  }
  const cost = r.stalled.rssPeak - r.stalled.rssBefore;
  if (cost > r.stalled.highWaterMark + STALLED_ALLOWANCE) {
    const small = r.stalledRuns.find((x) => x.highWaterMark < r.stalled.highWaterMark);
    out.push(
      `- **Non-reading client**: the daemon stops reading upstream (flat upstream bytes), so ` +
        `memory is bounded, but at ${mb(cost)} above the start for a ` +
        `${mb(r.stalled.highWaterMark)} high-water mark` +
        (small ? ` (${mb(small.rssPeak - small.rssBefore)} at ${mb(small.highWaterMark)})` : "") +
        ". Deno's `bufferedAmount` counts payload bytes only, while every queued " +
        "`socket.send` also holds an async op, so small progress notifications cost more " +
        "than their byte count.",
    );
  }
  return out.length ? out : ["- Every target was met in this run."];
}

/** The run time and the machine's load, for the Machine section. */
function loadLines(r: Results): string[] {
  const samples = [...r.load.samples].sort((a, b) => a - b);
  const cores = navigator.hardwareConcurrency;
  const machineMs = r.load.busyMs;
  const own = Math.min(r.load.ownCpuMs, machineMs);
  const pct = (part: number) => `${((part / (r.load.elapsedMs * cores)) * 100).toFixed(0)} %`;
  return [
    `Run time: ${r.durationSeconds.toFixed(0)} s; 1-minute load average ` +
    `${r.loadAverage[0].toFixed(2)} before, ${r.loadAverage[1].toFixed(2)} after` +
    (samples.length
      ? `, ${samples[0].toFixed(2)} / ${samples[samples.length >> 1].toFixed(2)} / ${
        samples[samples.length - 1].toFixed(2)
      } min / median / max of ${samples.length} samples during the run`
      : ""),
    `CPU during the run: the machine's ${cores} cores were ${
      (r.load.busy * 100).toFixed(0)
    } % busy; the benchmark's own processes (clients, daemons, doubles, peer) account for ` +
    `${pct(own)} of the machine's time and other processes for ${pct(machineMs - own)} ` +
    "(the machine is shared: other processes may have run alongside; a load average above " +
    `${cores} means processes waited for a core)`,
  ];
}

/** Renders the results as Markdown. */
export function renderResults(r: Results): string {
  return [
    "# Rune benchmark results",
    "",
    "Produced by `deno task bench` (bench/bench.ts); every figure below is measured in that run.",
    "",
    "## Machine",
    "",
    ...r.machine.map((m) => `- ${m}`),
    ...loadLines(r).map((m) => `- ${m}`),
    "",
    "## Setup",
    "",
    "- Upstream for the call sections: the Ollama double (`tests/ollama_double.ts`) in its own " +
    "Deno process, answering instantly (no token delay); for the cloud providers the " +
    "Anthropic and OpenAI doubles (`tests/anthropic_double.ts`, `tests/openai_double.ts`), " +
    "which Rune reaches through `ANTHROPIC_BASE_URL`/`ANTHROPIC_API_KEY` and " +
    "`OPENAI_BASE_URL`/`OPENAI_API_KEY`. Upstream for the streaming sections: " +
    "`bench/emitter.ts` in its own process, which writes Ollama NDJSON, Anthropic Messages " +
    "SSE or OpenAI chat-completions SSE and stamps every token with its send time (wall " +
    "clock, µs); the client subtracts it from the receive time, after calibrating the clock " +
    "offset between the processes, and the emitter records when each stream's client went " +
    "away.",
    "- Clients: lean raw JSON-RPC clients in the benchmark process (global `WebSocket`, child " +
    "stdin/stdout, `fetch` for Streamable HTTP); not the SDK client, so client-side validation " +
    "does not count against the servers. Both protocol eras: **2025** (a session opened with " +
    "`initialize`, protocol 2025-06-18) and **2026-07-28** (stateless: `server/discover` " +
    "first, then every request carries the `_meta` envelope with protocol version, client " +
    "capabilities and client info; over HTTP each request is its own POST without a session, " +
    "with `mcp-method` and `mcp-name`). Calls run one at a time and interleaved across all " +
    "clients (one of each per round) so drift and noise hit them alike.",
    "- Overhead = percentile of the call through the server minus the same percentile of a " +
    "direct `fetch` of the same upstream request from the benchmark process (Rune sends " +
    "`/api/generate` with `stream: true`, read to the end; the peer sends `stream: false`, so " +
    "its overhead is against that; for the cloud tools, the streamed `/v1/messages` or " +
    "`/chat/completions` request Rune sends).",
    "- Floors, measured in the same run: a no-op MCP tool round trip (`bench/noop_server.ts`: " +
    "the same SDK v2 `McpServer`, served in both eras by the SDK's `serveStdio` over its " +
    "`StdioServerTransport`, with one tool taking the same arguments (zod-validated) and " +
    "answering at once; timed with the same client, interleaved with Rune's calls; the same " +
    "server over a minimal Deno stdio transport that reads `Deno.stdin` in place as Rune " +
    "does is listed beside it); one streamed fetch in a Deno process (`bench/fetch_floor.ts`: Rune's upstream " +
    "request in a loop, CPU per request from /proc/PID/stat as for the daemon); a bare " +
    "`deno eval` process's RSS.",
    "- All processes (clients, daemons, upstream) share the machine's cores, so throughput is " +
    "bounded by the machine, not only by the daemon; CPU time per call is listed for each.",
    `- Peer: npm \`ollama-mcp\` 2.1.0 run with ${r.peerLabel}; tools \`${r.peerTools.generate}\`` +
    ` and \`${r.peerTools.list}\`, same double, same prompt, over stdio.`,
    "- RSS is VmRSS from /proc/PID/status of the server process itself; CPU is utime + stime " +
    "from /proc/PID/stat (all threads).",
    "",
    "## Results against targets",
    "",
    "### Protocol eras (issue 9): overhead, throughput, cancel, cold start, memory",
    "",
    table(["Measure", "Measured", "Target", ""], eraRows(r)),
    "",
    "### Cloud providers (issue 10)",
    "",
    table(["Measure", "Measured", "Target", ""], providerRows(r)),
    "",
    "### Close to the floor (issue 16)",
    "",
    table(["Measure", "Measured", "Floor (same run)", "Goal", ""], floorRows(r)),
    "",
    "### The other targets (2025 era, Ollama)",
    "",
    table(["Measure", "Measured", "Target", ""], targetRows(r)),
    "",
    "## Side by side with ollama-mcp",
    "",
    table(["Measure", "Rune", "ollama-mcp 2.1.0"], peerRows(r)),
    "",
    "## What limits the missed targets",
    "",
    ...limits(r),
    "",
    "## Fixes made in src/ while benchmarking (before SDK v2)",
    "",
    "- `src/providers/ndjson.ts`, `src/providers/ollama.ts`: the NDJSON parser takes the " +
    "call's abort signal and cancels the body itself. Before, a client that disconnected (or " +
    "a session that closed) during a fast stream left the upstream request running to the " +
    "end: Deno's `fetch` signal stopped reaching the streaming body after a garbage " +
    "collection, and nothing else checked it.",
    "- `src/mcp/server.ts`, `src/mcp/progress.ts`: the relay stops reading the provider while " +
    "more than 64 K characters of progress text wait for the client, so a client that stops " +
    "reading holds Ollama back instead of growing the daemon without bound (hundreds of MB " +
    "within seconds before).",
    "- `src/providers/ollama.ts`: the idle watchdog no longer clears and creates a timer for " +
    "every streamed line; it moves a deadline and keeps one timer (same timeouts).",
    "- Daemon CPU per `tools/call` at 100 sessions went from 0.225 ms to 0.165 ms " +
    "(2026-11-25): `ndjson.ts` reads the body with one BYOB reader into a pooled buffer and " +
    "splits lines inline instead of piping through `TextDecoderStream` and a " +
    "`TransformStream`; `ollama.ts` serves all calls' deadlines from one shared timer, " +
    "forwards the caller's abort instead of `AbortSignal.any` and drops a generator layer; " +
    "`message_transport.ts` accepts everyday requests with a structural check where the " +
    "SDK's schema would only copy them; `server.ts` shares compiled argument schemas across " +
    "sessions; `tools.ts` drops undefined fields without a JSON round trip. This run: " +
    `${ms(throughputOf(r, "legacy", 100)?.daemonCpuPerCall ?? NaN)}.`,
    "",
    "## Details",
    "",
    details(r),
    "",
  ].join("\n");
}
