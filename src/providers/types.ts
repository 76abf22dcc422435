/**
 * The provider-neutral interface that every model backend implements.
 *
 * Ollama, Anthropic Claude and OpenAI-compatible servers all fit this shape,
 * so the MCP and CLI layers never see a wire format. Every call takes an
 * `AbortSignal`; streaming calls return an async iterable of
 * {@linkcode Chunk}s that ends with a `done` chunk carrying the
 * {@linkcode FinalResult}. Tool calls and tool results carry ids (Anthropic
 * and OpenAI pair them by id), images carry a media type, `think` can be a
 * token budget, and stop reasons are normalised.
 *
 * @module
 */

/** What a model (or a provider) can do. */
export interface Capabilities {
  /** Text generation (`generate`/`chat`). */
  completion: boolean;
  /** Tokens are streamed as they are produced. */
  streaming: boolean;
  /** Accepts images in prompts or messages. */
  vision: boolean;
  /** Tool (function) calling in chat. */
  tools: boolean;
  /** Produces embeddings. */
  embeddings: boolean;
  /** Emits separate reasoning ("thinking") text. */
  thinking: boolean;
}

/** A function the model may call during chat. */
export interface ToolDefinition {
  /** Function name, as the model will call it. */
  name: string;
  /** What the function does, for the model. */
  description?: string;
  /** JSON Schema of the arguments object. */
  parameters?: Record<string, unknown>;
}

/** A tool call the model produced. */
export interface ToolCall {
  /** The call's id, which a tool result names (`toolCallId`); absent when the backend gives none. */
  id?: string;
  /** Name of the called function. */
  name: string;
  /** Arguments as a JSON object. */
  arguments: Record<string, unknown>;
}

/** An image in a prompt or message. */
export interface Image {
  /** Base64-encoded bytes, without a `data:` prefix. */
  data: string;
  /** Media type, e.g. `image/png`; absent when unknown. */
  mediaType?: string;
}

/** One chat message. */
export interface Message {
  /** Who speaks. */
  role: "system" | "user" | "assistant" | "tool";
  /** The text of the message. */
  content: string;
  /** Images attached to the message. */
  images?: Image[];
  /** Tool calls made by the assistant. */
  toolCalls?: ToolCall[];
  /** For `tool` messages: the id of the call this is the result of. */
  toolCallId?: string;
  /** For `tool` messages: the name of the tool whose result this is. */
  toolName?: string;
  /** Reasoning text of an earlier assistant turn. */
  thinking?: string;
}

/** Sampling and context options common to all providers. */
export interface ModelOptions {
  /** Sampling temperature. */
  temperature?: number;
  /** Nucleus sampling cut-off. */
  topP?: number;
  /** Top-k sampling cut-off. */
  topK?: number;
  /** Seed for reproducible output. */
  seed?: number;
  /** Maximum number of tokens to generate. */
  maxTokens?: number;
  /** Sequences that stop generation. */
  stop?: string[];
  /** Context window size in tokens. */
  contextLength?: number;
}

/** Output format: free text, any JSON, or JSON matching a schema. */
export type OutputFormat = "json" | Record<string, unknown>;

/**
 * Separate reasoning: on or off, or a budget of reasoning tokens (providers
 * without budgets treat any budget as on).
 */
export type Think = boolean | number;

/** Fields shared by `generate` and `chat` requests. */
export interface CompletionRequest {
  /** Model name, e.g. `llama3.2`. */
  model: string;
  /** Constrain the output to JSON or to a JSON Schema. */
  format?: OutputFormat;
  /** Sampling options. */
  options?: ModelOptions;
  /** Ask for (or turn off) separate reasoning output. */
  think?: Think;
  /** How long the backend keeps the model loaded, e.g. `"5m"` or seconds. */
  keepAlive?: string | number;
  /** Provider-specific request fields, passed through unchanged. */
  providerOptions?: Record<string, unknown>;
  /**
   * Ask the response cache to keep (and reuse) this result even though it is
   * not deterministic (the `cache: true` tool argument); providers ignore it.
   */
  cache?: boolean;
}

/** A single-prompt completion request. */
export interface GenerateRequest extends CompletionRequest {
  /** The prompt. */
  prompt: string;
  /** System prompt. */
  system?: string;
  /** Images for vision models. */
  images?: Image[];
}

