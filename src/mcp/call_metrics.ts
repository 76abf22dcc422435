/**
 * Tool-call metrics: each call's outcome and duration, and its time to the
 * first streamed token, labelled by tool, provider and model.
 *
 * The tool wrapper (`server.ts`) starts an observation per call and ties it
 * to the call's context; the relay, which sees the first token, finds it
 * there (a `WeakMap`, so it goes with the context). Provider and model come
 * from the tool name (`ai_<id>_*`) or the `model` argument
 * (`provider/model`).
 *
 * @module
 */

import { isAbortError } from "../errors.ts";
import type { CallLabels, FleetEvents, Outcome } from "../metrics/events.ts";
import { LocalRateLimitError } from "../providers/limits.ts";
import { DEFAULT_PROVIDER_ID } from "../providers/route.ts";

/** One tool call being observed. */
interface Observation {
  /** When the call arrived (performance.now()). */
  started: number;
  /** When its first token was relayed. */
  firstToken?: number;
}

const observations = new WeakMap<object, Observation>();

/** Marks the first token of the call whose context is `ctx` (the relay calls it). */
export function firstTokenOf(ctx: object): void {
  const observation = observations.get(ctx);
  if (observation && observation.firstToken === undefined) {
    observation.firstToken = performance.now();
  }
}

/** The labels of a call to `tool` with `args`, given the provider ids served. */
export function callLabels(
  call: { tool: string; args: Record<string, unknown> },
  providerIds: readonly string[],
): CallLabels {
  const { tool, args } = call;
  const named = typeof args.model === "string" ? args.model : "";
  // Per-provider tools: ai_<id>_<verb>; the longest id that matches wins ("ai_open_ai_*").
  const own = providerIds.filter((id) => tool.startsWith(`ai_${id}_`))
    .sort((a, b) => b.length - a.length)[0];
  if (own !== undefined) return { tool, provider: own, model: named };
  if (named === "") return { tool, provider: "", model: "" };
  const slash = named.indexOf("/");
  return slash < 0
    ? { tool, provider: DEFAULT_PROVIDER_ID, model: named }
    : { tool, provider: named.slice(0, slash), model: named.slice(slash + 1) };
}

/** The outcome of a tool result or a thrown error. */
function outcomeOf(
  result: { isError?: boolean; structuredContent?: unknown } | undefined,
  error?: unknown,
): Outcome {
  if (error !== undefined) {
    if (isAbortError(error)) return "cancelled";
    if (error instanceof LocalRateLimitError) return "rate_limited";
    return "error";
  }
  if (!result?.isError) return "ok";
  const data = result.structuredContent as { error?: unknown } | undefined;
  return data?.error === "rate_limited" ? "rate_limited" : "error";
}

/** Where {@linkcode observeCall} reports. */
export interface ObserveOptions {
  /** The metrics. */
  events: FleetEvents;
  /** The call's labels. */
  labels: CallLabels;
}

/**
 * Runs one tool call under observation and reports it: `run` is the tool's
 * handler with its context `ctx`.
 */
export async function observeCall<R extends { isError?: boolean; structuredContent?: unknown }>(
  ctx: object & { mcpReq?: { signal?: AbortSignal } },
  run: () => Promise<R>,
  options: ObserveOptions,
): Promise<R> {
  const observation: Observation = { started: performance.now() };
  observations.set(ctx, observation);
  let result: R | undefined;
  let failure: unknown;
  try {
    result = await run();
    return result;
  } catch (error) {
    failure = error ?? new Error("a tool call failed without an error");
    throw error;
  } finally {
    const ended = performance.now();
    const outcome = ctx.mcpReq?.signal?.aborted ? "cancelled" : outcomeOf(result, failure);
    options.events.toolCall(options.labels, {
      outcome,
      seconds: (ended - observation.started) / 1000,
      ...(observation.firstToken !== undefined &&
        { ttftSeconds: (observation.firstToken - observation.started) / 1000 }),
    });
  }
}
