/**
 * Input and output schemas of the MCP tools, shared by every provider's
 * tools and the router tools.
 *
 * Argument names are provider-neutral (`max_tokens`, `context_length`) on
 * every tool; the `ai_ollama_*` tools also keep Ollama's `num_predict` and
 * `num_ctx` (their existing contract) and check `keep_alive` as Ollama does.
 * Values Rune passes on upstream as they are (a JSON Schema, tool-call
 * arguments, `provider_options`) are bounded in depth and size, so
 * serialising them stays cheap. Each shape is built once: the SDK compiles
 * one validator per schema object, and every session shares it.
 *
 * @module
 */

import { z } from "zod";
import { GO_DURATION_PATTERN, goDurationError } from "../../providers/ollama/mod.ts";

/** Deepest nesting accepted in a JSON value passed on upstream (a schema, tool-call arguments). */
export const MAX_PASSTHROUGH_DEPTH = 32;
/** Most values (array elements and object members) in one such JSON value. */
export const MAX_PASSTHROUGH_VALUES = 10_000;

/**
 * Measures a JSON value iteratively (a deep value cannot overflow the stack)
 * and returns what exceeds the passthrough bounds, if anything.
 */
function passthroughProblem(value: unknown): string | undefined {
  const stack: [unknown, number][] = [[value, 1]];
  let values = 0;
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== "object" || item === null) continue;
    if (depth > MAX_PASSTHROUGH_DEPTH) return `nests deeper than ${MAX_PASSTHROUGH_DEPTH} levels`;
    const children = Array.isArray(item) ? item : Object.values(item);
    values += children.length;
    if (values > MAX_PASSTHROUGH_VALUES) return `holds more than ${MAX_PASSTHROUGH_VALUES} values`;
    for (const child of children) stack.push([child, depth + 1]);
  }
  return undefined;
}

/** A JSON object Rune passes on upstream as it is, within the passthrough bounds. */
const passthroughObject = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const problem = passthroughProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: `the object ${problem}` });
});

const neutralOptions = {
  temperature: z.number().min(0).max(100).optional().describe("Sampling temperature."),
  top_p: z.number().min(0).max(1).optional().describe("Nucleus sampling cut-off."),
  top_k: z.number().int().min(0).optional().describe("Top-k sampling cut-off."),
  seed: z.number().int().optional().describe("Seed for reproducible output."),
  max_tokens: z.number().int().optional().describe("Maximum number of tokens to generate."),
  stop: z.array(z.string()).optional().describe("Sequences that stop generation."),
  context_length: z.number().int().positive().optional().describe(
    "Context window size in tokens (where the provider lets you set it).",
  ),
};

/** Sampling options of every provider's tools and the router tools. */
export const optionsSchema = z.object(neutralOptions).strict();

/** Sampling options of the `ai_ollama_*` tools: the neutral ones plus Ollama's names. */
export const ollamaOptionsSchema = z.object({
  ...neutralOptions,
  num_predict: z.number().int().optional().describe(
    "Maximum number of tokens to generate (-1: no limit); Ollama's name for max_tokens.",
  ),
  num_ctx: z.number().int().positive().optional().describe(
    "Context window size in tokens; Ollama's name for context_length.",
  ),
}).strict();

/** The options a tool accepted (either schema). */
export type ToolOptions = z.infer<typeof ollamaOptionsSchema>;

const formatSchema = z.union([z.literal("json"), passthroughObject]).describe(
  '"json" for any JSON output, or a JSON Schema object the output must match.',
);

/** `keep_alive` as Ollama takes it: a Go duration string or a number of seconds. */
const ollamaKeepAlive = z.union([
  // Ollama answers 400 for strings Go's time.ParseDuration rejects: refuse them here, in Go's words.
  z.string().refine((value) => goDurationError(value) === undefined, {
    error: (issue) =>
      `${goDurationError(String(issue.input))}: use a duration such as "10m", "1h30m" or "0"`,
  }).meta({ pattern: GO_DURATION_PATTERN }),
  z.number(),
]).describe(
  'How long the model stays loaded after the call: a duration such as "10m" or "1h30m", or seconds (0 unloads it, negative keeps it loaded).',
);

