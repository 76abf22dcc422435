/**
 * A Provider that reports what its upstream calls cost and how they fail:
 * tokens in and out, generation speed, and upstream errors by kind. The
 * registry wraps every provider (every host of a pool) in it, so the
 * numbers are the upstream's: a cache hit costs no tokens, and a failed
 * first host counts even when another host answered.
 *
 * @module
 */

import { errorKind, type FleetEvents } from "../metrics/events.ts";
import type { CallOptions, Chunk, EmbedRequest, FinalResult, Provider } from "./types.ts";

/** Wraps `provider` so its calls report to `events` under its provider id. */
export function observed(provider: Provider, events: FleetEvents): Provider {
  const id = provider.id;
  function failed(error: unknown): void {
    const kind = errorKind(error);
    if (kind !== undefined) events.upstreamError(id, kind);
  }

  function finished(model: string, result: FinalResult): void {
    const { promptTokens = 0, completionTokens = 0, generationMs } = result.usage;
    events.tokens({ provider: id, model }, { input: promptTokens, output: completionTokens });
    if (completionTokens > 0 && generationMs !== undefined && generationMs > 0) {
      events.tokensPerSecond({ provider: id, model }, completionTokens / (generationMs / 1000));
    }
  }

  async function* stream(model: string, chunks: AsyncIterable<Chunk>): AsyncGenerator<Chunk> {
    try {
      for await (const chunk of chunks) {
        if (chunk.type === "done") finished(model, chunk.result);
        yield chunk;
      }
    } catch (error) {
      failed(error);
      throw error;
    }
  }

  return {
    ...provider,
    listModels: (options?: CallOptions) =>
      provider.listModels(options).catch((error) => {
        failed(error);
        throw error;
      }),
    generate: (request, options) => stream(request.model, provider.generate(request, options)),
    chat: (request, options) => stream(request.model, provider.chat(request, options)),
    async embed(request: EmbedRequest, options?: CallOptions) {
      try {
        const result = await provider.embed(request, options);
        events.tokens({ provider: id, model: request.model }, {
          input: result.usage.promptTokens ?? 0,
          output: 0,
        });
        return result;
      } catch (error) {
        failed(error);
        throw error;
      }
    },
  };
}
