/**
 * A streamed `/chat/completions` call: posts the request (through
 * `send.ts`: key, refresh after 401, retries before the first token), reads
 * the server-sent events through the shared stream reader and SSE parser,
 * validates each chunk and turns it into {@linkcode Chunk}s.
 *
 * Content deltas become text; `reasoning_content` (DeepSeek, vLLM) and
 * `reasoning` (OpenRouter) deltas become thinking; tool-call deltas are
 * assembled by `index` (id and name first, then argument fragments) and
 * handed over once, parsed, when the reply ends. Servers that deviate still
 * work: no usage chunk (usage is then empty), no `[DONE]` (a clean end of
 * the body ends the reply), no `finish_reason` (then `stop`, or
 * `tool_calls` when the model called tools), a whole JSON reply instead of
 * a stream, and no `stream_options` support (the caller retries without
 * it). Text, thinking and tool calls count against the stream budget;
 * leaving early cancels the body, so the server stops generating.
 *
 * @module
 */

import { StreamBudget } from "../budget.ts";
import {
  ConnectionDroppedError,
  InvalidResponseError,
  ProviderError,
  UpstreamError,
} from "../errors.ts";
import { describeBody, exchange, type HttpUpstream, startCall } from "../http.ts";
import { LineTooLongError } from "../ndjson.ts";
import { sseParser } from "../sse.ts";
import { readStream, readText } from "../stream.ts";
import { TextBuffer } from "../text_buffer.ts";
import type { Chunk, FinalResult, ToolCall, Usage } from "../types.ts";
import { checkReply } from "../validate.ts";
import { doneReason, parseArguments, toToolCall, toUsage } from "./convert.ts";
import { errorDetail, maskKeys, openAiError, type OpenAiSource } from "./errors.ts";
import { type Access, redact, send } from "./send.ts";
import { chunkShape, completionShape, errorBodySchema, type OpenAiToolCallDelta } from "./wire.ts";

/** Most tool calls one reply may make; past it the reply is refused as invalid. */
export const MAX_TOOL_CALLS = 128;

/** Options of {@linkcode streamChat}. */
export interface StreamChatOptions {
  /** The request body, with `stream: true` (and `stream_options` when the server takes it). */
  payload: Record<string, unknown>;
  /** The model asked for. */
  model: string;
  /** Who answers, for messages. */
  source: OpenAiSource;
  /** How the request authenticates and retries. */
  access: Access;
  /** Longest accepted server-sent event, in characters. */
  maxEventLength: number;
  /** Query string appended to the path (Azure's `?api-version=...`), or `""`. */
  query?: string;
  /** Called when the server refused `stream_options` (then the request is sent again without it). */
  onStreamOptionsRefused?: () => void;
  /** Aborts the call and cancels the body. */
  signal?: AbortSignal;
}

const PATH = "/chat/completions";

/** A tool call being assembled from its fragments. */
interface PartialCall {
  id?: string;
  name: string;
  text: string;
}

