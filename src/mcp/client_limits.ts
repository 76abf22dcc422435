/**
 * The per-client rate limit (`--rate-limit N/s|N/m|N/h`): every request of
 * a client counts (the handshake and `ping` do not), whatever its method.
 * A client is its bearer token's identity, or without tokens its session
 * (stateless 2026-07-28 requests without a token share one anonymous
 * budget). Over the limit, a `tools/call` gets a tool error with
 * `structuredContent` `{ error: "rate_limited", scope: "client", limit,
 * retryAfter }`; any other request a JSON-RPC error (-32000) with the same
 * data. With `--redis` the counters are shared by every instance.
 *
 * The check wraps the server instance's request handlers, so it runs before
 * anything else (a task is not even created); it reaches into the SDK's
 * handler table through `tasks/install.ts`, the one place that does.
 *
 * @module
 */

import { type McpServer, ProtocolError } from "@modelcontextprotocol/server";
import type { CallLabels, FleetEvents } from "../metrics/events.ts";
import { NO_EVENTS } from "../metrics/events.ts";
import type { RateStore } from "../providers/limiter.ts";
import { describeRate, type Rate, retrySeconds } from "../providers/limits.ts";
import { TOO_MANY_REQUESTS } from "../transports/jsonrpc.ts";
import { handlerTable } from "./tasks/install.ts";

/** Requests that never count: opening a session and liveness. */
const EXEMPT = new Set(["initialize", "server/discover", "ping"]);

/** A client limit: the rate and where it is counted. */
export interface ClientLimit {
  /** The rate per client. */
  rate: Rate;
  /** The counters (memory, or Redis shared by instances). */
  store: RateStore;
}

/** Options of {@linkcode installClientLimit}. */
export interface ClientLimitOptions {
  /** Who the instance serves: its identity or session. */
  owner: string;
  /** Refusals are reported here. */
  events?: FleetEvents;
  /** Labels of a refused tool call, for the tool-call metrics. */
  labels?: (tool: string, args: Record<string, unknown>) => CallLabels;
}

/** Wraps every request handler of `server` (call after all are registered). */
export function installClientLimit(
  server: McpServer,
  limit: ClientLimit,
  options: ClientLimitOptions,
): void {
  const table = handlerTable(server);
  const events = options.events ?? NO_EVENTS;
  const check = { key: `client:${options.owner}`, ...limit.rate, cost: 1 };
  for (const [method, handler] of table) {
    if (EXEMPT.has(method)) continue;
    table.set(method, async (request, ctx) => {
      const verdict = await limit.store.take([check]);
      if (verdict.allowed) return await handler(request, ctx);
      events.rateLimited("client");
      const retryAfter = retrySeconds(verdict.retryAfterMs);
      const data = { error: "rate_limited", scope: "client", limit: limit.rate.text, retryAfter };
      const text = `Rate limit reached: this client may make ${describeRate(limit.rate)} ` +
        `(--rate-limit ${limit.rate.text}); retry in ${retryAfter} s.`;
      if (method !== "tools/call") throw new ProtocolError(TOO_MANY_REQUESTS, text, data);
      const name = String(request.params?.name ?? "");
      const args = (request.params?.arguments ?? {}) as Record<string, unknown>;
      if (options.labels) {
        events.toolCall(options.labels(name, args), { outcome: "rate_limited", seconds: 0 });
      }
      return { content: [{ type: "text", text }], structuredContent: data, isError: true };
    });
  }
}
