/**
 * Input and output schemas of the MCP tools, and the mapping between tool
 * arguments and the provider-neutral request types.
 *
 * Argument names follow Ollama's API (`num_predict`, `num_ctx`, `top_p`)
 * because the tool names say which provider they address; the provider
 * interface underneath stays neutral.
 *
 * @module
 */

import { z } from "zod";
import type {
  ChatRequest,
  EmbedResult,
  FinalResult,
  GenerateRequest,
  Message,
  ModelInfo,
  ModelOptions,
  ToolDefinition,
} from "../providers/types.ts";

/** Sampling options accepted by generate and chat. */
export const optionsSchema = z.object({
  temperature: z.number().min(0).max(100).optional().describe("Sampling temperature."),
  top_p: z.number().min(0).max(1).optional().describe("Nucleus sampling cut-off."),
  top_k: z.number().int().min(0).optional().describe("Top-k sampling cut-off."),
  seed: z.number().int().optional().describe("Seed for reproducible output."),
  num_predict: z.number().int().optional().describe(
    "Maximum number of tokens to generate (-1: no limit).",
  ),
  stop: z.array(z.string()).optional().describe("Sequences that stop generation."),
  num_ctx: z.number().int().positive().optional().describe("Context window size in tokens."),
}).strict();

const formatSchema = z.union([z.literal("json"), z.record(z.string(), z.unknown())]).describe(
  '"json" for any JSON output, or a JSON Schema object the output must match.',
);

const keepAliveSchema = z.union([z.string().min(1), z.number()]).describe(
  'How long the model stays loaded after the call, e.g. "10m", or seconds (0 unloads it).',
);

const modelSchema = z.string().min(1).describe('Model name, e.g. "llama3.2" or "qwen3:8b".');

const imagesSchema = z.array(z.string().min(1)).describe(
  "Base64-encoded images (PNG or JPEG), for vision models.",
);

/** Input of `ai_<provider>_generate`. */
export const generateInput = {
  model: modelSchema,
  prompt: z.string().describe("The prompt."),
  system: z.string().optional().describe("System prompt."),
  images: imagesSchema.optional(),
  format: formatSchema.optional(),
  options: optionsSchema.optional(),
  think: z.boolean().optional().describe("Ask a thinking model for separate reasoning."),
  keep_alive: keepAliveSchema.optional(),
};

const toolCallSchema = z.object({
  function: z.object({
    name: z.string(),
    arguments: z.record(z.string(), z.unknown()),
  }),
});

const messageSchema = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string(),
  images: imagesSchema.optional(),
  tool_calls: z.array(toolCallSchema).optional(),
  tool_name: z.string().optional().describe("For role tool: which tool produced this result."),
  thinking: z.string().optional(),
});

const chatToolSchema = z.object({
  type: z.literal("function").default("function"),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional().describe(
      "JSON Schema of the arguments.",
    ),
  }),
});

/** Input of `ai_<provider>_chat`. */
export const chatInput = {
  model: modelSchema,
  messages: z.array(messageSchema).min(1).describe("The conversation so far, oldest first."),
  tools: z.array(chatToolSchema).optional().describe("Functions the model may call."),
  format: formatSchema.optional(),
  options: optionsSchema.optional(),
  think: z.boolean().optional().describe("Ask a thinking model for separate reasoning."),
  keep_alive: keepAliveSchema.optional(),
};

/** Input of `ai_<provider>_embed`. */
export const embedInput = {
  model: modelSchema.describe('Embedding model name, e.g. "nomic-embed-text".'),
  input: z.union([z.string(), z.array(z.string()).min(1)]).describe(
    "A text, or an array of texts to embed in one batch.",
  ),
};

const usageSchema = z.object({
  prompt_tokens: z.number().optional(),
  completion_tokens: z.number().optional(),
  total_ms: z.number().optional(),
  load_ms: z.number().optional(),
  prompt_ms: z.number().optional(),
  generation_ms: z.number().optional(),
});

