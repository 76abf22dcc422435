/**
 * Mapping between the provider-neutral types and the Chat Completions wire
 * format: request bodies out (refusing, before anything is sent, the
 * arguments the server cannot honour), validated replies in.
 *
 * Two dialects, chosen by the base URL unless configured:
 *
 * - `openai`, OpenAI's own API (host `api.openai.com`): the token limit is
 *   sent as `max_completion_tokens` (the only one its reasoning models
 *   `o1`/`o3`/`o4-mini`/`gpt-5` take, and accepted by every current model;
 *   `max_tokens` is deprecated there), `top_k` is refused (the API answers
 *   400 "Unrecognized request argument"), and `think` is refused for models
 *   that do not reason.
 * - `compatible`, every other server (vLLM, llama.cpp, LM Studio, Ollama's
 *   `/v1`, OpenRouter, Groq, Together, DeepSeek, Mistral...): the limit is
 *   sent as `max_tokens`, which all of them take, and `top_k` is sent as is
 *   (vLLM, llama.cpp, LM Studio, OpenRouter and Together take it; a server
 *   that does not answers with its own error).
 *
 * In both, `context_length` and `keep_alive` are refused: Chat Completions
 * has no field for them (the context size is a server setting, e.g. vLLM's
 * `--max-model-len` or llama.cpp's `-c`). `think` becomes `reasoning_effort`:
 * `true` is `"medium"`, a budget under 4096 tokens `"low"`, under 16384
 * `"medium"`, else `"high"`; `false` or 0 sends nothing (the lowest effort
 * differs by model: `"minimal"`, `"none"`, or none at all), so give
 * `provider_options.reasoning_effort` for exact control.
 *
 * @module
 */

import { ArgumentError, InvalidResponseError } from "../errors.ts";
import type {
  ChatRequest,
  CompletionRequest,
  DoneReason,
  EmbedRequest,
  GenerateRequest,
  Image,
  Message,
  ModelInfo,
  OutputFormat,
  Think,
  ToolCall,
  ToolDefinition,
  Usage,
} from "../types.ts";
import type { OpenAiModel, OpenAiUsage } from "./wire.ts";

/** Which server family a request is written for; see the module doc. */
export type Dialect = "openai" | "compatible";

/** Who the request is for, for the argument errors. */
export interface BodyContext {
  /** Provider id, e.g. `openrouter`. */
  id: string;
  /** Provider name for people, e.g. `OpenRouter`. */
  label: string;
  /** The dialect the body is written in. */
  dialect: Dialect;
  /** Ask for a usage chunk with `stream_options` (false once the server refused it). */
  streamOptions: boolean;
}

/** The dialect of a base URL: OpenAI's own API, or any compatible server. */
export function dialectOf(baseUrl: string): Dialect {
  return new URL(baseUrl).hostname.toLowerCase() === "api.openai.com" ? "openai" : "compatible";
}

/** OpenAI's reasoning models (`o1`, `o3-mini`, `o4-mini`, `gpt-5*`, `codex-*`), which take `reasoning_effort`. */
export function isOpenAiReasoningModel(model: string): boolean {
  return /^(o\d|gpt-5|codex-)/i.test(model);
}

/** `think` as `reasoning_effort`, or undefined to send nothing; see the module doc. */
export function reasoningEffort(think: Think | undefined): "low" | "medium" | "high" | undefined {
  if (think === undefined || think === false || think === 0) return undefined;
  if (think === true) return "medium";
  if (think < 4096) return "low";
  if (think < 16384) return "medium";
  return "high";
}

/** Where in a request a message or image is, for the argument errors. */
interface At {
  /** Position in its list. */
  index: number;
  /** Who the request is for. */
  context: BodyContext;
}

function refuse(
  context: BodyContext,
  { argument, why }: { argument: string; why: string },
): ArgumentError {
  return new ArgumentError(
    argument,
    `Provider "${context.id}" (${context.label}) cannot honour ${argument}: ${why}`,
  );
}

/** The body of a streamed `/chat/completions` request for one prompt. */
export function generateBody(
  request: GenerateRequest,
  context: BodyContext,
): Record<string, unknown> {
  const messages: Record<string, unknown>[] = [];
  if (request.system !== undefined) messages.push({ role: "system", content: request.system });
  messages.push(
    userMessage({ content: request.prompt, images: request.images }, context),
  );
  return completionBody(request, { messages, context });
}

/** The body of a streamed `/chat/completions` request for a chat turn. */
export function chatBody(request: ChatRequest, context: BodyContext): Record<string, unknown> {
  const messages = request.messages.map((message, index) =>
    toWireMessage(message, { index, context })
  );
  return completionBody(request, { messages, tools: request.tools, context });
}