/** A multi-turn chat request. */
export interface ChatRequest extends CompletionRequest {
  /** The conversation so far. */
  messages: Message[];
  /** Functions the model may call. */
  tools?: ToolDefinition[];
}

/** An embedding request for one text or a batch. */
export interface EmbedRequest {
  /** Embedding model name. */
  model: string;
  /** Text or texts to embed. */
  input: string | string[];
  /** Truncate inputs that exceed the context length (default true). */
  truncate?: boolean;
  /** How long the backend keeps the model loaded. */
  keepAlive?: string | number;
  /** Provider-specific request fields, passed through unchanged. */
  providerOptions?: Record<string, unknown>;
}

/** Token counts and timings of a finished call. */
export interface Usage {
  /** Tokens in the prompt. */
  promptTokens?: number;
  /** Tokens generated. */
  completionTokens?: number;
  /** Total wall time in milliseconds. */
  totalMs?: number;
  /** Model load time in milliseconds. */
  loadMs?: number;
  /** Prompt evaluation time in milliseconds. */
  promptMs?: number;
  /** Generation time in milliseconds. */
  generationMs?: number;
}

/**
 * Why generation stopped, the same for every provider: the model finished
 * (`stop`), hit the token limit (`length`), asked for tools (`tool_calls`),
 * or was filtered (`content_filter`).
 */
export type DoneReason = "stop" | "length" | "tool_calls" | "content_filter";

/** The outcome of a finished `generate` or `chat` call. */
export interface FinalResult {
  /** Model that answered. */
  model: string;
  /** The whole generated text. */
  text: string;
  /** The whole reasoning text, if any. */
  thinking?: string;
  /** Tool calls the model made. */
  toolCalls: ToolCall[];
  /** Why generation stopped. */
  doneReason: DoneReason;
  /** Token counts and durations. */
  usage: Usage;
  /** Set when the result came from the response cache, not from the provider. */
  cached?: boolean;
}

/** One piece of a streamed completion. */
export type Chunk =
  | { type: "text"; text: string }
  | { type: "thinking"; text: string }
  | { type: "tool_calls"; toolCalls: ToolCall[] }
  | { type: "done"; result: FinalResult };

/** The result of an embedding call. */
export interface EmbedResult {
  /** Model that answered. */
  model: string;
  /** One vector per input, in input order. */
  embeddings: number[][];
  /** Token counts and durations. */
  usage: Usage;
  /** Set when the result came from the response cache, not from the provider. */
  cached?: boolean;
}

/** A model the provider can serve. */
export interface ModelInfo {
  /** Full name, e.g. `llama3.2:latest`. */
  name: string;
  /** Size on disk in bytes. */
  size?: number;
  /** Model family, e.g. `llama`. */
  family?: string;
  /** Parameter count as text, e.g. `3.2B`. */
  parameterSize?: string;
  /** Quantization, e.g. `Q4_K_M`. */
  quantization?: string;
  /** Last modification time (ISO 8601). */
  modifiedAt?: string;
  /** Capabilities, when the provider knows them. */
  capabilities?: Capabilities;
  /** Set when the model is loaded in memory right now. */
  loaded?: {
    /** When the backend will unload it (ISO 8601). */
    expiresAt?: string;
    /** Bytes of it held in GPU memory. */
    sizeVram?: number;
  };
  /** The hosts (`host:port`) that have it, when the provider spreads over several hosts. */
  hosts?: string[];
}

/** Details of one model, from the provider's "show" call. */
export interface ModelDetails extends ModelInfo {
  /** Capabilities of this model. */
  capabilities: Capabilities;
  /** False when the backend did not report capabilities (then `capabilities` is a guess). */
  capabilitiesKnown: boolean;
  /** Context length the model was trained with, if known. */
  contextLength?: number;
  /** Provider-specific extras (template, parameters, license...). */
  extra: Record<string, unknown>;
}

/**
 * One step of a model download, summed over the download's parts: the
 * backend's status text and the bytes so far. `completed` never decreases
 * across the steps of one pull; `total` grows as the backend announces
 * more parts (it does not know them all up front).
 */
export interface PullProgress {
  /** What the backend is doing, in its words, e.g. `pulling manifest` or `success`. */
  status: string;
  /** Bytes downloaded (or found already present) so far, summed over the parts announced. */
  completed: number;
  /** Bytes of all the parts announced so far; 0 before the first part. */
  total: number;
  /** True on the last step of a pull that succeeded; `completed` then equals `total`. */
  done: boolean;
}

