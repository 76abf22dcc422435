/**
 * A streamed `POST /v1/messages` call: Anthropic's server-sent events read
 * incrementally through the shared stream reader and SSE parser, each
 * event validated, and the content blocks assembled into
 * {@linkcode Chunk}s: text and thinking as they arrive, each tool call
 * once its `input_json_delta` fragments form its arguments, and the final
 * result at `message_stop`.
 *
 * Failures a retry can cure (429, 529, 5xx, a reset connection, an
 * `overloaded_error` event) are retried while nothing has been relayed;
 * after the first chunk nothing is (the client would see text twice).
 * Leaving early (abort, error, budget, consumer `break`) cancels the body,
 * so Anthropic stops generating.
 *
 * @module
 */

import { StreamBudget } from "../budget.ts";
import type { Deadline } from "../deadline.ts";
import { ConnectionDroppedError, InvalidResponseError, ProviderError } from "../errors.ts";
import { describeBody, type HttpUpstream, startCall } from "../http.ts";
import { LineTooLongError, preview } from "../ndjson.ts";
import { type RetryJudge, type RetryOptions, withRetries } from "../retry.ts";
import { type SseEvent, sseParser } from "../sse.ts";
import { readStream, readText } from "../stream.ts";
import { TextBuffer } from "../text_buffer.ts";
import type { Chunk, FinalResult, ToolCall } from "../types.ts";
import { checkReply } from "../validate.ts";
import { toDoneReason, toUsage } from "./convert.ts";
import type { SignatureMemory, ThinkingBlock } from "./signatures.ts";
import {
  type AnthropicContentBlock,
  type AnthropicEvent,
  type AnthropicUsage,
  deltaEventShape,
  EVENT_SCHEMAS,
} from "./wire.ts";

/** Most content blocks one reply may open; a reply has a handful. */
export const MAX_CONTENT_BLOCKS = 1024;

/** Options of {@linkcode streamMessages}. */
export interface StreamMessagesOptions {
  /** Model named in the request. */
  model: string;
  /** Cancels the call and the upstream request. */
  signal?: AbortSignal;
  /** Longest accepted event in characters. */
  maxEventLength: number;
  /** Retry policy before the first chunk. */
  retry: RetryOptions;
  /** Which failures a retry can cure. */
  judge: RetryJudge;
  /**
   * Sends the request (with its credential) under `deadline` and returns
   * the response once its headers are in; HTTP errors are thrown typed.
   */
  send(deadline: Deadline): Promise<Response>;
  /** Maps an `error` event onto a typed error. */
  streamError(error: { type: string; message: string }): ProviderError;
  /** Where the signed thinking blocks of the reply are remembered. */
  signatures: SignatureMemory;
}

const PATH = "/v1/messages";

/** Posts a streaming request and yields its chunks, ending with `done`. */
export async function* streamMessages(
  upstream: HttpUpstream,
  options: StreamMessagesOptions,
): AsyncGenerator<Chunk> {
  const call: Call = {
    upstream,
    options,
    deadline: startCall(upstream, options.signal),
    started: performance.now(),
  };
  const { deadline } = call;
  let reader: EventReader | undefined;
  try {
    const opened = await withRetries(
      () => open(call),
      {
        ...options.judge,
        onRetry(error, attempt, delayMs) {
          // The wait belongs to no phase: only the total deadline (and the caller) may end it.
          deadline.arm("total");
          options.judge.onRetry?.(error, attempt, delayMs);
        },
      },
      { ...options.retry, signal: deadline.signal },
    );
    reader = opened.reader;
    for (const chunk of opened.chunks) yield chunk;
    while (!reader.assembler.finished) {
      const chunks = await reader.next();
      if (chunks === undefined) throw reader.endedEarly();
      for (const chunk of chunks) yield chunk;
    }
  } finally {
    await reader?.close();
    deadline.dispose();
  }
}

/** One streamed call: where it goes, its options, its deadlines and when it began. */
interface Call {
  upstream: HttpUpstream;
  options: StreamMessagesOptions;
  deadline: Deadline;
  /** `performance.now()` when the call began (for `usage.totalMs`). */
  started: number;
}

/**
 * One attempt: sends the request and reads events until the first chunk
 * (or the end of a reply with none), so failures up to there can be retried.
 */
