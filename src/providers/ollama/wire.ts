/**
 * Ollama's replies as Rune accepts them: a zod schema per reply (the
 * fields Rune reads, with their types; unknown fields pass), and fast
 * checks for the hot path (streamed lines, embeddings).
 *
 * Field names and types follow Ollama's Go structs in `api/types.go`
 * (`GenerateResponse`, `ChatResponse`, `Message`, `ToolCall`,
 * `ListResponse`, `ProcessResponse`, `ShowResponse`, `EmbedResponse`,
 * `ProgressResponse`).
 *
 * @module
 */

import { z } from "zod";
import type { Shape } from "../validate.ts";

const count = z.number();

/** Token counts and durations (nanoseconds) Ollama reports when a call ends. */
const statsFields = {
  total_duration: count.optional(),
  load_duration: count.optional(),
  prompt_eval_count: count.optional(),
  prompt_eval_duration: count.optional(),
  eval_count: count.optional(),
  eval_duration: count.optional(),
};

/** Token counts and durations of a finished call. */
export type OllamaStats = {
  [K in keyof typeof statsFields]?: number;
};

const toolCallSchema = z.looseObject({
  id: z.string().optional(),
  function: z.looseObject({
    index: z.number().optional(),
    name: z.string(),
    // Go's nil map is written as null.
    arguments: z.record(z.string(), z.unknown()).nullish(),
  }),
});

const messageSchema = z.looseObject({
  role: z.string().optional(),
  content: z.string().optional(),
  thinking: z.string().optional(),
  tool_calls: z.array(toolCallSchema).nullish(),
});

/** One line of a streamed `/api/generate` or `/api/chat` reply (or an `{"error"}` line). */
export const streamLineSchema = z.looseObject({
  model: z.string().optional(),
  created_at: z.string().optional(),
  response: z.string().optional(),
  thinking: z.string().optional(),
  message: messageSchema.optional(),
  done: z.boolean().optional(),
  done_reason: z.string().optional(),
  error: z.string().optional(),
  ...statsFields,
});

/** One line of a streamed reply. */
export type OllamaStreamLine = z.infer<typeof streamLineSchema>;

/** A tool call in a streamed chat line. */
export type OllamaToolCall = z.infer<typeof toolCallSchema>;

const STAT_KEYS = new Set(Object.keys(statsFields));

/**
 * Accepts the common streamed line (a token, thinking, or the final line)
 * with a few `typeof` tests per key; anything else (tool calls, error
 * lines, a wrong type anywhere) goes to zod.
 */
function isPlainStreamLine(value: unknown): value is OllamaStreamLine {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const line = value as Record<string, unknown>;
  for (const key in line) {
    const field = line[key];
    switch (key) {
      case "model":
      case "created_at":
      case "response":
      case "thinking":
      case "done_reason":
        if (typeof field !== "string") return false;
        break;
      case "done":
        if (typeof field !== "boolean") return false;
        break;
      case "message":
        if (!isPlainMessage(field)) return false;
        break;
      case "error":
        return false;
      default:
        if (STAT_KEYS.has(key) && typeof field !== "number") return false;
    }
  }
  return true;
}

function isPlainMessage(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const message = value as Record<string, unknown>;
  for (const key in message) {
    switch (key) {
      case "role":
      case "content":
      case "thinking":
        if (typeof message[key] !== "string") return false;
        break;
      case "tool_calls":
        // Rare (once per call at most): zod checks them.
        return false;
    }
  }
  return true;
}

/** A streamed line: fast check, zod for the rest. */
export const streamLineShape: Shape<OllamaStreamLine> = {
  schema: streamLineSchema,
  fast: isPlainStreamLine,
};

const detailsSchema = z.looseObject({
  family: z.string().optional(),
  parameter_size: z.string().optional(),
  quantization_level: z.string().optional(),
}).nullish();

const tagModelSchema = z.looseObject({
  name: z.string(),
  model: z.string().optional(),
  modified_at: z.string().optional(),
  size: z.number().optional(),
  details: detailsSchema,
});

/** A model in `/api/tags`. */
export type OllamaTagModel = z.infer<typeof tagModelSchema>;

/** `/api/tags`: the installed models. */
export const tagsShape: Shape<{ models?: OllamaTagModel[] | null }> = {
  schema: z.looseObject({ models: z.array(tagModelSchema).nullish() }),
};

const runningModelSchema = z.looseObject({
  name: z.string().optional(),
  model: z.string().optional(),
  size: z.number().optional(),
  details: detailsSchema,
  expires_at: z.string().optional(),
  size_vram: z.number().optional(),
  context_length: z.number().optional(),
});

/** A model in `/api/ps`. */
export type OllamaRunningModel = z.infer<typeof runningModelSchema>;

/** `/api/ps`: the models loaded in memory. */
export const psShape: Shape<{ models?: OllamaRunningModel[] | null }> = {
  schema: z.looseObject({ models: z.array(runningModelSchema).nullish() }),
};

const showSchema = z.looseObject({
  details: detailsSchema,
  model_info: z.record(z.string(), z.unknown()).nullish(),
  capabilities: z.array(z.string()).nullish(),
  modified_at: z.string().optional(),
  template: z.string().optional(),
  parameters: z.string().optional(),
  license: z.string().optional(),
});

/** `/api/show`: one model's details. */
export type OllamaShow = z.infer<typeof showSchema>;

/** `/api/show`. */
export const showShape: Shape<OllamaShow> = { schema: showSchema };

const embedSchema = z.looseObject({
  model: z.string().optional(),
  embeddings: z.array(z.array(z.number())),
  ...statsFields,
});

/** `/api/embed`: one vector per input. */
export type OllamaEmbed = z.infer<typeof embedSchema>;

/** A batch of embeddings is millions of numbers: a plain loop checks them, zod words errors. */
function isPlainEmbed(value: unknown): value is OllamaEmbed {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const reply = value as Record<string, unknown>;
  if (reply.model !== undefined && typeof reply.model !== "string") return false;
  for (const key of STAT_KEYS) {
    if (reply[key] !== undefined && typeof reply[key] !== "number") return false;
  }
  const rows = reply.embeddings;
  if (!Array.isArray(rows)) return false;
  for (const row of rows) {
    if (!Array.isArray(row)) return false;
    for (let i = 0; i < row.length; i++) if (typeof row[i] !== "number") return false;
  }
  return true;
}

/** `/api/embed`. */
export const embedShape: Shape<OllamaEmbed> = { schema: embedSchema, fast: isPlainEmbed };

/** `/api/version`. */
export const versionShape: Shape<{ version?: string }> = {
  schema: z.looseObject({ version: z.string().optional() }),
};

const pullLineSchema = z.looseObject({
  status: z.string().optional(),
  digest: z.string().optional(),
  // Go int64 with omitempty: absent while 0.
  total: z.number().nonnegative().optional(),
  completed: z.number().nonnegative().optional(),
  error: z.string().optional(),
});

/**
 * One line of a streamed `/api/pull` reply (`api.ProgressResponse`, or an
 * `{"error"}` line): `pulling manifest`, then `pulling <digest prefix>` with
 * the layer's `digest`, `total` and `completed` bytes every 60 ms while it
 * downloads, then `verifying sha256 digest`, `writing manifest`,
 * (`removing unused layers`) and `success`.
 */
export type OllamaPullLine = z.infer<typeof pullLineSchema>;

/** A streamed pull line. */
export const pullLineShape: Shape<OllamaPullLine> = { schema: pullLineSchema };

/** Ollama's error body: `{"error": "..."}`. */
export const errorBodySchema = z.looseObject({ error: z.string() });