/** Posts a streaming chat request and yields its chunks, ending with `done`. */
export async function* streamChat(
  upstream: HttpUpstream,
  options: StreamChatOptions,
): AsyncGenerator<Chunk> {
  const { model, source } = options;
  const deadline = startCall(upstream, options.signal);
  const budget = new StreamBudget(upstream, upstream.limits.maxStreamBytes);
  let secret: string | undefined;
  // Without stream_options once the server refused it, for any retry too.
  let payload = options.payload;
  try {
    const response = await send(
      options.access,
      async (headers, key) => {
        secret = key;
        const path = PATH + (options.query ?? "");
        const request = { method: "POST" as const, path, model, deadline, headers };
        const accept = "text/event-stream, application/json";
        try {
          return await exchange(upstream, {
            ...request,
            payload,
            headersPhase: "first-token",
            accept,
          });
        } catch (error) {
          if (!refusesStreamOptions(error, payload)) throw error;
          // Older or stricter servers answer 400 for stream_options: ask again without it.
          options.onStreamOptionsRefused?.();
          const { stream_options: _, ...rest } = payload;
          payload = rest;
          return await exchange(upstream, {
            ...request,
            payload,
            headersPhase: "first-token",
            accept,
          });
        }
      },
      { signal: deadline.signal, onRetry: () => deadline.arm("first-token") },
    );
    deadline.arm("first-token");
    const type = response.headers.get("content-type") ?? "";
    if (type.includes("json")) {
      yield* wholeReply(upstream, { response, options, signal: deadline.signal, budget });
      return;
    }
    if (!response.body || (type !== "" && !type.includes("event-stream"))) {
      const body = await readText(response.body, {
        maxBytes: upstream.limits.maxErrorBytes,
        signal: deadline.signal,
      }).catch(() => ({ text: "", truncated: false }));
      throw new InvalidResponseError(
        `Invalid response from ${source.name} at ${source.address}: ${PATH} answered with ${
          maskKeys(describeBody(type, body.text, body.truncated))
        } instead of an event stream: is ${source.baseUrlSetting} pointing at an OpenAI-compatible API and not at a proxy or web page?`,
      );
    }
    const events = readStream(
      response.body,
      sseParser({ maxEventLength: options.maxEventLength }),
      { signal: deadline.signal },
    );
    let count = 0;
    let started = false;
    let finish: string | null | undefined;
    let usage: Usage = {};
    let served = model;
    const text = new TextBuffer();
    const thinking = new TextBuffer();
    const calls = new Map<number, PartialCall>();
    try {
      while (true) {
        let next: IteratorResult<{ event?: string; data: string }>;
        try {
          next = await events.next();
        } catch (error) {
          if (deadline.signal.aborted) throw deadline.signal.reason;
          if (error instanceof LineTooLongError) {
            throw new InvalidResponseError(
              `Invalid response from ${source.name} at ${source.address}: ${PATH}: ${error.message}; is ${source.baseUrlSetting} pointing at an OpenAI-compatible API?`,
              { cause: error },
            );
          }
          if (error instanceof ProviderError) throw error;
          throw new ConnectionDroppedError(
            `${source.name} at ${source.address} closed the connection in the middle of the reply after ${count} chunks: it may have crashed or restarted, or a proxy cut the stream; check its status or log and retry.`,
            { cause: error },
          );
        }
        if (next.done) break;
        const { event, data } = next.value;
        if (data === "[DONE]") break;
        count++;
        const where = `${PATH} chunk ${count}`;
        let value: unknown;
        try {
          value = JSON.parse(data);
        } catch (cause) {
          throw new InvalidResponseError(
            `Invalid response from ${source.name} at ${source.address}: ${where} is not JSON (${
              maskKeys(data.slice(0, 80))
            }): is ${source.baseUrlSetting} pointing at an OpenAI-compatible API?`,
            { cause },
          );
        }
        if (event === "error" || isErrorEvent(value)) {
          throw openAiError(source, {
            status: 200,
            detail: errorDetail(data, { contentType: "application/json" }),
            path: PATH,
            model,
          });
        }
        const chunk = checkReply(value, chunkShape, upstream, where);
        if (chunk.model) served = chunk.model;
        if (chunk.usage) usage = toUsage(chunk.usage);
        let content = false;
        for (const choice of chunk.choices ?? []) {
          // Only the first choice is relayed (n > 1 through provider_options is not split).
          if ((choice.index ?? 0) !== 0) continue;
          if (choice.finish_reason) finish = choice.finish_reason;
          const delta = choice.delta;
          if (!delta) continue;
          const thought = delta.reasoning_content ?? delta.reasoning;
          if (thought) {
            budget.add(thought);
            thinking.add(thought);
            content = true;
            yield { type: "thinking", text: thought };
          }
          // A refusal is what the model said instead of an answer: relayed as text.
          const said = delta.content || delta.refusal;
          if (said) {
            budget.add(said);
            text.add(said);
            content = true;
            yield { type: "text", text: said };
          }
          if (delta.tool_calls?.length) {
            delta.tool_calls.forEach((call, position) =>
              addFragment(calls, { delta: call, position, budget })
            );
            content = true;
          }
          if (delta.function_call) {
            addFragment(calls, {
              delta: { index: -1, function: delta.function_call },
              position: 0,
              budget,
            });
            content = true;
          }
          if (calls.size > MAX_TOOL_CALLS) {
            throw new InvalidResponseError(
              `Invalid response from ${source.name} at ${source.address}: the reply makes more than ${MAX_TOOL_CALLS} tool calls; ask for fewer.`,
            );
          }
        }
        // The first-token wait covers a reasoning model's silence after its role chunk.
        if (content || started) {
          started = true;
          deadline.arm("idle");
        }
      }
    } finally {
      await events.return(undefined);
    }
    if (count === 0) {
      throw new InvalidResponseError(
        `Invalid response from ${source.name} at ${source.address}: ${PATH} sent an event stream without a single chunk: check the server's log.`,
      );
    }
    const toolCalls: ToolCall[] = [...calls.values()].map((call) => ({
      ...(call.id && { id: call.id }),
      name: call.name,
      arguments: parseArguments(source, call),
    }));
    if (toolCalls.length) yield { type: "tool_calls", toolCalls };
    const result: FinalResult = {
      model: served,
      text: text.text,
      ...(!thinking.empty && { thinking: thinking.text }),
      toolCalls,
      doneReason: doneReason(finish, toolCalls.length > 0),
      usage,
    };
    yield { type: "done", result };
  } catch (error) {
    throw redact(error, secret);
  } finally {
    deadline.dispose();
  }
}