function completionBody(
  request: CompletionRequest,
  { messages, tools, context }: {
    messages: Record<string, unknown>[];
    tools?: ToolDefinition[];
    context: BodyContext;
  },
): Record<string, unknown> {
  const official = context.dialect === "openai";
  if (request.keepAlive !== undefined) {
    throw refuse(context, {
      argument: "keep_alive",
      why:
        "Chat Completions servers load and unload models themselves; leave keep_alive out (it is for Ollama's own API).",
    });
  }
  const options = request.options ?? {};
  if (options.contextLength !== undefined) {
    throw refuse(context, {
      argument: "context_length",
      why:
        "Chat Completions has no per-request context size; it is a server setting (vLLM --max-model-len, llama.cpp -c, LM Studio's model settings). Leave options.context_length out.",
    });
  }
  if (options.topK !== undefined && official) {
    throw refuse(context, {
      argument: "top_k",
      why:
        "OpenAI's API has no top-k sampling and answers 400 for it; leave options.top_k out, or use options.top_p.",
    });
  }
  const effort = reasoningEffort(request.think);
  if (effort !== undefined && official && !isOpenAiReasoningModel(request.model)) {
    throw refuse(context, {
      argument: "think",
      why:
        `OpenAI's model "${request.model}" does not reason; pick a reasoning model such as "o4-mini" or "gpt-5", or leave think out.`,
    });
  }
  return {
    ...request.providerOptions,
    model: request.model,
    messages,
    ...(tools?.length && { tools: tools.map(toWireTool) }),
    ...(request.format !== undefined && { response_format: responseFormat(request.format) }),
    ...(options.temperature !== undefined && { temperature: options.temperature }),
    ...(options.topP !== undefined && { top_p: options.topP }),
    ...(options.topK !== undefined && { top_k: options.topK }),
    ...(options.seed !== undefined && { seed: options.seed }),
    ...(options.stop !== undefined && { stop: options.stop }),
    ...(options.maxTokens !== undefined &&
      (official
        ? { max_completion_tokens: options.maxTokens }
        : { max_tokens: options.maxTokens })),
    ...(effort !== undefined && { reasoning_effort: effort }),
    stream: true,
    ...(context.streamOptions && { stream_options: { include_usage: true } }),
  };
}

/** `format` as `response_format`: any JSON, or JSON matching a schema. */
export function responseFormat(format: OutputFormat): Record<string, unknown> {
  if (format === "json") return { type: "json_object" };
  // OpenAI wants a name ([a-zA-Z0-9_-], at most 64); `strict` is left to provider_options,
  // since strict mode refuses schemas without additionalProperties: false.
  const title = typeof format.title === "string" ? format.title.replace(/[^\w-]/g, "_") : "";
  return {
    type: "json_schema",
    json_schema: { name: title.slice(0, 64) || "response", schema: format },
  };
}

function toWireTool(tool: ToolDefinition): Record<string, unknown> {
  return {
    type: "function",
    function: {
      name: tool.name,
      ...(tool.description !== undefined && { description: tool.description }),
      parameters: tool.parameters ?? { type: "object", properties: {} },
    },
  };
}

function toWireMessage(message: Message, { index, context }: At): Record<string, unknown> {
  if (message.images?.length && message.role !== "user") {
    throw refuse(context, {
      argument: "images",
      why:
        `messages[${index}] (role ${message.role}) carries images, but Chat Completions takes images only in user messages; move them to a user message.`,
    });
  }
  // Earlier reasoning is not sent back: OpenAI has no field for it and DeepSeek refuses it.
  switch (message.role) {
    case "user":
      return userMessage(message, context);
    case "system":
      return { role: "system", content: message.content };
    case "assistant":
      return assistantMessage(message, { index, context });
    case "tool":
      if (message.toolCallId === undefined || message.toolCallId === "") {
        throw refuse(context, {
          argument: "tool_call_id",
          why:
            `messages[${index}] is a tool result without tool_call_id; Chat Completions pairs results with calls by id: give the id of the tool call it answers.`,
        });
      }
      return { role: "tool", tool_call_id: message.toolCallId, content: message.content };
  }
}

function userMessage(
  message: { content: string; images?: Image[] },
  context: BodyContext,
): Record<string, unknown> {
  if (!message.images?.length) return { role: "user", content: message.content };
  return {
    role: "user",
    content: [
      { type: "text", text: message.content },
      ...message.images.map((image, i) => ({
        type: "image_url",
        image_url: { url: dataUrl(image, { index: i, context }) },
      })),
    ],
  };
}

