/**
 * The response cache: a Provider that answers repeated calls from a
 * {@linkcode CacheStore} without reaching the provider below it.
 *
 * - Embeddings are always cached, keyed by (provider, model, input,
 *   provider options).
 * - Generations and chats only when they are deterministic (`temperature`
 *   0 with a `seed`) or the call asks for it (`cache: true`), keyed by
 *   everything that shapes the answer (`keep_alive` does not).
 *
 * A hit says so (`cached: true` on the result) and streams the stored
 * answer as one chunk per part. A miss streams as usual and stores the
 * final result before handing it on, so the next identical call (on any
 * instance sharing the store) finds it. The store never fails a call.
 *
 * @module
 */

import { type FleetEvents, NO_EVENTS } from "../metrics/events.ts";
import type { CacheStore } from "./cache_store.ts";
import type {
  CallOptions,
  ChatRequest,
  Chunk,
  CompletionRequest,
  EmbedRequest,
  EmbedResult,
  FinalResult,
  GenerateRequest,
  Provider,
} from "./types.ts";
import { passThrough } from "./wrap.ts";

/** Options of {@linkcode withCache}. */
export interface CacheOptions {
  /** Hits and misses are reported here. */
  events?: FleetEvents;
}

/** Whether a completion may be served from (and kept in) the cache. */
export function cacheable(request: CompletionRequest): boolean {
  if (request.cache === true) return true;
  const options = request.options;
  return options?.temperature === 0 && options.seed !== undefined;
}

/** SHA-256 of `parts` as JSON, in hex: fixed-size keys, whatever the input size. */
async function keyOf(parts: unknown[]): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify(parts)),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The fields of a completion that shape its answer (not `keepAlive`, not `cache`). */
function completionParts(request: CompletionRequest): unknown[] {
  return [
    request.model,
    request.format ?? null,
    request.options ?? null,
    request.think ?? null,
    request.providerOptions ?? null,
  ];
}

/**
 * A stored entry, checked (a shared store is a boundary: another version of
 * Rune, or anything else, may have written it); anything else is a miss.
 */
function parseStored<T>(
  text: string | undefined,
  valid: (value: unknown) => value is T,
): T | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return valid(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isFinalResult(value: unknown): value is FinalResult {
  return isRecord(value) && typeof value.model === "string" && typeof value.text === "string" &&
    Array.isArray(value.toolCalls) && typeof value.doneReason === "string" && isRecord(value.usage);
}

function isEmbedResult(value: unknown): value is EmbedResult {
  return isRecord(value) && typeof value.model === "string" && isRecord(value.usage) &&
    Array.isArray(value.embeddings) &&
    value.embeddings.every((v) => Array.isArray(v) && v.every((n) => typeof n === "number"));
}

/** Wraps `provider` with the cache in `store`. */
export function withCache(
  provider: Provider,
  store: CacheStore,
  options: CacheOptions = {},
): Provider {
  const events = options.events ?? NO_EVENTS;

  async function* replay(result: FinalResult): AsyncGenerator<Chunk> {
    if (result.thinking) yield { type: "thinking", text: result.thinking };
    if (result.text) yield { type: "text", text: result.text };
    if (result.toolCalls.length) yield { type: "tool_calls", toolCalls: result.toolCalls };
    yield { type: "done", result: { ...result, cached: true } };
  }

  async function* complete(
    request: CompletionRequest,
    call: { parts: unknown[]; run: () => AsyncIterable<Chunk> },
  ): AsyncGenerator<Chunk> {
    const { parts } = call;
    if (!cacheable(request)) {
      yield* call.run();
      return;
    }
    const key = await keyOf([provider.id, ...parts, ...completionParts(request)]);
    const stored = parseStored(await store.get(key), isFinalResult);
    if (stored !== undefined) {
      events.cacheHit();
      yield* replay(stored);
      return;
    }
    events.cacheMiss();
    for await (const chunk of call.run()) {
      // Kept before it is handed on, so an identical call right after finds it.
      if (chunk.type === "done") await store.set(key, JSON.stringify(chunk.result));
      yield chunk;
    }
  }

  return {
    ...passThrough(provider),
    generate: (request: GenerateRequest, o?: CallOptions) =>
      complete(request, {
        parts: ["generate", request.prompt, request.system ?? null, request.images ?? null],
        run: () => provider.generate(request, o),
      }),
    chat: (request: ChatRequest, o?: CallOptions) =>
      complete(request, {
        parts: ["chat", request.messages, request.tools ?? null],
        run: () => provider.chat(request, o),
      }),
    async embed(request: EmbedRequest, o?: CallOptions): Promise<EmbedResult> {
      const key = await keyOf([
        provider.id,
        "embed",
        request.model,
        request.input,
        request.truncate ?? null,
        request.providerOptions ?? null,
      ]);
      const stored = parseStored(await store.get(key), isEmbedResult);
      if (stored !== undefined) {
        events.cacheHit();
        return { ...stored, cached: true };
      }
      events.cacheMiss();
      const result = await provider.embed(request, o);
      await store.set(key, JSON.stringify(result));
      return result;
    },
  };
}
