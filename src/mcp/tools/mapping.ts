/**
 * Between tool arguments and the provider-neutral request types, and from
 * results back to `structuredContent`. The shapes of `structuredContent`
 * are a contract every provider's tools share (see README).
 *
 * @module
 */

import { toImage } from "../../providers/images.ts";
import type {
  ChatRequest,
  EmbedRequest,
  EmbedResult,
  FinalResult,
  GenerateRequest,
  Message,
  ModelInfo,
  ModelOptions,
  ToolDefinition,
  Usage,
} from "../../providers/types.ts";
import type { ChatArgs, EmbedArgs, GenerateArgs, ToolOptions } from "./schemas.ts";

function toModelOptions(options: ToolOptions | undefined): ModelOptions | undefined {
  if (!options) return undefined;
  return {
    temperature: options.temperature,
    topP: options.top_p,
    topK: options.top_k,
    seed: options.seed,
    // Ollama's names are aliases; the neutral name wins when both are given.
    maxTokens: options.max_tokens ?? options.num_predict,
    stop: options.stop,
    contextLength: options.context_length ?? options.num_ctx,
  };
}

/** Maps validated generate arguments to a provider request for `model`. */
export function toGenerateRequest(args: GenerateArgs, model = args.model): GenerateRequest {
  return {
    model,
    prompt: args.prompt,
    system: args.system,
    images: args.images?.map(toImage),
    format: args.format,
    options: toModelOptions(args.options),
    think: args.think,
    keepAlive: args.keep_alive,
    providerOptions: args.provider_options,
    ...(args.cache !== undefined && { cache: args.cache }),
  };
}

/** Maps validated chat arguments to a provider request for `model`. */
export function toChatRequest(args: ChatArgs, model = args.model): ChatRequest {
  const messages: Message[] = args.messages.map((m) => ({
    role: m.role,
    content: m.content,
    images: m.images?.map(toImage),
    thinking: m.thinking,
    toolName: m.tool_name,
    toolCallId: m.tool_call_id,
    toolCalls: m.tool_calls?.map((c) => ({
      ...(c.id !== undefined && { id: c.id }),
      name: c.function.name,
      arguments: c.function.arguments,
    })),
  }));
  const tools: ToolDefinition[] | undefined = args.tools?.map((t) => ({
    name: t.function.name,
    description: t.function.description,
    parameters: t.function.parameters,
  }));
  return {
    model,
    messages,
    tools,
    format: args.format,
    options: toModelOptions(args.options),
    think: args.think,
    keepAlive: args.keep_alive,
    providerOptions: args.provider_options,
    ...(args.cache !== undefined && { cache: args.cache }),
  };
}

/** Maps validated embed arguments to a provider request for `model`. */
export function toEmbedRequest(args: EmbedArgs, model = args.model): EmbedRequest {
  return { model, input: args.input, providerOptions: args.provider_options };
}

function usageOut(usage: Usage): Record<string, number | undefined> {
  return jsonFields({
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_ms: usage.totalMs,
    load_ms: usage.loadMs,
    prompt_ms: usage.promptMs,
    generation_ms: usage.generationMs,
  });
}

/**
 * What a JSON round trip makes of a flat record of scalars (undefined
 * fields dropped, non-finite numbers as null) without serializing it: this
 * runs for every call's result.
 */
function jsonFields<T extends Record<string, unknown>>(record: T): T {
  const out: Record<string, unknown> = {};
  for (const key in record) {
    const value = record[key];
    if (value === undefined) continue;
    out[key] = typeof value === "number" && !Number.isFinite(value) ? null : value;
  }
  return out as T;
}

/** One listed model; `provider` is set for the router listing (names then carry the prefix). */
export function modelContent(model: ModelInfo, provider?: string): Record<string, unknown> {
  return jsonFields({
    name: provider === undefined ? model.name : `${provider}/${model.name}`,
    provider,
    size: model.size,
    family: model.family,
    parameter_size: model.parameterSize,
    quantization: model.quantization,
    modified_at: model.modifiedAt,
    loaded: model.loaded !== undefined,
    expires_at: model.loaded?.expiresAt,
    capabilities: model.capabilities &&
      Object.entries(model.capabilities).filter(([, on]) => on).map(([name]) => name),
    hosts: model.hosts,
  });
}

/** Structured content of a generate result. */
export function generateContent(result: FinalResult): Record<string, unknown> {
  return {
    model: result.model,
    response: result.text,
    ...(result.thinking && { thinking: result.thinking }),
    done_reason: result.doneReason,
    usage: usageOut(result.usage),
    ...(result.cached && { cached: true }),
  };
}

/** Structured content of a chat result. */
export function chatContent(result: FinalResult): Record<string, unknown> {
  return {
    model: result.model,
    message: {
      role: "assistant",
      content: result.text,
      ...(result.thinking && { thinking: result.thinking }),
      ...(result.toolCalls.length && {
        tool_calls: result.toolCalls.map((c) => ({
          ...(c.id !== undefined && { id: c.id }),
          function: { name: c.name, arguments: c.arguments },
        })),
      }),
    },
    done_reason: result.doneReason,
    usage: usageOut(result.usage),
    ...(result.cached && { cached: true }),
  };
}

/** The text content of a chat result: the reply, then one line per tool call. */
export function chatText(result: FinalResult): string {
  const calls = result.toolCalls.map((c) => `Tool call: ${c.name}(${JSON.stringify(c.arguments)})`);
  return [result.text, ...calls].filter(Boolean).join("\n");
}

/** Structured content of an embed result. */
export function embedContent(result: EmbedResult): Record<string, unknown> {
  return {
    model: result.model,
    embeddings: result.embeddings,
    dimensions: result.embeddings[0]?.length ?? 0,
    usage: usageOut(result.usage),
    ...(result.cached && { cached: true }),
  };
}