function dataUrl(image: Image, { index, context }: At): string {
  if (image.mediaType === undefined) {
    throw refuse(context, {
      argument: "images",
      why: `image ${
        index + 1
      } is not PNG, JPEG, GIF or WebP (its media type is unknown); send it as a data: URL with its media type, or convert it.`,
    });
  }
  return `data:${image.mediaType};base64,${image.data}`;
}

function assistantMessage(message: Message, { index, context }: At): Record<string, unknown> {
  const calls = message.toolCalls ?? [];
  if (calls.length === 0) return { role: "assistant", content: message.content };
  return {
    role: "assistant",
    // OpenAI's own shape for a turn that only called tools.
    content: message.content === "" ? null : message.content,
    tool_calls: calls.map((call, j) => {
      if (call.id === undefined || call.id === "") {
        throw refuse(context, {
          argument: "tool_calls",
          why:
            `messages[${index}].tool_calls[${j}] has no id; Chat Completions pairs tool results with calls by id: send the id the model gave the call.`,
        });
      }
      return {
        id: call.id,
        type: "function",
        function: { name: call.name, arguments: JSON.stringify(call.arguments) },
      };
    }),
  };
}

/** The body of an `/embeddings` request. */
export function embedBody(request: EmbedRequest, context: BodyContext): Record<string, unknown> {
  if (request.keepAlive !== undefined) {
    throw refuse(context, {
      argument: "keep_alive",
      why: "the embeddings API has no keep_alive; leave it out.",
    });
  }
  if (request.truncate === true) {
    throw refuse(context, {
      argument: "truncate",
      why:
        "the embeddings API does not truncate long inputs (it answers with an error); shorten the input instead.",
    });
  }
  return { ...request.providerOptions, model: request.model, input: request.input };
}

/**
 * A `finish_reason` as a neutral stop reason; a turn that called tools
 * stopped for them (OpenAI says `stop` when `tool_choice` forced a call).
 */
export function doneReason(reason: string | null | undefined, calledTools: boolean): DoneReason {
  if (reason === "length") return "length";
  if (reason === "content_filter") return "content_filter";
  if (calledTools || reason === "tool_calls" || reason === "function_call") return "tool_calls";
  return "stop";
}

/** Token counts as {@linkcode Usage}. */
export function toUsage(usage: OpenAiUsage): Usage {
  const out: Usage = {};
  if (typeof usage?.prompt_tokens === "number") out.promptTokens = usage.prompt_tokens;
  if (typeof usage?.completion_tokens === "number") out.completionTokens = usage.completion_tokens;
  return out;
}

/** A model of `GET /models` as {@linkcode ModelInfo}. */
export function toModelInfo(model: OpenAiModel): ModelInfo {
  const created = model.created;
  return {
    name: model.id,
    ...(typeof created === "number" && created > 0 &&
      { modifiedAt: new Date(created * 1000).toISOString() }),
    ...(model.owned_by && { family: model.owned_by }),
  };
}

/** Who sent a reply, for the messages about it. */
export interface ReplySource {
  /** Display name, e.g. `OpenAI`. */
  name: string;
  /** Address for messages. */
  address: string;
}

/**
 * A tool call's argument text (assembled from streamed fragments) as an
 * object; anything else is an invalid response.
 */
export function parseArguments(
  source: ReplySource,
  call: { id?: string; name: string; text: string },
): Record<string, unknown> {
  if (call.text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(call.text);
  } catch (cause) {
    throw new InvalidResponseError(
      `Invalid response from ${source.name} at ${source.address}: the arguments of tool call "${call.name}"${
        call.id ? ` (${call.id})` : ""
      } are not valid JSON (${
        preview(call.text)
      }): the model wrote malformed arguments; retry, or pick a model with reliable tool support.`,
      { cause },
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidResponseError(
      `Invalid response from ${source.name} at ${source.address}: the arguments of tool call "${call.name}" are ${
        preview(call.text)
      }, not a JSON object: retry, or pick a model with reliable tool support.`,
    );
  }
  return value as Record<string, unknown>;
}

/** A tool call of a whole reply, arguments parsed. */
export function toToolCall(
  source: ReplySource,
  call: { id?: string | null; function: { name: string; arguments?: string | null } },
): ToolCall {
  const id = call.id ?? undefined;
  return {
    ...(id && { id }),
    name: call.function.name,
    arguments: parseArguments(source, {
      id,
      name: call.function.name,
      text: call.function.arguments ?? "",
    }),
  };
}

function preview(text: string): string {
  const cut = text.length > 120 ? `${text.slice(0, 120)}…` : text;
  return JSON.stringify(cut);
}
