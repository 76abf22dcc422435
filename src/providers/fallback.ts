/**
 * Fallbacks across models, from the configuration:
 * `"fallbacks": {"anthropic/claude-sonnet-4-6": ["openai/gpt-4.1", "ollama/llama3.2"]}`.
 *
 * A Provider that wraps a Provider: when a call to a model with fallbacks
 * fails before its first chunk because the model is rate limited (a 429,
 * or one of Rune's own limits), overloaded (503, 529) or down (unreachable,
 * a connect or first-token timeout, every host down), the next model in
 * its list answers instead, and the result's `model` names the one that
 * did (`"openai/gpt-4.1"`). After the first chunk nothing moves (the client
 * would see two answers). Embeddings never fall back: another model's
 * vectors do not compare with the first one's.
 *
 * The fallback call leaves out `keep_alive` and `provider_options` when it
 * goes to another kind of provider (they are the first provider's), and
 * keeps everything else.
 *
 * @module
 */

import { isAbortError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type FleetEvents, NO_EVENTS } from "../metrics/events.ts";
import {
  ProviderError,
  ProviderTimeoutError,
  ProviderUnreachableError,
  RateLimitError,
  UpstreamError,
} from "./errors.ts";
import { resolveModel } from "./route.ts";
import type { CallOptions, Chunk, CompletionRequest, Provider } from "./types.ts";

/** Options of {@linkcode withFallbacks}. */
export interface FallbackOptions {
  /** Fallbacks are reported here. */
  events?: FleetEvents;
  /** Each fallback is logged here. */
  log?: Logger;
}

/** Failures after which the next model may answer (before the first chunk). */
export function fallsBack(error: unknown): boolean {
  if (error instanceof RateLimitError) return true;
  if (error instanceof UpstreamError) {
    return error.status === 429 || error.status === 503 || error.status === 529 ||
      error.status >= 500;
  }
  if (error instanceof ProviderTimeoutError) {
    return error.phase === "connect" || error.phase === "first-token";
  }
  return error instanceof ProviderUnreachableError;
}

/**
 * Wraps each of `providers` that has a model in `fallbacks`; fallback
 * targets are resolved among `providers` as given (unwrapped), so chains do
 * not loop. Unknown names in `fallbacks` fail here, at start.
 */
export function withFallbacks(
  providers: readonly Provider[],
  fallbacks: Record<string, string[]>,
  options: FallbackOptions = {},
): Provider[] {
  const events = options.events ?? NO_EVENTS;
  const log = options.log ?? (() => {});
  const chains = new Map<
    string,
    Map<string, { provider: Provider; model: string; name: string }[]>
  >();
  for (const [from, to] of Object.entries(fallbacks)) {
    const source = resolveModel(from, providers);
    const targets = to.map((name) => ({ ...resolveModel(name, providers), name }));
    let byModel = chains.get(source.provider.id);
    if (!byModel) chains.set(source.provider.id, byModel = new Map());
    byModel.set(source.model, targets);
  }

  return providers.map((provider) => {
    const byModel = chains.get(provider.id);
    if (!byModel) return provider;

    function retarget<R extends CompletionRequest>(
      request: R,
      step: { provider: Provider; model: string },
    ): R {
      const moved = { ...request, model: step.model };
      if (step.provider.type !== provider.type) {
        delete moved.keepAlive;
        delete moved.providerOptions;
      }
      return moved;
    }

    async function* complete<R extends CompletionRequest>(
      request: R,
      call: { options?: CallOptions; run: (p: Provider, r: R) => AsyncIterable<Chunk> },
    ): AsyncGenerator<Chunk> {
      const options = call.options;
      const chain = byModel!.get(request.model);
      const steps = [
        { provider, model: request.model, name: `${provider.id}/${request.model}` },
        ...(chain ?? []),
      ];
      let last: unknown;
      for (const [i, step] of steps.entries()) {
        if (i > 0) {
          events.fallback(provider.id);
          log(
            "info",
            `${steps[0].name} could not answer (${
              (last as Error).message
            }); falling back to ${step.name}`,
          );
        }
        const r = i === 0 ? request : retarget(request, step);
        let started = false;
        try {
          for await (const chunk of call.run(step.provider, r)) {
            started = true;
            // The answer names the model that gave it.
            yield chunk.type === "done" && i > 0
              ? { type: "done", result: { ...chunk.result, model: step.name } }
              : chunk;
          }
          return;
        } catch (error) {
          if (
            started || isAbortError(error) || options?.signal?.aborted ||
            !(error instanceof ProviderError) || !fallsBack(error) || i === steps.length - 1
          ) throw error;
          last = error;
        }
      }
    }

    return {
      ...provider,
      generate: (request, o) => complete(request, { options: o, run: (p, r) => p.generate(r, o) }),
      chat: (request, o) => complete(request, { options: o, run: (p, r) => p.chat(r, o) }),
    };
  });
}
