/**
 * One model's line of a comparison, shared by the `ai_compare` tool and
 * `rune ai compare`: its answer, timings measured by the caller, and tokens
 * per second from the provider's usage. No schema library here, so the CLI
 * can use it without loading zod.
 *
 * @module
 */

import type { FinalResult } from "./types.ts";

/** Fewest and most models one comparison takes. */
export const COMPARE_MODELS = { min: 2, max: 8 } as const;

/** One model's line of the result (the `ai_compare` tool's entry). */
export interface CompareEntry {
  /** The model as asked (`provider/model`, or a bare Ollama name). */
  model: string;
  /** The whole answer ("" when the model failed). */
  response: string;
  /** The whole reasoning, from thinking models. */
  thinking?: string;
  /** Why generation stopped. */
  done_reason?: string;
  /** Time to the first token, in milliseconds. */
  ttft_ms?: number;
  /** Time to the whole answer (or the failure), in milliseconds. */
  total_ms: number;
  /** Generated tokens per second after the first. */
  tokens_per_second?: number;
  /** Token counts. */
  usage: { prompt_tokens?: number; completion_tokens?: number };
  /** Why this model gave no answer. */
  error?: string;
}

/** When a model's call started, produced its first token, and ended (`performance.now()`). */
export interface CompareTimings {
  /** The call started. */
  started: number;
  /** The first text or thinking arrived; absent when none did. */
  firstAt?: number;
  /** The call ended. */
  ended: number;
}

/** Milliseconds to one decimal. */
export function roundMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/**
 * The entry of a model that answered: timings as measured, tokens per
 * second from the provider's own generation time when it reports one,
 * else from the first token to the end.
 */
export function compareEntry(
  model: string,
  result: FinalResult,
  timings: CompareTimings,
): CompareEntry {
  const { started, firstAt, ended } = timings;
  const tokens = result.usage.completionTokens;
  const generating = result.usage.generationMs ??
    (firstAt !== undefined ? ended - firstAt : undefined);
  const usage: CompareEntry["usage"] = {};
  if (result.usage.promptTokens !== undefined) usage.prompt_tokens = result.usage.promptTokens;
  if (tokens !== undefined) usage.completion_tokens = tokens;
  return {
    model,
    response: result.text,
    ...(result.thinking && { thinking: result.thinking }),
    done_reason: result.doneReason,
    ...(firstAt !== undefined && { ttft_ms: roundMs(firstAt - started) }),
    total_ms: roundMs(ended - started),
    ...(tokens !== undefined && generating !== undefined && generating > 0 &&
      { tokens_per_second: roundMs(tokens / (generating / 1000)) }),
    usage,
  };
}
