/**
 * Mapping between the provider-neutral types and Anthropic's Messages API:
 * request bodies out (refusing, by name, what Anthropic cannot honour),
 * model descriptions, stop reasons and token counts in.
 *
 * @module
 */

import { ArgumentError } from "../errors.ts";
import type {
  Capabilities,
  ChatRequest,
  CompletionRequest,
  DoneReason,
  GenerateRequest,
  Image,
  Message,
  ModelDetails,
  ModelInfo,
  Usage,
} from "../types.ts";
import type { SignatureMemory } from "./signatures.ts";
import type { AnthropicModel, AnthropicUsage } from "./wire.ts";

/**
 * `max_tokens` when the caller gives none: Anthropic requires the field.
 * 4096 tokens answer at length without letting a forgotten limit run up a
 * large bill; raise it per call with `max_tokens` or per provider with the
 * `maxTokens` option.
 */
export const DEFAULT_MAX_TOKENS = 4096;

/** The thinking budget `think: true` asks for (Anthropic's minimum is 1024). */
export const DEFAULT_THINKING_BUDGET = 4096;

/** Anthropic's smallest thinking budget (`budget_tokens`). */
export const MIN_THINKING_BUDGET = 1024;

/** The image media types Anthropic accepts. */
export const IMAGE_MEDIA_TYPES: readonly string[] = [
  "image/jpeg",
  "image/png",
  "image/gif",
  "image/webp",
];

/** What building a body needs beyond the request. */
export interface BodyOptions {
  /** Display name for messages, e.g. `Anthropic`. */
  name: string;
  /** `max_tokens` when the request gives none. */
  maxTokens: number;
  /** The budget of `think: true`. */
  thinkingBudget: number;
  /** Signed thinking blocks of earlier replies, to give back with earlier turns. */
  signatures: SignatureMemory;
}

type Json = Record<string, unknown>;

/** The body of a streamed `POST /v1/messages` for one prompt. */
export function generateBody(request: GenerateRequest, options: BodyOptions): Json {
  refuseUnsupported(request, options.name);
  const content = userContent(request.prompt, {
    images: request.images,
    name: options.name,
    where: "images",
  });
  return {
    ...commonFields(request, options),
    ...(request.system !== undefined && request.system !== "" && { system: request.system }),
    messages: [{ role: "user", content }],
    stream: true,
  };
}

/** The body of a streamed `POST /v1/messages` for the next turn of a chat. */
export function chatBody(request: ChatRequest, options: BodyOptions): Json {
  refuseUnsupported(request, options.name);
  const { system, messages } = toAnthropicMessages(request.messages, options);
  return {
    ...commonFields(request, options),
    ...(system !== undefined && { system }),
    messages,
    ...(request.tools?.length && {
      tools: request.tools.map((tool) => ({
        name: tool.name,
        ...(tool.description !== undefined && { description: tool.description }),
        input_schema: tool.parameters ?? { type: "object", properties: {} },
      })),
    }),
    stream: true,
  };
}

/** Refuses, before anything is sent, the arguments Anthropic has no equivalent for. */
function refuseUnsupported(request: CompletionRequest, name: string): void {
  const none = (argument: string, why: string) =>
    new ArgumentError(argument, `${name} does not support ${argument}: ${why}`);
  if (request.keepAlive !== undefined) {
    throw none("keep_alive", "a cloud API keeps no model loaded for you; leave keep_alive out.");
  }
  if (request.options?.seed !== undefined) {
    throw none(
      "seed",
      "Anthropic's Messages API has no seed, so replies cannot be made reproducible; leave seed out.",
    );
  }
  if (request.options?.contextLength !== undefined) {
    throw none(
      "context_length",
      "the context window is fixed per model; leave context_length out (see the model's details for its size).",
    );
  }
  if (request.format === "json") {
    throw new ArgumentError(
      "format",
      `${name} has no schema-less JSON mode: give format a JSON Schema (sent as Anthropic's structured output format), or ask for JSON in the prompt.`,
    );
  }
}

