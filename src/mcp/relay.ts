/**
 * Relays a provider's chunk stream to an MCP client: deltas go out as
 * coalesced progress notifications when the request carries a progress
 * token, and the final result is returned.
 *
 * While more than {@linkcode MAX_PENDING_PROGRESS} characters wait for the
 * client, the relay stops reading the provider, so a client that stops
 * reading holds back the upstream stream instead of growing the daemon's
 * memory. On HTTP, where the SDK's transports queue without waiting, each
 * notification also waits for the response stream to drain (`flow.ts`).
 *
 * @module
 */

import type { ServerContext } from "@modelcontextprotocol/server";
import type { Chunk, FinalResult } from "../providers/types.ts";
import { firstTokenOf } from "./call_metrics.ts";
import { flowOf } from "./flow.ts";
import { createProgressStream, type ProgressCounter } from "./progress.ts";

/** Options of {@linkcode relay}. */
export interface RelayOptions {
  /** Shared progress values (several relays in one call). Default: the relay's own. */
  counter?: ProgressCounter;
  /** Added to every progress notification's `_meta`. */
  meta?: Record<string, unknown>;
  /** Called once, when the first text or thinking arrives. */
  onFirstToken?: () => void;
}

/**
 * Text (in characters) that may wait for a slow client before the relay
 * stops reading from the provider until it has been sent.
 */
export const MAX_PENDING_PROGRESS = 64 * 1024;

/** Consumes `chunks`, streaming them as progress to the client of `ctx`; returns the result. */
export async function relay(
  chunks: AsyncIterable<Chunk>,
  ctx: ServerContext,
  options: RelayOptions = {},
): Promise<FinalResult> {
  const token = ctx.mcpReq._meta?.progressToken;
  const flow = flowOf(ctx.http?.req);
  const progress = token === undefined ? undefined : createProgressStream(token, async (params) => {
    await ctx.mcpReq.notify({ method: "notifications/progress", params });
    await flow?.ready();
  }, { counter: options.counter, meta: options.meta });
  let first: (() => void) | undefined = options.onFirstToken ?? (() => {});
  for await (const chunk of chunks) {
    if (chunk.type === "done") {
      await progress?.flush();
      return chunk.result;
    }
    if (chunk.type === "text" || chunk.type === "thinking") {
      if (first) {
        first();
        first = undefined;
        // Time to first token, for the tool-call metrics.
        firstTokenOf(ctx);
      }
      progress?.push(chunk.text, chunk.type);
    }
    if (progress && progress.pending > MAX_PENDING_PROGRESS) await progress.flush();
  }
  throw new Error("provider stream ended without a final result");
}