/** Adds one streamed fragment to the call it belongs to (by `index`, else by position). */
function addFragment(
  calls: Map<number, PartialCall>,
  { delta, position, budget }: {
    delta: OpenAiToolCallDelta;
    position: number;
    budget: StreamBudget;
  },
): void {
  let key = delta.index ?? position;
  let call = calls.get(key);
  const id = delta.id ?? undefined;
  // A server that numbers every call 0 still gives each its own id.
  if (call && id && call.id && id !== call.id) {
    key = -2 - calls.size;
    call = undefined;
  }
  if (!call) {
    call = { name: "", text: "" };
    calls.set(key, call);
  }
  if (id && !call.id) call.id = id;
  const name = delta.function?.name;
  if (name && name !== call.name) {
    budget.add(name);
    call.name += name;
  }
  const fragment = delta.function?.arguments;
  if (fragment) {
    budget.add(fragment);
    call.text += fragment;
  }
}

function isErrorEvent(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    "error" in value && (value as Record<string, unknown>).error != null &&
    !("choices" in value && Array.isArray((value as Record<string, unknown>).choices));
}

/** Whether `error` is a 400 about `stream_options` for a request that sent it. */
function refusesStreamOptions(error: unknown, payload: Record<string, unknown>): boolean {
  return error instanceof UpstreamError && (error.status === 400 || error.status === 422) &&
    payload.stream_options !== undefined && /stream_options/i.test(error.message);
}

/** A server that ignored `stream: true` and sent the whole completion as JSON. */
async function* wholeReply(
  upstream: HttpUpstream,
  { response, options, signal, budget }: {
    response: Response;
    options: StreamChatOptions;
    signal: AbortSignal;
    budget: StreamBudget;
  },
): AsyncGenerator<Chunk> {
  const { source } = options;
  let body;
  try {
    body = await readText(response.body, { maxBytes: upstream.limits.maxStreamBytes, signal });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw new ConnectionDroppedError(
      `${source.name} at ${source.address} closed the connection before finishing its reply to ${PATH}: check its status or log and retry.`,
      { cause: error },
    );
  }
  if (body.truncated) budget.addBytes(upstream.limits.maxStreamBytes + 1);
  let value: unknown;
  try {
    value = JSON.parse(body.text);
  } catch (cause) {
    throw new InvalidResponseError(
      `Invalid response from ${source.name} at ${source.address}: ${PATH} answered with JSON that does not parse: is ${source.baseUrlSetting} pointing at an OpenAI-compatible API?`,
      { cause },
    );
  }
  const error = errorBodySchema.safeParse(value);
  if (error.success && error.data.error != null) {
    throw openAiError(source, {
      status: 200,
      detail: errorDetail(body.text, { contentType: "application/json" }),
      path: PATH,
      model: options.model,
    });
  }
  const reply = checkReply(value, completionShape, upstream, PATH);
  const choice = reply.choices.find((c) => (c.index ?? 0) === 0) ?? reply.choices[0];
  const message = choice.message;
  const thinking = message.reasoning_content ?? message.reasoning ?? "";
  const text = message.content || message.refusal || "";
  const toolCalls = (message.tool_calls ?? []).map((call) => toToolCall(source, call));
  if (thinking) yield { type: "thinking", text: thinking };
  if (text) yield { type: "text", text };
  if (toolCalls.length) yield { type: "tool_calls", toolCalls };
  yield {
    type: "done",
    result: {
      model: reply.model ?? options.model,
      text,
      ...(thinking && { thinking }),
      toolCalls,
      doneReason: doneReason(choice.finish_reason, toolCalls.length > 0),
      usage: toUsage(reply.usage),
    },
  };
}