/** Model, token limits, thinking, sampling, stop sequences and output format. */
function commonFields(request: CompletionRequest, options: BodyOptions): Json {
  const extra = request.providerOptions ?? {};
  const sampling = request.options ?? {};
  const budget = thinkingBudget(request.think, options);
  const asked = sampling.maxTokens;
  // Anthropic counts thinking within max_tokens and wants max_tokens above the budget: a caller's
  // max_tokens at or below the budget would leave the answer nothing, so the budget is added.
  const maxTokens = budget === undefined
    ? asked ?? options.maxTokens
    : asked === undefined
    ? budget + options.maxTokens
    : asked > budget
    ? asked
    : budget + asked;
  const format = typeof request.format === "object"
    ? { format: { type: "json_schema", schema: request.format } }
    : undefined;
  const outputConfig = extra.output_config;
  return {
    // provider_options: Anthropic fields Rune has no argument for (metadata, tool_choice,
    // service_tier, ...), sent as given; the tool's own arguments win.
    ...extra,
    model: request.model,
    max_tokens: maxTokens,
    ...(budget !== undefined && { thinking: { type: "enabled", budget_tokens: budget } }),
    ...(sampling.temperature !== undefined && { temperature: sampling.temperature }),
    ...(sampling.topP !== undefined && { top_p: sampling.topP }),
    ...(sampling.topK !== undefined && { top_k: sampling.topK }),
    ...(sampling.stop?.length && { stop_sequences: sampling.stop }),
    ...(format && {
      output_config: isObject(outputConfig) ? { ...outputConfig, ...format } : format,
    }),
  };
}

/** The thinking budget `think` asks for, or undefined when thinking stays off. */
function thinkingBudget(think: boolean | number | undefined, options: BodyOptions) {
  if (think === undefined || think === false || think === 0) return undefined;
  if (think === true) return options.thinkingBudget;
  if (!Number.isInteger(think) || think < MIN_THINKING_BUDGET) {
    throw new ArgumentError(
      "think",
      `${options.name} needs a thinking budget of at least ${MIN_THINKING_BUDGET} tokens, got ${think}: pass think: true for the default budget (${options.thinkingBudget}), or a whole number from ${MIN_THINKING_BUDGET} up.`,
    );
  }
  return think;
}

/**
 * Neutral messages as Anthropic's: system messages become the top-level
 * `system`, tool results become `tool_result` blocks in a user turn
 * (paired with their call by id), and consecutive turns of one role are
 * merged (Anthropic's turns alternate).
 */
function toAnthropicMessages(
  messages: Message[],
  options: BodyOptions,
): { system?: string; messages: Json[] } {
  const system: string[] = [];
  const turns: { role: "user" | "assistant"; blocks: Json[] }[] = [];
  const turn = (role: "user" | "assistant") => {
    const last = turns.at(-1);
    if (last?.role === role) return last;
    const next = { role, blocks: [] as Json[] };
    turns.push(next);
    return next;
  };
  messages.forEach((message, i) => {
    const where = `messages[${i}]`;
    switch (message.role) {
      case "system":
        system.push(message.content);
        break;
      case "user":
        turn("user").blocks.push(
          ...userBlocks(message, { name: options.name, where: `${where}.images` }),
        );
        break;
      case "tool": {
        if (message.toolCallId === undefined || message.toolCallId === "") {
          throw new ArgumentError(
            "tool_call_id",
            `${options.name} pairs each tool result with its call by id, and ${where} (a tool message) has no tool_call_id: send the id of the tool call it answers (the "id" of the call in the assistant message).`,
          );
        }
        const images = message.images?.map((image, n) =>
          imageBlock(image, { name: options.name, where: `${where}.images[${n}]` })
        ) ?? [];
        const result = {
          type: "tool_result",
          tool_use_id: message.toolCallId,
          content: images.length
            ? [
              ...(message.content !== "" ? [{ type: "text", text: message.content }] : []),
              ...images,
            ]
            : message.content,
        };
        // Anthropic wants the tool results first in their user turn.
        const blocks = turn("user").blocks;
        const firstOther = blocks.findIndex((block) =>
          block.type !== "tool_result"
        );
        if (firstOther === -1) blocks.push(result);
        else blocks.splice(firstOther, 0, result);
        break;
      }
      case "assistant": {
        const blocks = assistantBlocks(message, { ...options, where });
        // An empty assistant turn carries nothing, and Anthropic refuses empty content.
        if (blocks.length) turn("assistant").blocks.push(...blocks);
        break;
      }
    }
  });
  return {
    ...(system.length && { system: system.join("\n\n") }),
    messages: turns.map(({ role, blocks }) => ({
      role,
      // A lone text block is sent as plain text, the form Anthropic's examples use.
      content: blocks.length === 1 && blocks[0].type === "text" ? blocks[0].text : blocks,
    })),
  };
}