/** A model loaded in memory right now. */
export interface RunningModel {
  /** Full name, e.g. `llama3.2:latest`. */
  name: string;
  /** Bytes it takes in memory (RAM and VRAM). */
  size?: number;
  /** Bytes of it held in GPU memory. */
  sizeVram?: number;
  /** When the backend will unload it (ISO 8601). */
  expiresAt?: string;
  /** Context window it was loaded with, in tokens. */
  contextLength?: number;
  /** Model family, e.g. `llama`. */
  family?: string;
  /** Parameter count as text, e.g. `3.2B`. */
  parameterSize?: string;
  /** Quantization, e.g. `Q4_K_M`. */
  quantization?: string;
}

/** A value of a model's default parameters: text, a number, a flag, or a list (stop sequences). */
export type ParameterValue = string | number | boolean | string[];

/** Everything a backend says about one installed model (its "model card"). */
export interface ModelCard extends ModelDetails {
  /** The defaults the model ships with (`temperature`, `stop`, ...), by name. */
  parameters: Record<string, ParameterValue>;
  /** The prompt template, in the backend's template language. */
  template?: string;
  /** The license text. */
  license?: string;
}

/**
 * Managing the models a backend holds locally: download, inspect, list
 * what is loaded, delete. Only backends that store models themselves
 * (Ollama) have it, as the optional `Provider.modelManagement`.
 */
export interface ModelManagement {
  /**
   * Downloads `model` (or updates it), streaming progress; the last step
   * has `done: true`. Aborting the signal stops the download.
   */
  pull(model: string, options?: CallOptions): AsyncIterable<PullProgress>;
  /** Deletes an installed model; fails with `ModelNotFoundError` when it is not installed. */
  delete(model: string, options?: CallOptions): Promise<void>;
  /** The models loaded in memory right now. */
  running(options?: CallOptions): Promise<RunningModel[]>;
  /** Details, default parameters, template and license of an installed model. */
  inspect(model: string, options?: CallOptions): Promise<ModelCard>;
}

/** Per-call options accepted by every provider method. */
export interface CallOptions {
  /** Aborts the call and cancels the upstream request. */
  signal?: AbortSignal;
}

/** The interface every model backend implements. */
export interface Provider {
  /** Short id used in tool names, flags and `provider/model` names, e.g. `ollama`. */
  readonly id: string;
  /** The provider type (a registry entry), e.g. `ollama`, `anthropic`, `openai`. */
  readonly type: string;
  /** Name for people, e.g. `Ollama`, `Anthropic`, `OpenRouter`. */
  readonly label: string;
  /** Human-readable address of the backend, for messages and `/healthz`. */
  readonly address: string;
  /**
   * Where its key comes from (`ANTHROPIC_API_KEY`, a config entry, the
   * credential store), never the key; undefined for keyless backends.
   */
  readonly credentialSource?: string;
  /** What this provider supports at all. */
  capabilities(): Capabilities;
  /** Lists the models available. */
  listModels(options?: CallOptions): Promise<ModelInfo[]>;
  /** Details and capabilities of one model. */
  showModel(model: string, options?: CallOptions): Promise<ModelDetails>;
  /** Streams a completion of one prompt. */
  generate(
    request: GenerateRequest,
    options?: CallOptions,
  ): AsyncIterable<Chunk>;
  /** Streams the next assistant turn of a chat. */
  chat(request: ChatRequest, options?: CallOptions): AsyncIterable<Chunk>;
  /** Embeds one text or a batch (only when `capabilities().embeddings`). */
  embed(request: EmbedRequest, options?: CallOptions): Promise<EmbedResult>;
  /** Checks the backend answers; resolves to its version text. */
  ping(options?: CallOptions): Promise<string>;
  /** Model management, for backends that store models themselves (Ollama); absent otherwise. */
  readonly modelManagement?: ModelManagement;
}

/** Collects a chunk stream into its final result (for non-streaming callers). */
export async function collect(
  chunks: AsyncIterable<Chunk>,
): Promise<FinalResult> {
  for await (const chunk of chunks) {
    if (chunk.type === "done") return chunk.result;
  }
  throw new Error("Chunk stream ended without a final result");
}
