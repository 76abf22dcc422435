/**
 * The tools of one provider: `ai_<id>_list_models`, `ai_<id>_generate`,
 * `ai_<id>_chat`, and `ai_<id>_embed` when the provider has embeddings.
 *
 * @module
 */

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

/** Registers `provider`'s tools. */
export function registerProviderTools(provider: Provider, register: Register): void {
  const { id, label } = provider;
  const inputs = INPUTS[provider.type === "ollama" ? "ollama" : "provider"];
  const capabilities = provider.capabilities();

  register(`ai_${id}_list_models`, {
    title: `List ${label} models`,
    description:
      `Lists the models ${label} offers, with size, family, parameter size and quantization where known.`,
    input: NO_INPUT,
    output: listModelsOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async (_args, ctx) => {
    const models = await provider.listModels({ signal: ctx.mcpReq.signal });
    const structured = { models: models.map((m) => modelContent(m)) };
    const lines = structured.models.map((m) =>
      [m.name, m.parameter_size, m.quantization, m.family, m.loaded && "(loaded)"].filter(Boolean)
        .join("  ")
    );
    return {
      content: [{
        type: "text",
        text: lines.length ? lines.join("\n") : `${label} lists no models.`,
      }],
      structuredContent: structured,
    };
  });

  register(`ai_${id}_generate`, {
    title: `Generate with ${label}`,
    description:
      `Completes a prompt with a ${label} model. Streams the text as progress notifications when the request carries a progress token. Supports a system prompt, images for vision models, JSON or JSON-Schema output, sampling options and thinking.`,
    input: inputs.generate,
    output: generateOutput,
    annotations: { readOnlyHint: true, openWorldHint: false },
    long: true,
  }, async (args, ctx) => {
    const request = toGenerateRequest(args as unknown as GenerateArgs);
    const result = await relay(provider.generate(request, { signal: ctx.mcpReq.signal }), ctx);
    return {
      content: [{ type: "text", text: result.text }],
      structuredContent: generateContent(result),
    };
  });

  register(`ai_${id}_chat`, {
    title: `Chat with ${label}`,
    description:
      `Continues a conversation with a ${label} model and returns the assistant's reply, including any tool calls. Streams the text as progress notifications when the request carries a progress token.`,
    input: inputs.chat,
    output: chatOutput,
    annotations: { readOnlyHint: true, openWorldHint: false },
    long: true,
  }, async (args, ctx) => {
    const request = toChatRequest(args as unknown as ChatArgs);
    const result = await relay(provider.chat(request, { signal: ctx.mcpReq.signal }), ctx);
    return {
      content: [{ type: "text", text: chatText(result) }],
      structuredContent: chatContent(result),
    };
  });

  if (!capabilities.embeddings) return;
  register(`ai_${id}_embed`, {
    title: `Embed with ${label}`,
    description:
      `Computes embeddings for one text or a batch of texts with a ${label} embedding model.`,
    input: inputs.embed,
    output: embedOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async (args, ctx) => {
    const request = toEmbedRequest(args as unknown as EmbedArgs);
    const result = await provider.embed(request, { signal: ctx.mcpReq.signal });
    const structured = embedContent(result);
    return {
      content: [{
        type: "text",
        text:
          `${result.embeddings.length} embedding(s) of ${structured.dimensions} dimensions from ${result.model}:\n${
            JSON.stringify(result.embeddings)
          }`,
      }],
      structuredContent: structured,
    };
  });
}