async function open(call: Call): Promise<{ reader: EventReader; chunks: Chunk[] }> {
  const { upstream, options, deadline } = call;
  const response = await options.send(deadline);
  const type = response.headers.get("content-type") ?? "";
  if (!response.body || !type.includes("text/event-stream")) {
    const body = await readText(response.body, {
      maxBytes: upstream.limits.maxErrorBytes,
      signal: deadline.signal,
    }).catch(() => ({ text: "", truncated: false }));
    throw new InvalidResponseError(
      `Invalid response from ${upstream.name} at ${upstream.address}: ${PATH} answered with ${
        describeBody(type, body.text, body.truncated)
      } instead of an event stream: is ${upstream.addressSetting} pointing at Anthropic's API?`,
    );
  }
  deadline.arm("first-token");
  const reader = new EventReader(call, response.body);
  const { assembler } = reader;
  try {
    while (true) {
      const chunks = await reader.next();
      if (chunks === undefined) throw reader.endedEarly();
      if (chunks.length || assembler.finished) return { reader, chunks };
    }
  } catch (error) {
    await reader.close();
    throw error;
  }
}

/** Reads the body's events one at a time and hands them to the assembler. */
class EventReader {
  readonly assembler: MessageAssembler;
  #iterator: AsyncGenerator<SseEvent>;
  #upstream: HttpUpstream;
  #deadline: Deadline;
  #events = 0;

