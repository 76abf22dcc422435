/**
 * Mapping between the provider-neutral types and Ollama's wire format:
 * request bodies out, validated replies in.
 *
 * @module
 */

import type {
  Capabilities,
  ChatRequest,
  EmbedRequest,
  GenerateRequest,
  Message,
  ModelCard,
  ModelDetails,
  ModelInfo,
  ModelOptions,
  ParameterValue,
  RunningModel,
  Usage,
} from "../types.ts";
import type { OllamaRunningModel, OllamaShow, OllamaStats, OllamaTagModel } from "./wire.ts";

/** Ollama normalises `name` to `name:latest`; caches key on that. */
export function normalizeModelName(model: string): string {
  return model.includes(":") ? model : `${model}:latest`;
}

/** The body of a streamed `/api/generate` request. */
export function generateBody(request: GenerateRequest): Record<string, unknown> {
  return {
    ...passthrough(request.providerOptions),
    model: request.model,
    prompt: request.prompt,
    ...(request.system !== undefined && { system: request.system }),
    ...(request.images?.length && { images: request.images.map((image) => image.data) }),
    ...commonFields(request),
    stream: true,
  };
}

/** The body of a streamed `/api/chat` request. */
export function chatBody(request: ChatRequest): Record<string, unknown> {
  return {
    ...passthrough(request.providerOptions),
    model: request.model,
    messages: request.messages.map(toOllamaMessage),
    ...(request.tools?.length && {
      tools: request.tools.map((tool) => ({
        type: "function",
        function: {
          name: tool.name,
          description: tool.description ?? "",
          parameters: tool.parameters ?? { type: "object", properties: {} },
        },
      })),
    }),
    ...commonFields(request),
    stream: true,
  };
}

/** The body of an `/api/embed` request. */
export function embedBody(request: EmbedRequest): Record<string, unknown> {
  return {
    model: request.model,
    input: request.input,
    ...(request.truncate !== undefined && { truncate: request.truncate }),
    ...(request.keepAlive !== undefined && { keep_alive: request.keepAlive }),
  };
}

/**
 * `provider_options`: Ollama request fields Rune has no argument for (`raw`,
 * `suffix`, `template`, ...), sent as given; the tool's own arguments win.
 */
function passthrough(options: Record<string, unknown> | undefined): Record<string, unknown> {
  return options ?? {};
}

function commonFields(request: GenerateRequest | ChatRequest): Record<string, unknown> {
  const extra = request.providerOptions?.options;
  const mapped = toOllamaOptions(request.options);
  // Sampling options given in provider_options.options (mirostat, repeat_penalty, ...) are
  // merged under the neutral ones.
  const options = extra && typeof extra === "object" && !Array.isArray(extra)
    ? { ...extra, ...mapped }
    : mapped;
  return {
    ...(request.format !== undefined && { format: request.format }),
    ...(options && { options }),
    // Ollama's think is on or off (or a level for some models): a budget means on.
    ...(request.think !== undefined && { think: request.think !== false && request.think !== 0 }),
    ...(request.keepAlive !== undefined && { keep_alive: request.keepAlive }),
  };
}

function toOllamaOptions(options: ModelOptions | undefined): Record<string, unknown> | undefined {
  if (!options) return undefined;
  const mapped: Record<string, unknown> = {};
  if (options.temperature !== undefined) mapped.temperature = options.temperature;
  if (options.topP !== undefined) mapped.top_p = options.topP;
  if (options.topK !== undefined) mapped.top_k = options.topK;
  if (options.seed !== undefined) mapped.seed = options.seed;
  if (options.maxTokens !== undefined) mapped.num_predict = options.maxTokens;
  if (options.stop !== undefined) mapped.stop = options.stop;
  if (options.contextLength !== undefined) mapped.num_ctx = options.contextLength;
  return Object.keys(mapped).length ? mapped : undefined;
}

function toOllamaMessage(message: Message): Record<string, unknown> {
  return {
    role: message.role,
    content: message.content,
    ...(message.thinking !== undefined && { thinking: message.thinking }),
    ...(message.images?.length && { images: message.images.map((image) => image.data) }),
    ...(message.toolCalls?.length && {
      tool_calls: message.toolCalls.map((call) => ({
        ...(call.id !== undefined && { id: call.id }),
        function: { name: call.name, arguments: call.arguments },
      })),
    }),
    ...(message.toolName !== undefined && { tool_name: message.toolName }),
    // Ollama 0.12.10 and later pair results with calls by id; older ones ignore the field.
    ...(message.toolCallId !== undefined && { tool_call_id: message.toolCallId }),
  };
}

/** A model of `/api/tags`, with its `/api/ps` entry when it is loaded. */
export function toModelInfo(model: OllamaTagModel, running?: OllamaRunningModel): ModelInfo {
  return {
    ...(running && {
      loaded: {
        ...(running.expires_at && { expiresAt: running.expires_at }),
        ...(running.size_vram !== undefined && { sizeVram: running.size_vram }),
      },
    }),
    name: model.name,
    ...(model.size !== undefined && { size: model.size }),
    ...(model.details?.family && { family: model.details.family }),
    ...(model.details?.parameter_size && { parameterSize: model.details.parameter_size }),
    ...(model.details?.quantization_level &&
      { quantization: model.details.quantization_level }),
    ...(model.modified_at && { modifiedAt: model.modified_at }),
  };
}

