/**
 * Replies of OpenAI-compatible servers as Rune accepts them: a zod schema
 * per reply (the fields Rune reads, with their types; unknown fields pass),
 * and fast checks for the hot path (streamed chunks, embeddings).
 *
 * Field names follow OpenAI's API reference and the official SDK's types
 * (`ChatCompletionChunk`, `ChatCompletion`, `CreateEmbeddingResponse`,
 * `Model`), widened where compatible servers differ: `choices` may be
 * missing or null on a usage chunk (vLLM), `reasoning_content` (DeepSeek,
 * vLLM) and `reasoning` (OpenRouter, newer vLLM) carry thinking, a tool-call
 * delta may lack its `index` (then its position counts), and an embedding
 * may be base64 text when `encoding_format: "base64"` was asked for.
 *
 * @module
 */

import { z } from "zod";
import type { Shape } from "../validate.ts";

const text = z.string().nullish();
const count = z.number().nullish();

const usageSchema = z.looseObject({
  prompt_tokens: count,
  completion_tokens: count,
  total_tokens: count,
}).nullish();

/** Token counts of a call (`usage`). */
export type OpenAiUsage = z.infer<typeof usageSchema>;

const toolCallDeltaSchema = z.looseObject({
  index: z.number().int().min(0).optional(),
  id: text,
  type: text,
  function: z.looseObject({
    name: text,
    arguments: text,
  }).nullish(),
});

/** A fragment of a tool call in a streamed chunk. */
export type OpenAiToolCallDelta = z.infer<typeof toolCallDeltaSchema>;

const deltaSchema = z.looseObject({
  role: text,
  content: text,
  refusal: text,
  reasoning_content: text,
  reasoning: text,
  tool_calls: z.array(toolCallDeltaSchema).nullish(),
  // The deprecated `functions` API: one call, no id.
  function_call: z.looseObject({ name: text, arguments: text }).nullish(),
});

const chunkChoiceSchema = z.looseObject({
  index: z.number().optional(),
  delta: deltaSchema.nullish(),
  finish_reason: text,
});

/** One `data:` event of a streamed `/chat/completions` reply. */
export const chunkSchema = z.looseObject({
  id: text,
  model: text,
  choices: z.array(chunkChoiceSchema).nullish(),
  usage: usageSchema,
});

/** One streamed chunk. */
export type OpenAiChunk = z.infer<typeof chunkSchema>;

const DELTA_TEXT_KEYS = new Set(["role", "content", "refusal", "reasoning_content", "reasoning"]);

function isTextOrNull(value: unknown): boolean {
  return value === null || value === undefined || typeof value === "string";
}

/**
 * Accepts the common chunk (a text or thinking delta, a finish reason, a
 * usage chunk) with a few `typeof` tests; tool calls, errors and anything
 * unusual go to zod.
 */
function isPlainChunk(value: unknown): value is OpenAiChunk {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const chunk = value as Record<string, unknown>;
  if (!isTextOrNull(chunk.id) || !isTextOrNull(chunk.model)) return false;
  if (chunk.usage !== undefined && chunk.usage !== null) return false;
  const choices = chunk.choices;
  if (choices === undefined || choices === null) return true;
  if (!Array.isArray(choices)) return false;
  for (const choice of choices) {
    if (typeof choice !== "object" || choice === null || Array.isArray(choice)) return false;
    const { index, delta, finish_reason } = choice as Record<string, unknown>;
    if (index !== undefined && typeof index !== "number") return false;
    if (!isTextOrNull(finish_reason)) return false;
    if (delta === undefined || delta === null) continue;
    if (typeof delta !== "object" || Array.isArray(delta)) return false;
    for (const key in delta) {
      const field = (delta as Record<string, unknown>)[key];
      if (DELTA_TEXT_KEYS.has(key)) {
        if (!isTextOrNull(field)) return false;
      } else if ((key === "tool_calls" || key === "function_call") && field != null) {
        return false;
      }
    }
  }
  return true;
}

/** A streamed chunk: fast check, zod for the rest. */
export const chunkShape: Shape<OpenAiChunk> = { schema: chunkSchema, fast: isPlainChunk };