/** Where a message's content sits, for messages: the provider's name and the argument path. */
interface Place {
  /** Display name, e.g. `Anthropic`. */
  name: string;
  /** The argument's path, e.g. `messages[2].images`. */
  where: string;
}

function userBlocks(message: Message, place: Place): Json[] {
  const content = userContent(message.content, { ...place, images: message.images });
  return typeof content === "string" ? [{ type: "text", text: content }] : content;
}

/** A user turn's content: the text alone, or the images (first, as Anthropic advises) and the text. */
function userContent(text: string, options: Place & { images?: Image[] }): string | Json[] {
  const { images, name, where } = options;
  if (!images?.length) return text;
  return [
    ...images.map((image, n) => imageBlock(image, { name, where: `${where}[${n}]` })),
    ...(text !== "" ? [{ type: "text", text }] : []),
  ];
}

function imageBlock(image: Image, { name, where }: Place): Json {
  if (image.mediaType === undefined || !IMAGE_MEDIA_TYPES.includes(image.mediaType)) {
    const what = image.mediaType === undefined
      ? "its media type could not be recognised"
      : `its media type is ${image.mediaType}`;
    throw new ArgumentError(
      "images",
      `${name} needs the media type of every image, and ${where}: ${what}: send a PNG, JPEG, GIF or WebP image, as base64 or as a data: URL that names its type (data:image/png;base64,...).`,
    );
  }
  return {
    type: "image",
    source: { type: "base64", media_type: image.mediaType, data: image.data },
  };
}

