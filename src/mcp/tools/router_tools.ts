/**
 * The router tool set: `ai_list_models`, `ai_generate`, `ai_chat` and
 * `ai_embed`, one set for every provider, which clients with many providers
 * prefer (fewer tools in the model's context). A model is named
 * `"<provider id>/<model name>"`, split at the first `/` (the model name may
 * contain `/` and `:`); a bare name means Ollama, as on the command line.
 *
 * @module
 */

import { RuneError } from "../../errors.ts";
import { resolveModel } from "../../providers/route.ts";
import type { Provider } from "../../providers/types.ts";
import { relay } from "../relay.ts";
import {
  chatContent,
  chatText,
  embedContent,
  generateContent,
  modelContent,
  toChatRequest,
  toEmbedRequest,
  toGenerateRequest,
} from "./mapping.ts";
import type { Register } from "./register.ts";
import {
  type ChatArgs,
  chatOutput,
  type EmbedArgs,
  embedOutput,
  type GenerateArgs,
  generateOutput,
  INPUTS,
  listModelsOutput,
  NO_INPUT,
} from "./schemas.ts";

/** Registers the router tools over `providers`. */
export function registerRouterTools(providers: readonly Provider[], register: Register): void {
  const ids = providers.map((p) => p.id).join(", ");

  register("ai_list_models", {
    title: "List all models",
    description:
      `Lists the models of every configured provider (${ids}), each named "<provider>/<model>" as ai_generate, ai_chat and ai_embed take it.`,
    input: NO_INPUT,
    output: listModelsOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async (_args, ctx) => {
    // Every provider at once; one that fails is reported beside the others' models.
    const listed = await Promise.allSettled(
      providers.map((p) => p.listModels({ signal: ctx.mcpReq.signal })),
    );
    const models: Record<string, unknown>[] = [];
    const errors: { provider: string; error: string }[] = [];
    listed.forEach((outcome, i) => {
      const id = providers[i].id;
      if (outcome.status === "fulfilled") {
        for (const model of outcome.value) models.push(modelContent(model, id));
      } else {
        const error = outcome.reason;
        if (!(error instanceof RuneError)) throw error;
        errors.push({ provider: id, error: error.message });
      }
    });
    const lines = [
      ...models.map((m) =>
        [m.name, m.parameter_size, m.quantization, m.loaded && "(loaded)"].filter(Boolean)
          .join("  ")
      ),
      ...errors.map((e) => `${e.provider}: ${e.error}`),
    ];
    return {
      content: [{ type: "text", text: lines.length ? lines.join("\n") : "No models." }],
      structuredContent: { models, ...(errors.length && { errors }) },
      ...(models.length === 0 && errors.length > 0 && { isError: true }),
    };
  });

  register("ai_generate", {
    title: "Generate with any model",
    description:
      `Completes a prompt with any configured model, named "<provider>/<model>" (providers: ${ids}). Streams the text as progress notifications when the request carries a progress token.`,
    input: INPUTS.router.generate,
    output: generateOutput,
    annotations: { readOnlyHint: true, openWorldHint: false },
    long: true,
  }, async (args, ctx) => {
    const { provider, model } = resolveModel(args.model as string, providers);
    const request = toGenerateRequest(args as unknown as GenerateArgs, model);
    const result = await relay(provider.generate(request, { signal: ctx.mcpReq.signal }), ctx);
    return {
      content: [{ type: "text", text: result.text }],
      structuredContent: generateContent(result),
    };
  });

  register("ai_chat", {
    title: "Chat with any model",
    description:
      `Continues a conversation with any configured model, named "<provider>/<model>" (providers: ${ids}), including tool calls. Streams the text as progress notifications when the request carries a progress token.`,
    input: INPUTS.router.chat,
    output: chatOutput,
    annotations: { readOnlyHint: true, openWorldHint: false },
    long: true,
  }, async (args, ctx) => {
    const { provider, model } = resolveModel(args.model as string, providers);
    const request = toChatRequest(args as unknown as ChatArgs, model);
    const result = await relay(provider.chat(request, { signal: ctx.mcpReq.signal }), ctx);
    return {
      content: [{ type: "text", text: chatText(result) }],
      structuredContent: chatContent(result),
    };
  });

  const embedders = providers.filter((p) => p.capabilities().embeddings);
  if (embedders.length === 0) return;
  register("ai_embed", {
    title: "Embed with any model",
    description:
      `Computes embeddings with any configured embedding model, named "<provider>/<model>" (providers with embeddings: ${
        embedders.map((p) => p.id).join(", ")
      }).`,
    input: INPUTS.router.embed,
    output: embedOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async (args, ctx) => {
    const { provider, model } = resolveModel(args.model as string, providers);
    if (!provider.capabilities().embeddings) {
      throw new RuneError(
        `${provider.label} (provider "${provider.id}") has no embeddings: use one of ${
          embedders.map((p) => p.id).join(", ")
        }.`,
      );
    }
    const result = await provider.embed(toEmbedRequest(args as unknown as EmbedArgs, model), {
      signal: ctx.mcpReq.signal,
    });
    const structured = embedContent(result);
    return {
      content: [{
        type: "text",
        text:
          `${result.embeddings.length} embedding(s) of ${structured.dimensions} dimensions from ${provider.id}/${result.model}:\n${
            JSON.stringify(result.embeddings)
          }`,
      }],
      structuredContent: structured,
    };
  });
}