/** `keep_alive` on other tools: providers that cannot honour it refuse it by name. */
const keepAlive = z.union([z.string().min(1), z.number()]).describe(
  'How long a local model stays loaded after the call ("10m", or seconds); only for providers that load models (Ollama).',
);

const thinkSchema = z.union([z.boolean(), z.number().int().min(0)]).describe(
  "Ask a thinking model for separate reasoning: true/false, or a budget of reasoning tokens.",
);

const providerOptions = passthroughObject.describe(
  "Provider-specific request fields, passed through unchanged.",
);

const imagesSchema = z.array(z.string().min(1)).describe(
  "Images for vision models: base64 (PNG, JPEG, GIF or WebP) or data: URLs.",
);

const toolCallSchema = z.object({
  id: z.string().optional().describe("The call's id; a tool result names it in tool_call_id."),
  function: z.object({
    name: z.string(),
    arguments: passthroughObject,
  }),
});

const messageSchema = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string(),
  images: imagesSchema.optional(),
  tool_calls: z.array(toolCallSchema).optional(),
  tool_call_id: z.string().optional().describe(
    "For role tool: the id of the call this is the result of (required by Anthropic and OpenAI).",
  ),
  tool_name: z.string().optional().describe("For role tool: which tool produced this result."),
  thinking: z.string().optional(),
});

const chatToolSchema = z.object({
  type: z.literal("function").default("function"),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: passthroughObject.optional().describe("JSON Schema of the arguments."),
  }),
});

/** `cache: true`: keep and reuse this result even when the call is not deterministic. */
const cacheArgument = z.boolean().optional().describe(
  "Reuse an identical earlier answer, and keep this one for reuse, even though the call is not " +
    "deterministic (calls with temperature 0 and a seed are cached anyway).",
);

/** Which family of tools a shape is for. */
export type Flavor = "ollama" | "provider" | "router";

function modelSchema(flavor: Flavor) {
  return z.string().min(1).describe(
    flavor === "router"
      ? 'The model as "<provider id>/<model name>", e.g. "ollama/llama3.2" or "anthropic/claude-sonnet-4-6" (see ai_list_models).'
      : flavor === "ollama"
      ? 'Model name, e.g. "llama3.2" or "qwen3:8b".'
      : "Model name, as ai_<provider>_list_models lists it.",
  );
}

function generateShape(flavor: Flavor): z.ZodRawShape {
  return {
    model: modelSchema(flavor),
    prompt: z.string().describe("The prompt."),
    system: z.string().optional().describe("System prompt."),
    images: imagesSchema.optional(),
    format: formatSchema.optional(),
    options: (flavor === "ollama" ? ollamaOptionsSchema : optionsSchema).optional(),
    think: thinkSchema.optional(),
    keep_alive: (flavor === "ollama" ? ollamaKeepAlive : keepAlive).optional(),
    provider_options: providerOptions.optional(),
    cache: cacheArgument,
  };
}

function chatShape(flavor: Flavor): z.ZodRawShape {
  return {
    model: modelSchema(flavor),
    messages: z.array(messageSchema).min(1).describe("The conversation so far, oldest first."),
    tools: z.array(chatToolSchema).optional().describe("Functions the model may call."),
    format: formatSchema.optional(),
    options: (flavor === "ollama" ? ollamaOptionsSchema : optionsSchema).optional(),
    think: thinkSchema.optional(),
    keep_alive: (flavor === "ollama" ? ollamaKeepAlive : keepAlive).optional(),
    provider_options: providerOptions.optional(),
    cache: cacheArgument,
  };
}

