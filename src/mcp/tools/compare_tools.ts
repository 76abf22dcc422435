/**
 * `ai_compare`: one prompt (or conversation) to 2 to 8 models at once, named
 * `provider/model`, so a user can pick the best one. The models run
 * concurrently (the call takes as long as the slowest, not the sum); with a
 * progress token each model's text streams as progress tagged with
 * `_meta.model`, on one strictly increasing `progress` sequence for the
 * whole call. A model that fails gets an `error` instead of a result while
 * the others still answer; the call is an error only when every model
 * failed. Cancelling aborts every upstream call.
 *
 * @module
 */

import { z } from "zod";
import { isAbortError, RuneError } from "../../errors.ts";
import { resolveModel } from "../../providers/route.ts";
import type { Provider } from "../../providers/types.ts";
import {
  COMPARE_MODELS,
  type CompareEntry,
  compareEntry,
  roundMs,
} from "../../providers/compare_entry.ts";
import { createProgressCounter } from "../progress.ts";
import { relay } from "../relay.ts";
import { toChatRequest, toGenerateRequest } from "./mapping.ts";
import type { Register } from "./register.ts";
import { type ChatArgs, type GenerateArgs, INPUTS, optionsSchema, usageSchema } from "./schemas.ts";

const compareInput: z.ZodRawShape = {
  prompt: z.string().optional().describe("The prompt (or give messages)."),
  messages: (INPUTS.router.chat.messages as z.ZodTypeAny).optional().describe(
    "A conversation instead of a prompt, oldest first.",
  ),
  models: z.array(z.string().min(1)).min(COMPARE_MODELS.min).max(COMPARE_MODELS.max).describe(
    'The models to compare, 2 to 8, each as "<provider>/<model>" (a bare name means Ollama).',
  ),
  system: z.string().optional().describe("System prompt for every model."),
  options: optionsSchema.optional(),
};

const resultSchema = z.object({
  model: z.string(),
  response: z.string(),
  thinking: z.string().optional(),
  done_reason: z.string().optional(),
  ttft_ms: z.number().optional().describe("Time to the first token, in milliseconds."),
  total_ms: z.number().describe("Time to the whole answer (or the failure), in milliseconds."),
  tokens_per_second: z.number().optional().describe("Generated tokens per second after the first."),
  usage: usageSchema,
  error: z.string().optional().describe("Why this model gave no answer."),
});

const compareOutput: z.ZodRawShape = { results: z.array(resultSchema) };

type CompareArgs = {
  prompt?: string;
  messages?: ChatArgs["messages"];
  models: string[];
  system?: string;
  options?: GenerateArgs["options"];
};

/** Registers `ai_compare` over `providers`. */
export function registerCompareTool(providers: readonly Provider[], register: Register): void {
  register("ai_compare", {
    title: "Compare models",
    description:
      'Sends one prompt (or conversation) to 2 to 8 models at once, named "<provider>/<model>", and returns each answer with its time to first token, total time, tokens per second and token usage. With a progress token, each model\'s text streams as progress notifications tagged with _meta.model.',
    input: compareInput,
    output: compareOutput,
    annotations: { readOnlyHint: true, openWorldHint: false },
    long: true,
  }, async (raw, ctx) => {
    const args = raw as unknown as CompareArgs;
    if ((args.prompt === undefined) === (args.messages === undefined)) {
      throw new RuneError(
        'Give either "prompt" or "messages" to compare, not both and not neither.',
      );
    }
    const counter = createProgressCounter();
    const started = performance.now();
    const results = await Promise.all(args.models.map(async (name): Promise<CompareEntry> => {
      let firstAt: number | undefined;
      try {
        const { provider, model } = resolveModel(name, providers);
        const chunks = args.messages
          ? provider.chat(
            toChatRequest({
              model,
              messages: args.system
                ? [{ role: "system", content: args.system }, ...args.messages]
                : args.messages,
              options: args.options,
            }),
            { signal: ctx.mcpReq.signal },
          )
          : provider.generate(
            toGenerateRequest({
              model,
              prompt: args.prompt!,
              system: args.system,
              options: args.options,
            }),
            { signal: ctx.mcpReq.signal },
          );
        const result = await relay(chunks, ctx, {
          counter,
          meta: { model: name },
          onFirstToken: () => (firstAt = performance.now()),
        });
        return compareEntry(name, result, { started, firstAt, ended: performance.now() });
      } catch (error) {
        // A cancel ends the whole call; a bug is not one model's failure.
        if (isAbortError(error) || ctx.mcpReq.signal.aborted || !(error instanceof RuneError)) {
          throw error;
        }
        return {
          model: name,
          response: "",
          total_ms: roundMs(performance.now() - started),
          usage: {},
          error: error.message,
        };
      }
    }));
    const failed = results.filter((r) => r.error !== undefined).length;
    const text = results.map((r) =>
      r.error !== undefined
        ? `## ${r.model}\nerror: ${r.error}`
        : `## ${r.model} (${r.ttft_ms ?? "?"} ms to first token, ${r.total_ms} ms in all${
          r.tokens_per_second ? `, ${r.tokens_per_second} tokens/s` : ""
        })\n${r.response}`
    ).join("\n\n");
    return {
      content: [{ type: "text", text }],
      structuredContent: { results },
      ...(failed === results.length && { isError: true }),
    };
  });
}