/** Maps Ollama's capability names onto the provider-neutral flags. */
export function toCapabilities(names: readonly string[]): Capabilities {
  const has = (name: string) => names.includes(name);
  return {
    completion: has("completion"),
    streaming: has("completion"),
    vision: has("vision"),
    tools: has("tools"),
    embeddings: has("embedding"),
    thinking: has("thinking"),
  };
}

/** `/api/show`'s reply as {@linkcode ModelDetails}. */
export function toModelDetails(name: string, show: OllamaShow): ModelDetails {
  const info = show.model_info ?? {};
  const contextKey = Object.keys(info).find((key) => key.endsWith(".context_length"));
  const contextLength = contextKey ? Number(info[contextKey]) : undefined;
  return {
    name,
    ...(show.details?.family && { family: show.details.family }),
    ...(show.details?.parameter_size && { parameterSize: show.details.parameter_size }),
    ...(show.details?.quantization_level && { quantization: show.details.quantization_level }),
    ...(show.modified_at && { modifiedAt: show.modified_at }),
    capabilities: toCapabilities(show.capabilities ?? ["completion"]),
    capabilitiesKnown: Array.isArray(show.capabilities),
    ...(contextLength !== undefined && Number.isFinite(contextLength) && { contextLength }),
    extra: {
      ...(show.parameters !== undefined && { parameters: show.parameters }),
      ...(show.template !== undefined && { template: show.template }),
      ...(show.license !== undefined && { license: show.license }),
    },
  };
}

/** A model of `/api/ps` as a {@linkcode RunningModel}. */
export function toRunningModel(model: OllamaRunningModel): RunningModel {
  return {
    name: model.name ?? model.model ?? "",
    ...(model.size !== undefined && { size: model.size }),
    ...(model.size_vram !== undefined && { sizeVram: model.size_vram }),
    ...(model.expires_at && { expiresAt: model.expires_at }),
    ...(model.context_length !== undefined && { contextLength: model.context_length }),
    ...(model.details?.family && { family: model.details.family }),
    ...(model.details?.parameter_size && { parameterSize: model.details.parameter_size }),
    ...(model.details?.quantization_level && { quantization: model.details.quantization_level }),
  };
}

/** `/api/show`'s reply as a {@linkcode ModelCard}: the details plus parameters, template, license. */
export function toModelCard(name: string, show: OllamaShow): ModelCard {
  return {
    ...toModelDetails(name, show),
    parameters: parseParameters(show.parameters ?? ""),
    ...(show.template !== undefined && { template: show.template }),
    ...(show.license !== undefined && { license: show.license }),
  };
}

/** Parameters Ollama keeps as lists even with one value (`api.Options`' slices). */
const LIST_PARAMETERS = new Set(["stop"]);

/**
 * Ollama's `parameters` text as values by name. Ollama writes one line per
 * value, `fmt.Sprintf("%-*s %#v", 30, key, value)` (`server/routes.go`), a
 * list as one line per element: strings Go-quoted, numbers and booleans
 * bare. A name on several lines (or `stop`) becomes a list; a line that does
 * not parse keeps its text.
 */
export function parseParameters(text: string): Record<string, ParameterValue> {
  const values: Record<string, ParameterValue> = {};
  for (const line of text.split("\n")) {
    const match = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, key, raw] = match;
    const value = parseGoValue(raw.trim());
    const previous = values[key];
    if (previous === undefined) {
      values[key] = LIST_PARAMETERS.has(key) ? [String(value)] : value;
    } else {
      values[key] = [...(Array.isArray(previous) ? previous : [String(previous)]), String(value)];
    }
  }
  return values;
}

/** A `%#v` value: a Go-quoted string, a number, a boolean, or (anything else) its text. */
function parseGoValue(raw: string): string | number | boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  if (/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(raw)) return Number(raw);
  if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) {
    return unquoteGo(raw.slice(1, -1)) ?? raw;
  }
  return raw;
}

const GO_ESCAPES: Record<string, string> = {
  a: "\x07",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  "\\": "\\",
  '"': '"',
  "'": "'",
};

/** The body of a string `strconv.Quote` wrote, unescaped; undefined when it is not one. */
function unquoteGo(body: string): string | undefined {
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = body[++i];
    if (e in GO_ESCAPES) {
      out += GO_ESCAPES[e];
      continue;
    }
    const digits = e === "x" ? 2 : e === "u" ? 4 : e === "U" ? 8 : 0;
    const hex = body.slice(i + 1, i + 1 + digits);
    if (digits === 0 || !/^[0-9a-f]+$/i.test(hex) || hex.length !== digits) return undefined;
    const code = parseInt(hex, 16);
    if (code > 0x10ffff) return undefined;
    // \x is a byte: Go writes it only for bytes that are not valid UTF-8, kept as that code point.
    out += String.fromCodePoint(code);
    i += digits;
  }
  return out;
}

const NS_PER_MS = 1_000_000;

/** Ollama's counts and nanosecond durations as {@linkcode Usage}. */
export function toUsage(line: OllamaStats): Usage {
  const usage: Usage = {};
  if (line.prompt_eval_count !== undefined) usage.promptTokens = line.prompt_eval_count;
  if (line.eval_count !== undefined) usage.completionTokens = line.eval_count;
  if (line.total_duration !== undefined) usage.totalMs = line.total_duration / NS_PER_MS;
  if (line.load_duration !== undefined) usage.loadMs = line.load_duration / NS_PER_MS;
  if (line.prompt_eval_duration !== undefined) {
    usage.promptMs = line.prompt_eval_duration / NS_PER_MS;
  }
  if (line.eval_duration !== undefined) usage.generationMs = line.eval_duration / NS_PER_MS;
  return usage;
}