const modelInfoSchema = z.object({
  name: z.string(),
  size: z.number().optional(),
  family: z.string().optional(),
  parameter_size: z.string().optional(),
  quantization: z.string().optional(),
  modified_at: z.string().optional(),
  loaded: z.boolean().describe("Whether the model is in memory now (answers without a load)."),
  expires_at: z.string().optional().describe("When a loaded model will be unloaded."),
  capabilities: z.array(z.string()).optional().describe(
    'What the model can do ("completion", "streaming", "vision", "tools", "embeddings", ' +
      '"thinking"), when the provider lists it; "completion" means it can generate text.',
  ),
});

/** Output of `ai_<provider>_list_models`. */
export const listModelsOutput = { models: z.array(modelInfoSchema) };

/** Output of `ai_<provider>_generate`. */
export const generateOutput = {
  model: z.string(),
  response: z.string(),
  thinking: z.string().optional(),
  done_reason: z.string(),
  usage: usageSchema,
};

/** Output of `ai_<provider>_chat`. */
export const chatOutput = {
  model: z.string(),
  message: z.object({
    role: z.literal("assistant"),
    content: z.string(),
    thinking: z.string().optional(),
    tool_calls: z.array(toolCallSchema).optional(),
  }),
  done_reason: z.string(),
  usage: usageSchema,
};

/** Output of `ai_<provider>_embed`. */
export const embedOutput = {
  model: z.string(),
  embeddings: z.array(z.array(z.number())),
  dimensions: z.number().int(),
  usage: usageSchema,
};

type Options = z.infer<typeof optionsSchema>;

function toModelOptions(options: Options | undefined): ModelOptions | undefined {
  if (!options) return undefined;
  return {
    temperature: options.temperature,
    topP: options.top_p,
    topK: options.top_k,
    seed: options.seed,
    maxTokens: options.num_predict,
    stop: options.stop,
    contextLength: options.num_ctx,
  };
}

const generateSchema = z.object(generateInput);
const chatSchema = z.object(chatInput);

/** Maps validated generate arguments to a provider request. */
export function toGenerateRequest(args: z.infer<typeof generateSchema>): GenerateRequest {
  return {
    model: args.model,
    prompt: args.prompt,
    system: args.system,
    images: args.images,
    format: args.format,
    options: toModelOptions(args.options),
    think: args.think,
    keepAlive: args.keep_alive,
  };
}

/** Maps validated chat arguments to a provider request. */
export function toChatRequest(args: z.infer<typeof chatSchema>): ChatRequest {
  const messages: Message[] = args.messages.map((m) => ({
    role: m.role,
    content: m.content,
    images: m.images,
    thinking: m.thinking,
    toolName: m.tool_name,
    toolCalls: m.tool_calls?.map((c) => ({
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
    model: args.model,
    messages,
    tools,
    format: args.format,
    options: toModelOptions(args.options),
    think: args.think,
    keepAlive: args.keep_alive,
  };
}

function usageOut(usage: FinalResult["usage"]): z.infer<typeof usageSchema> {
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

/** Structured content of a list_models result. */
export function listModelsContent(
  models: ModelInfo[],
): { models: z.infer<typeof modelInfoSchema>[] } {
  return {
    models: models.map((m) =>
      jsonFields({
        name: m.name,
        size: m.size,
        family: m.family,
        parameter_size: m.parameterSize,
        quantization: m.quantization,
        modified_at: m.modifiedAt,
        loaded: m.loaded !== undefined,
        expires_at: m.loaded?.expiresAt,
        capabilities: m.capabilities &&
          Object.entries(m.capabilities).filter(([, on]) => on).map(([name]) => name),
      })
    ),
  };
}

/** Structured content of a generate result. */
export function generateContent(result: FinalResult): Record<string, unknown> {
  return {
    model: result.model,
    response: result.text,
    ...(result.thinking && { thinking: result.thinking }),
    done_reason: result.doneReason,
    usage: usageOut(result.usage),
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
          function: { name: c.name, arguments: c.arguments },
        })),
      }),
    },
    done_reason: result.doneReason,
    usage: usageOut(result.usage),
  };
}

/** Structured content of an embed result. */
export function embedContent(result: EmbedResult): Record<string, unknown> {
  return {
    model: result.model,
    embeddings: result.embeddings,
    dimensions: result.embeddings[0]?.length ?? 0,
    usage: usageOut(result.usage),
  };
}
