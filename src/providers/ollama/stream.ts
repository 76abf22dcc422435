/**
 * A streamed `/api/generate` or `/api/chat` call: posts the request, reads
 * Ollama's NDJSON lines through the shared stream reader, validates each
 * line and turns it into {@linkcode Chunk}s. Text, thinking and tool calls
 * count against the stream budget; leaving early (abort, error, budget,
 * consumer `break`) cancels the body, so Ollama stops generating.
 *
 * @module
 */

import { StreamBudget } from "../budget.ts";
import { ConnectionDroppedError, InvalidResponseError, ProviderError } from "../errors.ts";
import {
  describeBody,
  exchange,
  type HttpRequest,
  type HttpUpstream,
  parserRefusal,
  startCall,
} from "../http.ts";
import { ndjsonParser, ParseRefusal } from "../ndjson.ts";
import { readStream, readText } from "../stream.ts";
import { TextBuffer } from "../text_buffer.ts";
import type { Chunk, DoneReason, FinalResult, ToolCall } from "../types.ts";
import { checkReply } from "../validate.ts";
import { toUsage } from "./convert.ts";
import { type OllamaToolCall, streamLineShape } from "./wire.ts";

/** Options of {@linkcode streamCompletion}. */
export interface StreamCompletionOptions extends HttpRequest {
  /** Longest accepted NDJSON line. */
  maxLineLength: number;
  /** Runs before the request (capability checks); its errors skip `onError`. */
  before?: () => Promise<void>;
  /** Maps an error line (`{"error": "..."}`) onto a typed error. */
  lineError: (message: string) => ProviderError;
  /** Sees every error of the exchange before it propagates. */
  onError?: (error: unknown) => void;
}

/**
 * Posts a streaming request and yields its chunks, ending with `done`.
 */
export async function* streamCompletion(
  upstream: HttpUpstream,
  options: StreamCompletionOptions,
): AsyncGenerator<Chunk> {
  const { path } = options;
  await options.before?.();
  const deadline = startCall(upstream, options.signal);
  const model = options.model ?? "";
  const budget = new StreamBudget(upstream, upstream.limits.maxStreamBytes);
  const text = new TextBuffer();
  const thinking = new TextBuffer();
  const toolCalls: ToolCall[] = [];
  let lines = 0;
  try {
    const response = await exchange(upstream, {
      ...options,
      deadline,
      headersPhase: "first-token",
    });
    const type = response.headers.get("content-type") ?? "";
    if (!response.body || (!type.includes("ndjson") && !type.includes("json"))) {
      const body = await readText(response.body, {
        maxBytes: upstream.limits.maxErrorBytes,
        signal: deadline.signal,
      }).catch(() => ({ text: "", truncated: false }));
      throw new InvalidResponseError(
        `Invalid response from ${upstream.name} at ${upstream.address}: ${path} answered with ${
          describeBody(type, body.text, body.truncated)
        } instead of NDJSON: is OLLAMA_HOST pointing at Ollama and not at a proxy or another service?`,
      );
    }
    deadline.arm("first-token");
    const iterator = readStream(
      response.body,
      ndjsonParser({ maxLineLength: options.maxLineLength }),
      {
        signal: deadline.signal,
      },
    );
    try {
      while (true) {
        let next: IteratorResult<unknown>;
        try {
          next = await iterator.next();
        } catch (error) {
          if (deadline.signal.aborted) throw deadline.signal.reason;
          // The NDJSON parser does not know who sent the line: without this a line past the
          // bound reached the client as a bare "A reply line is longer than ...".
          if (error instanceof ParseRefusal) {
            throw parserRefusal(upstream, `${path} after line ${lines}`, error);
          }
          if (error instanceof ProviderError) throw error;
          throw new ConnectionDroppedError(
            `Ollama at ${upstream.address} closed the connection in the middle of the reply after ${lines} chunks: it may have crashed or run out of memory; check the Ollama server log and retry.`,
            { cause: error },
          );
        }
        if (next.done) break;
        lines++;
        deadline.arm("idle");
        const line = checkReply(next.value, streamLineShape, upstream, `${path} line ${lines}`);
        if (line.error !== undefined) throw options.lineError(line.error);
        const delta = line.response ?? line.message?.content ?? "";
        const thought = line.thinking ?? line.message?.thinking ?? "";
        if (thought) {
          budget.add(thought);
          thinking.add(thought);
          yield { type: "thinking", text: thought };
        }
        if (delta) {
          budget.add(delta);
          text.add(delta);
          yield { type: "text", text: delta };
        }
        const calls = line.message?.tool_calls;
        if (calls?.length) {
          const mapped = calls.map(toToolCall);
          for (const call of mapped) {
            budget.add(call.name);
            budget.add(JSON.stringify(call.arguments));
          }
          toolCalls.push(...mapped);
          yield { type: "tool_calls", toolCalls: mapped };
        }
        if (line.done) {
          const result: FinalResult = {
            model: line.model ?? model,
            text: text.text,
            ...(!thinking.empty && { thinking: thinking.text }),
            toolCalls,
            doneReason: doneReason(line.done_reason, toolCalls.length > 0),
            usage: toUsage(line),
          };
          yield { type: "done", result };
          return;
        }
      }
    } finally {
      await iterator.return(undefined);
    }
    throw new ConnectionDroppedError(
      `Ollama at ${upstream.address} ended the reply after ${lines} chunks without a final "done" chunk: it may have crashed; check the Ollama server log and retry.`,
    );
  } catch (error) {
    options.onError?.(error);
    throw error;
  } finally {
    deadline.dispose();
  }
}

function toToolCall(call: OllamaToolCall): ToolCall {
  return {
    ...(call.id !== undefined && { id: call.id }),
    name: call.function.name,
    arguments: call.function.arguments ?? {},
  };
}

/**
 * Ollama's `done_reason` (`stop`, `length`, or `load`/`unload` for calls
 * that only load a model) as a neutral stop reason; a turn that called tools
 * stopped for them.
 */
function doneReason(reason: string | undefined, calledTools: boolean): DoneReason {
  if (reason === "length") return "length";
  return calledTools ? "tool_calls" : "stop";
}