  /** Reads `body`, the reply of `call`, with a fresh assembler. */
  constructor(call: Call, body: ReadableStream<Uint8Array>) {
    this.#upstream = call.upstream;
    this.#deadline = call.deadline;
    this.assembler = new MessageAssembler(call);
    this.#iterator = readStream(body, sseParser({ maxEventLength: call.options.maxEventLength }), {
      signal: call.deadline.signal,
    });
  }

  /** The chunks the next event makes (maybe none), or undefined when the body ended. */
  async next(): Promise<Chunk[] | undefined> {
    let next: IteratorResult<SseEvent>;
    try {
      next = await this.#iterator.next();
    } catch (error) {
      if (this.#deadline.signal.aborted) throw this.#deadline.signal.reason;
      // The SSE parser's refusal (an event past its bound) does not know who sent the event:
      // without this it reached the client as a bare "the server sent an event longer than ...".
      if (error instanceof LineTooLongError) {
        throw invalidReply(this.#upstream, error.message, error);
      }
      if (error instanceof ProviderError) throw error;
      const { name, address } = this.#upstream;
      throw new ConnectionDroppedError(
        `${name} at ${address} closed the connection in the middle of the reply after ${this.#events} events: retry; if it keeps happening, check the network or proxy between Rune and ${name}.`,
        { cause: error },
      );
    }
    if (next.done) return undefined;
    this.#events++;
    this.#deadline.arm("idle");
    const event = parseEvent(next.value, { source: this.#upstream, number: this.#events });
    return event ? this.assembler.push(event) : [];
  }

  /** The error for a body that ended before `message_stop`. */
  endedEarly(): ConnectionDroppedError {
    const { name, address } = this.#upstream;
    return new ConnectionDroppedError(
      `${name} at ${address} ended the reply after ${this.#events} events without "message_stop": the connection was cut; retry.`,
    );
  }

  /** Cancels the body (a no-op once it has ended). */
  async close(): Promise<void> {
    await this.#iterator.return(undefined);
  }
}

/**
 * Parses and validates the `number`th event from `source`; undefined for
 * event types Rune does not act on.
 */
function parseEvent(
  sse: SseEvent,
  { source: upstream, number }: { source: HttpUpstream; number: number },
): AnthropicEvent | undefined {
  const where = `${PATH} event ${number}`;
  let value: unknown;
  try {
    value = JSON.parse(sse.data);
  } catch (cause) {
    throw new InvalidResponseError(
      `Invalid response from ${upstream.name} at ${upstream.address}: ${where}${
        sse.event ? ` (${sse.event})` : ""
      } is not JSON: ${preview(sse.data)}`,
      { cause },
    );
  }
  if (deltaEventShape.fast?.(value)) return value;
  const type = sse.event === "error"
    ? "error"
    : typeof value === "object" && value !== null
    ? (value as { type?: unknown }).type
    : undefined;
  if (typeof type !== "string") {
    return checkReply(value, { schema: EVENT_SCHEMAS.ping }, upstream, where);
  }
  const schema = EVENT_SCHEMAS[type];
  // Anthropic adds event types without a new API version: unknown ones are skipped.
  if (!schema) return undefined;
  return checkReply(value, { schema }, upstream, `${where} (${type})`);
}

interface Block {
  type: string;
  text: string;
  json: string;
  signature?: string;
  data?: string;
  id?: string;
  name?: string;
  input?: unknown;
  stopped: boolean;
}

/** Turns events into chunks and, at `message_stop`, the final result. */
class MessageAssembler {
  finished = false;
  #upstream: HttpUpstream;
  #options: StreamMessagesOptions;
  #started: number;
  #budget: StreamBudget;
  #model: string;
  #begun = false;
  #usage: AnthropicUsage = {};
  #blocks = new Map<number, Block>();
  #text = new TextBuffer();
  #thinking = "";
  #thinkingBlocks: ThinkingBlock[] = [];
  #toolCalls: ToolCall[] = [];
  #stopReason: string | null | undefined;

  /** Assembles the reply of `call`. */
  constructor({ upstream, options, started }: Call) {
    this.#upstream = upstream;
    this.#options = options;
    this.#started = started;
    this.#model = options.model;
    this.#budget = new StreamBudget(upstream, upstream.limits.maxStreamBytes);
  }

  push(event: AnthropicEvent): Chunk[] {
    if (this.finished) return [];
    switch (event.type) {
      case "content_block_delta":
        return this.#delta(event.index, event.delta);
      case "message_start":
        if (this.#begun) throw this.#invalid(`a second "message_start" arrived`);
        this.#begun = true;
        if (event.message.model) this.#model = event.message.model;
        this.#mergeUsage(event.message.usage);
        return [];
      case "content_block_start":
        return this.#start(event.index, event.content_block);
      case "content_block_stop":
        return this.#stop(event.index);
      case "message_delta":
        this.#stopReason = event.delta.stop_reason;
        this.#mergeUsage(event.usage);
        return [];
      case "message_stop":
        return [this.#finish()];
      case "error":
        throw this.#options.streamError(event.error);
      case "ping":
        return [];
    }
  }

  #start(index: number, start: AnthropicContentBlock): Chunk[] {
    if (this.#blocks.has(index)) throw this.#invalid(`content block ${index} started twice`);
    if (this.#blocks.size >= MAX_CONTENT_BLOCKS) {
      throw this.#invalid(`the reply opened more than ${MAX_CONTENT_BLOCKS} content blocks`);
    }
    const block: Block = { type: start.type, text: "", json: "", stopped: false };
    this.#blocks.set(index, block);
    switch (start.type) {
      case "text":
        return start.text ? this.#addText(start.text) : [];
      case "thinking":
        if (start.signature) block.signature = start.signature;
        return start.thinking ? this.#addThinking(block, start.thinking) : [];
      case "redacted_thinking":
        block.data = start.data ?? "";
        this.#budget.add(block.data);
        return [];
      case "tool_use":
        if (!start.id || !start.name) {
          throw this.#invalid(`tool_use block ${index} has no id or name`);
        }
        block.id = start.id;
        block.name = start.name;
        block.input = start.input;
        this.#budget.add(start.id);
        this.#budget.add(start.name);
        return [];
      default:
        // Server tools, web search results, ...: nothing Rune relays.
        return [];
    }
  }

  #delta(index: number, delta: { type: string; [key: string]: unknown }): Chunk[] {
    const block = this.#blocks.get(index);
    if (!block) {
      throw this.#invalid(`a delta arrived for content block ${index}, which never started`);
    }
    if (block.stopped) {
      throw this.#invalid(`a delta arrived for content block ${index} after it stopped`);
    }
    const field = (name: string): string => {
      const value = delta[name];
      if (typeof value !== "string") throw this.#invalid(`a ${delta.type} without "${name}"`);
      return value;
    };
    switch (delta.type) {
      case "text_delta":
        if (block.type !== "text") throw this.#invalid(`a text_delta for a ${block.type} block`);
        return this.#addText(field("text"));
      case "thinking_delta":
        if (block.type !== "thinking") {
          throw this.#invalid(`a thinking_delta for a ${block.type} block`);
        }
        return this.#addThinking(block, field("thinking"));
      case "signature_delta": {
        const signature = field("signature");
        this.#budget.add(signature);
        block.signature = (block.signature ?? "") + signature;
        return [];
      }
      case "input_json_delta": {
        const fragment = field("partial_json");
        // Only client tool calls are assembled; server tools' inputs are Anthropic's business.
        if (block.type === "tool_use") {
          this.#budget.add(fragment);
          block.json += fragment;
        }
        return [];
      }
      default:
        // citations_delta and later delta types: nothing Rune relays.
        return [];
    }
  }

  #addText(text: string): Chunk[] {
    this.#budget.add(text);
    // A text block's own text is never read: only the whole reply's is kept.
    this.#text.add(text);
    return [{ type: "text", text }];
  }

  #addThinking(block: Block, text: string): Chunk[] {
    this.#budget.add(text);
    block.text += text;
    this.#thinking += text;
    return [{ type: "thinking", text }];
  }

  #stop(index: number): Chunk[] {
    const block = this.#blocks.get(index);
    if (!block) throw this.#invalid(`content block ${index} stopped without starting`);
    if (block.stopped) return [];
    block.stopped = true;
    switch (block.type) {
      case "tool_use": {
        const call: ToolCall = {
          id: block.id!,
          name: block.name!,
          arguments: this.#arguments(block, index),
        };
        this.#toolCalls.push(call);
        return [{ type: "tool_calls", toolCalls: [call] }];
      }
      case "thinking":
        if (block.signature) {
          this.#thinkingBlocks.push({
            type: "thinking",
            thinking: block.text,
            signature: block.signature,
          });
        }
        return [];
      case "redacted_thinking":
        this.#thinkingBlocks.push({ type: "redacted_thinking", data: block.data ?? "" });
        return [];
      default:
        return [];
    }
  }

  /** The tool call's arguments: its `input_json_delta` fragments parsed, or the start's `input`. */
  #arguments(block: Block, index: number): Record<string, unknown> {
    let value: unknown = block.input ?? {};
    if (block.json.trim() !== "") {
      try {
        value = JSON.parse(block.json);
      } catch (cause) {
        throw this.#invalid(
          `the arguments of tool call "${block.name}" (block ${index}) are not valid JSON: ${
            preview(block.json)
          }`,
          cause,
        );
      }
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw this.#invalid(
        `the arguments of tool call "${block.name}" (block ${index}) are not an object`,
      );
    }
    return value as Record<string, unknown>;
  }

  #mergeUsage(usage: AnthropicUsage | null | undefined): void {
    if (!usage) return;
    // message_delta's counts are cumulative totals: each one present replaces the last.
    for (const [key, value] of Object.entries(usage)) {
      if (typeof value === "number") (this.#usage as Record<string, unknown>)[key] = value;
    }
  }

  #finish(): Chunk {
    this.finished = true;
    // Every thinking block must be signed for the turn to be given back to Anthropic whole.
    const thinkingCount =
      [...this.#blocks.values()].filter((b) =>
        b.type === "thinking" || b.type === "redacted_thinking"
      ).length;
    if (this.#thinking && this.#thinkingBlocks.length === thinkingCount) {
      this.#options.signatures.remember(this.#thinking, this.#thinkingBlocks);
    }
    const result: FinalResult = {
      model: this.#model,
      text: this.#text.text,
      ...(this.#thinking && { thinking: this.#thinking }),
      toolCalls: this.#toolCalls,
      doneReason: toDoneReason(this.#stopReason, this.#toolCalls.length > 0),
      usage: toUsage(this.#usage, performance.now() - this.#started),
    };
    return { type: "done", result };
  }

  #invalid(what: string, cause?: unknown): InvalidResponseError {
    return invalidReply(this.#upstream, what, cause);
  }
}

/** "Invalid response from X at Y: /v1/messages: `what`", with what to check. */
function invalidReply(upstream: HttpUpstream, what: string, cause?: unknown): InvalidResponseError {
  const { name, address, addressSetting } = upstream;
  return new InvalidResponseError(
    `Invalid response from ${name} at ${address}: ${PATH}: ${what}. Is ${addressSetting} pointing at Anthropic's API, or a gateway that speaks it faithfully?`,
    cause === undefined ? undefined : { cause },
  );
}