const messageToolCallSchema = z.looseObject({
  id: text,
  type: text,
  function: z.looseObject({ name: z.string(), arguments: text }),
});

/** A tool call in a whole (non-streamed) reply. */
export type OpenAiToolCall = z.infer<typeof messageToolCallSchema>;

/**
 * A whole `chat.completion`: what a server that ignores `stream: true`
 * answers with (`application/json` instead of an event stream).
 */
export const completionSchema = z.looseObject({
  model: text,
  choices: z.array(z.looseObject({
    index: z.number().optional(),
    message: z.looseObject({
      content: text,
      refusal: text,
      reasoning_content: text,
      reasoning: text,
      tool_calls: z.array(messageToolCallSchema).nullish(),
    }),
    finish_reason: text,
  })).min(1),
  usage: usageSchema,
});

/** A whole chat completion. */
export type OpenAiCompletion = z.infer<typeof completionSchema>;

/** A whole chat completion. */
export const completionShape: Shape<OpenAiCompletion> = { schema: completionSchema };

const modelSchema = z.looseObject({
  id: z.string(),
  created: count,
  owned_by: text,
});

/** A model of `GET /models`. */
export type OpenAiModel = z.infer<typeof modelSchema>;

/** `GET /models`: `{"object": "list", "data": [...]}`. */
export const modelsShape: Shape<{ data: OpenAiModel[] }> = {
  schema: z.looseObject({ data: z.array(modelSchema) }),
};

const embeddingSchema = z.looseObject({
  index: z.number().int().min(0),
  embedding: z.union([z.array(z.number()), z.string()]),
});

const embeddingsSchema = z.looseObject({
  model: text,
  data: z.array(embeddingSchema),
  usage: usageSchema,
});

/** `POST /embeddings`: one vector (or base64 text) per input, with its index. */
export type OpenAiEmbeddings = z.infer<typeof embeddingsSchema>;

/** A batch of embeddings is millions of numbers: a plain loop checks them, zod words errors. */
function isPlainEmbeddings(value: unknown): value is OpenAiEmbeddings {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const reply = value as Record<string, unknown>;
  if (!isTextOrNull(reply.model)) return false;
  const usage = reply.usage;
  if (usage !== undefined && usage !== null) {
    if (typeof usage !== "object" || Array.isArray(usage)) return false;
    for (const key of ["prompt_tokens", "completion_tokens", "total_tokens"]) {
      const field = (usage as Record<string, unknown>)[key];
      if (field !== undefined && field !== null && typeof field !== "number") return false;
    }
  }
  const rows = reply.data;
  if (!Array.isArray(rows)) return false;
  for (const row of rows) {
    if (typeof row !== "object" || row === null || Array.isArray(row)) return false;
    const { index, embedding } = row as Record<string, unknown>;
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0) return false;
    if (typeof embedding === "string") continue;
    if (!Array.isArray(embedding)) return false;
    for (let i = 0; i < embedding.length; i++) if (typeof embedding[i] !== "number") return false;
  }
  return true;
}

/** `POST /embeddings`. */
export const embeddingsShape: Shape<OpenAiEmbeddings> = {
  schema: embeddingsSchema,
  fast: isPlainEmbeddings,
};

/**
 * An error body. OpenAI (and Groq, Together, OpenRouter, llama.cpp, Ollama's
 * `/v1`) send `{"error": {"message", "type", "param", "code"}}`; vLLM and
 * Mistral send `{"object": "error", "message", "type", "code"}`; FastAPI
 * servers `{"detail": "..."}` (or a list of problems); some proxies
 * `{"error": "..."}`.
 */
export const errorBodySchema = z.looseObject({
  error: z.union([
    z.string(),
    z.looseObject({
      message: z.unknown().optional(),
      type: z.unknown().optional(),
      param: z.unknown().optional(),
      code: z.unknown().optional(),
    }),
  ]).nullish(),
  message: z.unknown().optional(),
  type: z.unknown().optional(),
  param: z.unknown().optional(),
  code: z.unknown().optional(),
  detail: z.unknown().optional(),
});

/** An error body, in any of the shapes above. */
export type OpenAiErrorBody = z.infer<typeof errorBodySchema>;