function assistantBlocks(message: Message, options: BodyOptions & { where: string }): Json[] {
  const { where } = options;
  if (message.images?.length) {
    throw new ArgumentError(
      "images",
      `${options.name} accepts images only from the user or in tool results, and ${where} is an assistant message with images: move them to a user message.`,
    );
  }
  const blocks: Json[] = [];
  // Anthropic accepts earlier thinking only with the signature it issued for that exact text;
  // thinking this provider did not see (another model's, an edited one) is left out.
  const signed = message.thinking ? options.signatures.recall(message.thinking) : undefined;
  if (signed) blocks.push(...signed);
  if (message.content !== "") blocks.push({ type: "text", text: message.content });
  message.toolCalls?.forEach((call, n) => {
    if (call.id === undefined || call.id === "") {
      throw new ArgumentError(
        "tool_calls",
        `${options.name} pairs tool calls with their results by id, and ${where}.tool_calls[${n}] (${call.name}) has none: send each tool call back with the id it came with.`,
      );
    }
    blocks.push({ type: "tool_use", id: call.id, name: call.name, input: call.arguments });
  });
  return blocks;
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Anthropic's `stop_reason` as a neutral stop reason: `end_turn`,
 * `stop_sequence` and `pause_turn` (a server tool paused a long turn) stop,
 * `max_tokens` and `model_context_window_exceeded` hit a length, `tool_use`
 * asks for tools, `refusal` is a content filter. An unknown or missing
 * reason counts as a stop, or a tool call when the turn called tools.
 */
export function toDoneReason(reason: string | null | undefined, calledTools: boolean): DoneReason {
  switch (reason) {
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length";
    case "tool_use":
      return "tool_calls";
    case "refusal":
      return "content_filter";
    case "end_turn":
    case "stop_sequence":
    case "pause_turn":
      return "stop";
    default:
      return calledTools ? "tool_calls" : "stop";
  }
}

/**
 * Anthropic's token counts as {@linkcode Usage}: prompt tokens include the
 * ones read from or written to the prompt cache (Anthropic counts those
 * apart from `input_tokens`).
 */
export function toUsage(usage: AnthropicUsage, totalMs?: number): Usage {
  const out: Usage = {};
  const input = usage.input_tokens;
  if (input !== undefined && input !== null) {
    out.promptTokens = input + (usage.cache_creation_input_tokens ?? 0) +
      (usage.cache_read_input_tokens ?? 0);
  }
  if (usage.output_tokens !== undefined && usage.output_tokens !== null) {
    out.completionTokens = usage.output_tokens;
  }
  if (totalMs !== undefined) out.totalMs = totalMs;
  return out;
}

/**
 * What a Claude model can do, from its name, when Anthropic's model list
 * does not say: every Claude 3 and 4 model reads images and calls tools;
 * extended thinking came with Claude 3.7 Sonnet and every Claude 4 model.
 */
export function guessCapabilities(model: string): Capabilities {
  const name = model.toLowerCase();
  const claude3 = /claude-3-(?!7)/.test(name);
  return {
    completion: true,
    streaming: true,
    vision: true,
    tools: true,
    embeddings: false,
    thinking: !claude3 && !/claude-(2|instant)/.test(name),
  };
}

/** A model's capabilities: as `/v1/models` reports them, else guessed from the name. */
export function toCapabilities(
  model: AnthropicModel,
): { capabilities: Capabilities; known: boolean } {
  const reported = model.capabilities;
  const guess = guessCapabilities(model.id);
  if (!reported) return { capabilities: guess, known: false };
  return {
    capabilities: {
      ...guess,
      vision: reported.image_input?.supported ?? guess.vision,
      thinking: reported.thinking?.supported ?? guess.thinking,
    },
    known: true,
  };
}

/** `opus`, `sonnet` or `haiku`, from a Claude model id. */
function familyOf(id: string): string | undefined {
  return /(opus|sonnet|haiku)/.exec(id.toLowerCase())?.[1];
}

/** A model of `/v1/models` as {@linkcode ModelInfo}. */
export function toModelInfo(model: AnthropicModel): ModelInfo {
  const family = familyOf(model.id);
  return {
    name: model.id,
    ...(family && { family }),
    ...(model.created_at && { modifiedAt: model.created_at }),
    capabilities: toCapabilities(model).capabilities,
  };
}

/** A model of `/v1/models/{id}` as {@linkcode ModelDetails}. */
export function toModelDetails(model: AnthropicModel): ModelDetails {
  const { capabilities, known } = toCapabilities(model);
  return {
    ...toModelInfo(model),
    capabilities,
    capabilitiesKnown: known,
    ...(typeof model.max_input_tokens === "number" && { contextLength: model.max_input_tokens }),
    extra: {
      ...(model.display_name && { display_name: model.display_name }),
      ...(typeof model.max_tokens === "number" && { max_tokens: model.max_tokens }),
    },
  };
}

/** Details of a configured model Anthropic's list cannot describe (a gateway without `/v1/models`). */
export function guessedDetails(model: string): ModelDetails {
  const family = familyOf(model);
  return {
    name: model,
    ...(family && { family }),
    capabilities: guessCapabilities(model),
    capabilitiesKnown: false,
    extra: {},
  };
}