function embedShape(flavor: Flavor): z.ZodRawShape {
  return {
    model: modelSchema(flavor).describe(
      flavor === "router"
        ? 'Embedding model as "<provider id>/<model name>", e.g. "ollama/nomic-embed-text".'
        : 'Embedding model name, e.g. "nomic-embed-text".',
    ),
    input: z.union([z.string(), z.array(z.string()).min(1)]).describe(
      "A text, or an array of texts to embed in one batch.",
    ),
    ...(flavor !== "ollama" && { provider_options: providerOptions.optional() }),
  };
}

/** Input shapes by flavor, built once. */
export const INPUTS: Record<
  Flavor,
  { generate: z.ZodRawShape; chat: z.ZodRawShape; embed: z.ZodRawShape }
> = {
  ollama: {
    generate: generateShape("ollama"),
    chat: chatShape("ollama"),
    embed: embedShape("ollama"),
  },
  provider: {
    generate: generateShape("provider"),
    chat: chatShape("provider"),
    embed: embedShape("provider"),
  },
  router: {
    generate: generateShape("router"),
    chat: chatShape("router"),
    embed: embedShape("router"),
  },
};

/** Input of the list tools: none. */
export const NO_INPUT: z.ZodRawShape = {};

/** Token counts and timings of a result. */
export const usageSchema = z.object({
  prompt_tokens: z.number().optional(),
  completion_tokens: z.number().optional(),
  total_ms: z.number().optional(),
  load_ms: z.number().optional(),
  prompt_ms: z.number().optional(),
  generation_ms: z.number().optional(),
});

const modelInfoSchema = z.object({
  name: z.string(),
  provider: z.string().optional().describe("The provider id (router listing)."),
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
  hosts: z.array(z.string()).optional().describe(
    'The hosts ("host:port") that have the model, when the provider has several.',
  ),
});

const cachedSchema = z.boolean().optional().describe(
  "True when the result came from Rune's cache (the provider was not called).",
);

const doneReasonSchema = z.enum(["stop", "length", "tool_calls", "content_filter"]).describe(
  "Why generation stopped, the same for every provider.",
);

/** Output of the list tools. */
export const listModelsOutput: z.ZodRawShape = {
  models: z.array(modelInfoSchema),
  errors: z.array(z.object({ provider: z.string(), error: z.string() })).optional().describe(
    "Providers that could not be listed (router listing); the others are listed.",
  ),
};

/** Output of the generate tools. */
export const generateOutput: z.ZodRawShape = {
  model: z.string(),
  response: z.string(),
  thinking: z.string().optional(),
  done_reason: doneReasonSchema,
  usage: usageSchema,
  cached: cachedSchema,
};

/** Output of the chat tools. */
export const chatOutput: z.ZodRawShape = {
  model: z.string(),
  message: z.object({
    role: z.literal("assistant"),
    content: z.string(),
    thinking: z.string().optional(),
    tool_calls: z.array(toolCallSchema).optional(),
  }),
  done_reason: doneReasonSchema,
  usage: usageSchema,
  cached: cachedSchema,
};

/** Output of the embed tools. */
export const embedOutput: z.ZodRawShape = {
  model: z.string(),
  embeddings: z.array(z.array(z.number())),
  dimensions: z.number().int(),
  usage: usageSchema,
  cached: cachedSchema,
};

/** Arguments of a generate tool, as validated. */
export interface GenerateArgs {
  model: string;
  prompt: string;
  system?: string;
  images?: string[];
  format?: "json" | Record<string, unknown>;
  options?: ToolOptions;
  think?: boolean | number;
  keep_alive?: string | number;
  provider_options?: Record<string, unknown>;
  cache?: boolean;
}

/** Arguments of a chat tool, as validated. */
export interface ChatArgs extends Omit<GenerateArgs, "prompt" | "system" | "images"> {
  messages: z.infer<typeof messageSchema>[];
  tools?: z.infer<typeof chatToolSchema>[];
}

/** Arguments of an embed tool, as validated. */
export interface EmbedArgs {
  model: string;
  input: string | string[];
  provider_options?: Record<string, unknown>;
}
