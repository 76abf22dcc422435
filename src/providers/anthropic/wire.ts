/**
 * Anthropic's replies as Rune accepts them: a zod schema per reply (the
 * fields Rune reads, with their types; unknown fields pass), and fast
 * checks for the hot path (streamed deltas).
 *
 * Shapes follow Anthropic's Messages API reference and the official
 * TypeScript SDK's types (`MessageStreamEvent`, `ModelInfo`,
 * `ErrorResponse`). Anthropic adds event types, delta types and content
 * block types over time without a new API version, so those are open:
 * the stream reader skips what it does not know.
 *
 * @module
 */

import { z } from "zod";
import type { Shape } from "../validate.ts";

const tokens = z.number();

/** Token counts of `message_start` (the whole `usage`) and `message_delta` (cumulative). */
const usageSchema = z.looseObject({
  input_tokens: tokens.nullish(),
  output_tokens: tokens.nullish(),
  cache_creation_input_tokens: tokens.nullish(),
  cache_read_input_tokens: tokens.nullish(),
});

/** Token counts Anthropic reports. */
export type AnthropicUsage = z.infer<typeof usageSchema>;

/** `message_start`: the message with empty content, its id, model and input tokens. */
const messageStartSchema = z.looseObject({
  type: z.literal("message_start"),
  message: z.looseObject({
    id: z.string().optional(),
    model: z.string().optional(),
    usage: usageSchema.nullish(),
  }),
});

/** The first state of a content block: text, thinking, tool use, or a type Rune skips. */
const contentBlockSchema = z.looseObject({
  type: z.string(),
  text: z.string().optional(),
  thinking: z.string().optional(),
  signature: z.string().optional(),
  /** `redacted_thinking`: the encrypted reasoning, passed back as is. */
  data: z.string().optional(),
  id: z.string().optional(),
  name: z.string().optional(),
  input: z.unknown().optional(),
});

/** A content block as `content_block_start` opens it. */
export type AnthropicContentBlock = z.infer<typeof contentBlockSchema>;

const index = z.number().int().nonnegative();

const contentBlockStartSchema = z.looseObject({
  type: z.literal("content_block_start"),
  index,
  content_block: contentBlockSchema,
});

/** A delta: `text_delta`, `thinking_delta`, `signature_delta`, `input_json_delta`, or another. */
const deltaSchema = z.looseObject({
  type: z.string(),
  text: z.string().optional(),
  thinking: z.string().optional(),
  signature: z.string().optional(),
  partial_json: z.string().optional(),
});

const contentBlockDeltaSchema = z.looseObject({
  type: z.literal("content_block_delta"),
  index,
  delta: deltaSchema,
});

const contentBlockStopSchema = z.looseObject({
  type: z.literal("content_block_stop"),
  index,
});

const messageDeltaSchema = z.looseObject({
  type: z.literal("message_delta"),
  delta: z.looseObject({
    stop_reason: z.string().nullish(),
    stop_sequence: z.string().nullish(),
  }),
  usage: usageSchema.nullish(),
});

/** `error` inside a stream, and the body of every HTTP error reply. */
const errorObjectSchema = z.looseObject({ type: z.string(), message: z.string() });

const errorEventSchema = z.looseObject({
  type: z.literal("error"),
  error: errorObjectSchema,
});

/** One streamed event Rune acts on. */
export type AnthropicEvent =
  | z.infer<typeof messageStartSchema>
  | z.infer<typeof contentBlockStartSchema>
  | z.infer<typeof contentBlockDeltaSchema>
  | z.infer<typeof contentBlockStopSchema>
  | z.infer<typeof messageDeltaSchema>
  | z.infer<typeof errorEventSchema>
  | { type: "message_stop" }
  | { type: "ping" };

/** A streamed `content_block_delta`. */
export type AnthropicDeltaEvent = z.infer<typeof contentBlockDeltaSchema>;

/** The schema of each event type Rune acts on; any other type is skipped. */
export const EVENT_SCHEMAS: Record<string, z.ZodType<AnthropicEvent>> = {
  message_start: messageStartSchema,
  content_block_start: contentBlockStartSchema,
  content_block_delta: contentBlockDeltaSchema,
  content_block_stop: contentBlockStopSchema,
  message_delta: messageDeltaSchema,
  message_stop: z.looseObject({ type: z.literal("message_stop") }) as z.ZodType<AnthropicEvent>,
  ping: z.looseObject({ type: z.literal("ping") }) as z.ZodType<AnthropicEvent>,
  error: errorEventSchema,
};

/**
 * Accepts the common delta (a text, thinking or tool-argument fragment)
 * with a few `typeof` tests; anything else goes to zod.
 */
function isPlainDelta(value: unknown): value is AnthropicDeltaEvent {
  if (typeof value !== "object" || value === null) return false;
  const event = value as Record<string, unknown>;
  const at = event.index;
  if (event.type !== "content_block_delta" || typeof at !== "number") return false;
  if (!Number.isInteger(at) || at < 0) return false;
  const delta = event.delta;
  if (typeof delta !== "object" || delta === null) return false;
  const d = delta as Record<string, unknown>;
  switch (d.type) {
    case "text_delta":
      return typeof d.text === "string";
    case "thinking_delta":
      return typeof d.thinking === "string";
    case "input_json_delta":
      return typeof d.partial_json === "string";
    default:
      return false;
  }
}

/** A streamed `content_block_delta`: fast check, zod for the rest. */
export const deltaEventShape: Shape<AnthropicDeltaEvent> = {
  schema: contentBlockDeltaSchema,
  fast: isPlainDelta,
};

/** What `/v1/models` says about a model's capabilities (each `{ supported }`), when it says. */
const capabilitySchema = z.looseObject({ supported: z.boolean() }).nullish();

const modelSchema = z.looseObject({
  id: z.string(),
  type: z.string().optional(),
  display_name: z.string().nullish(),
  created_at: z.string().nullish(),
  max_input_tokens: z.number().nullish(),
  max_tokens: z.number().nullish(),
  capabilities: z.looseObject({
    image_input: capabilitySchema,
    thinking: capabilitySchema,
    structured_outputs: capabilitySchema,
  }).nullish(),
});

/** A model of `GET /v1/models` and `GET /v1/models/{id}`. */
export type AnthropicModel = z.infer<typeof modelSchema>;

/** `GET /v1/models`: one page of models, newest first. */
export const modelsPageShape: Shape<{
  data: AnthropicModel[];
  has_more?: boolean | null;
  last_id?: string | null;
}> = {
  schema: z.looseObject({
    data: z.array(modelSchema),
    has_more: z.boolean().nullish(),
    first_id: z.string().nullish(),
    last_id: z.string().nullish(),
  }),
};

/** `GET /v1/models/{id}`: one model. */
export const modelShape: Shape<AnthropicModel> = { schema: modelSchema };

/** Anthropic's error body: `{"type":"error","error":{"type":...,"message":...},"request_id":...}`. */
export const errorBodySchema = z.looseObject({
  type: z.literal("error").optional(),
  error: errorObjectSchema,
  request_id: z.string().nullish(),
});
