/**
 * A tiny model-server stand-in for the streaming benchmarks: it speaks just
 * enough of three wire formats to be relayed by Rune, and it stamps every
 * token with the wall-clock time it left (`performance.timeOrigin +
 * performance.now()`, microsecond precision), so the client can compute
 * each token's relay delay:
 *
 * - Ollama: NDJSON `POST /api/generate` (plus `/api/version`, `/api/tags`);
 *   the token count is `options.num_predict`.
 * - Anthropic: Messages SSE `POST /v1/messages` (`message_start`,
 *   `content_block_start`, one `content_block_delta` with a `text_delta` per
 *   token, `content_block_stop`, `message_delta` with `stop_reason` and
 *   usage, `message_stop`); the token count is `max_tokens`.
 * - OpenAI: chat-completions SSE `POST /v1/chat/completions` (a role
 *   chunk, one `delta.content` chunk per token, a `finish_reason` chunk, a
 *   usage chunk when `stream_options.include_usage` asks for it, then
 *   `data: [DONE]`); the token count is `max_tokens` or
 *   `max_completion_tokens`.
 *
 * `GET /v1/models` answers in a shape both cloud APIs accept. Keys are not
 * checked.
 *
 * The prompt (the last user message's text on the cloud APIs) carries the
 * stream's settings: `id=NAME rate=N` (`rate=0`: as fast as the connection
 * takes them, in batches of up to 16 tokens; N > 0: N tokens per second,
 * each written when due). Each token's text is `|` plus the stamp, e.g.
 * `|1754550000123.456`. Every stream's record notes when the client went
 * away (the request aborted or the body cancelled), whatever the format.
 *
 * Control endpoints: `GET /bench/now` (this process's wall clock, for
 * offset calibration) and `GET /bench/stream?id=NAME` (tokens and bytes
 * sent, when the stream started, when the client went away).
 *
 * Standalone: `deno run --allow-net=127.0.0.1 bench/emitter.ts` prints
 * `listening http://127.0.0.1:PORT` and serves until SIGTERM.
 *
 * @module
 */

/** What the emitter knows about one stream. */
export interface StreamRecord {
  /** Tokens written. */
  tokens: number;
  /** Bytes written. */
  bytes: number;
  /** Wall-clock time the request arrived. */
  startedAt: number;
  /** Wall-clock time the client cancelled or dropped the stream, if it did. */
  cancelledAt?: number;
  /** Wall-clock time the last line was written, if the stream completed. */
  endedAt?: number;
}

const MODEL = "bench:latest";
const BATCH = 16;
/** Tokens of a cloud request that gives no limit (Anthropic's requires one). */
const DEFAULT_TOKENS = 16;
const encoder = new TextEncoder();

/** How one wire format frames a stream: what comes before, per token, and after. */
export interface Framing {
  /** The response's content type. */
  contentType: string;
  /** Text before the first token. */
  head: string;
  /** One token carrying `text`. */
  token(text: string): string;
  /** Text after the last of `tokens` tokens. */
  tail(tokens: number): string;
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value), {
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

/** Ollama's NDJSON `/api/generate` stream. */
export const OLLAMA_FRAMING: Framing = {
  contentType: "application/x-ndjson",
  head: "",
  token: (text) =>
    `{"model":"${MODEL}","created_at":"2025-01-01T00:00:00Z","response":"${text}","done":false}\n`,
  tail: (tokens) =>
    JSON.stringify({
      model: MODEL,
      created_at: "2025-01-01T00:00:00Z",
      response: "",
      done: true,
      done_reason: "length",
      total_duration: 1,
      eval_count: tokens,
    }) + "\n",
};

function sse(event: string | undefined, data: unknown): string {
  return `${event === undefined ? "" : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`;
}

/** Anthropic's Messages stream (`POST /v1/messages`, `stream: true`). */
export function anthropicFraming(model: string): Framing {
  return {
    contentType: "text/event-stream; charset=utf-8",
    head: sse("message_start", {
      type: "message_start",
      message: {
        id: "msg_bench",
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 1, output_tokens: 1 },
      },
    }) +
      sse("content_block_start", {
        type: "content_block_start",
        index: 0,
        content_block: { type: "text", text: "" },
      }),
    token: (text) =>
      `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${text}"}}\n\n`,
    tail: (tokens) =>
      sse("content_block_stop", { type: "content_block_stop", index: 0 }) +
      sse("message_delta", {
        type: "message_delta",
        delta: { stop_reason: "max_tokens", stop_sequence: null },
        usage: { output_tokens: tokens },
      }) +
      sse("message_stop", { type: "message_stop" }),
  };
}

/** OpenAI's chat-completions stream (`POST /v1/chat/completions`, `stream: true`). */
export function openAiFraming(model: string, usage: boolean): Framing {
  const chunk = (rest: Record<string, unknown>) => ({
    id: "chatcmpl-bench",
    object: "chat.completion.chunk",
    created: 1735689600,
    model,
    ...rest,
  });
  const prefix =
    `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1735689600,"model":${
      JSON.stringify(model)
    },"choices":[{"index":0,"delta":{"content":"`;
  return {
    contentType: "text/event-stream; charset=utf-8",
    head: sse(
      undefined,
      chunk({
        choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
      }),
    ),
    token: (text) => `${prefix}${text}"},"finish_reason":null}]}\n\n`,
    tail: (tokens) =>
      sse(undefined, chunk({ choices: [{ index: 0, delta: {}, finish_reason: "length" }] })) +
      (usage
        ? sse(
          undefined,
          chunk({
            choices: [],
            usage: { prompt_tokens: 1, completion_tokens: tokens, total_tokens: tokens + 1 },
          }),
        )
        : "") +
      "data: [DONE]\n\n",
  };
}

function setting(prompt: string, name: string): string | undefined {
  return new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(prompt)?.[1];
}

/** The part of `POST /api/generate` the emitter reads. */
interface GenerateBody {
  prompt?: string;
  options?: { num_predict?: number };
}

/** The part of `POST /v1/messages` and `POST /v1/chat/completions` the emitter reads. */
interface ChatBody {
  model?: string;
  messages?: { role?: string; content?: string | { type?: string; text?: string }[] }[];
  max_tokens?: number;
  max_completion_tokens?: number;
  stream_options?: { include_usage?: boolean };
}

/** The text of the last user message (a string, or its text blocks joined). */
function lastUserText(body: ChatBody): string {
  const last = body.messages?.findLast((m) => m.role === "user")?.content;
  if (typeof last === "string") return last;
  return (last ?? []).map((block) => block.text ?? "").join("");
}

/** How one stream goes: its framing, length, pace, record and the request's signal. */
interface StreamPlan {
  framing: Framing;
  total: number;
  rate: number;
  record: StreamRecord;
  signal: AbortSignal;
  /** Called once when the client goes away before the end. */
  onCancelled?: () => void;
}

/** Builds the body of one streamed generation. */
function generateStream(
  { framing, total, rate, record, signal, onCancelled }: StreamPlan,
): ReadableStream<Uint8Array> {
  const cancelled = () => {
    if (record.cancelledAt !== undefined) return;
    record.cancelledAt = now();
    onCancelled?.();
  };
  signal.addEventListener("abort", cancelled, { once: true });
  let sent = 0;
  let finished = false;
  const start = now();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (finished) return;
      let text = sent === 0 ? framing.head : "";
      if (rate > 0) {
        const due = start + (sent * 1000) / rate;
        const wait = due - now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (record.cancelledAt !== undefined) return;
        // Every token whose time has come, each stamped as it is written.
        const dueCount = Math.min(total, Math.floor(((now() - start) * rate) / 1000) + 1);
        do {
          text += framing.token(`|${now().toFixed(3)}`);
          sent++;
        } while (sent < dueCount);
      } else {
        for (let i = 0; i < BATCH && sent < total; i++) {
          text += framing.token(`|${now().toFixed(3)}`);
          sent++;
        }
      }
      if (sent >= total) {
        text += framing.tail(sent);
        finished = true;
      }
      const bytes = encoder.encode(text);
      record.tokens = sent;
      record.bytes += bytes.byteLength;
      controller.enqueue(bytes);
      if (finished) {
        record.endedAt = now();
        signal.removeEventListener("abort", cancelled);
        controller.close();
      }
    },
    cancel() {
      cancelled();
    },
  }, { highWaterMark: 0 });
}

/** Options of {@linkcode startEmitter}. */
export interface EmitterOptions {
  /**
   * Port on 127.0.0.1; 0 picks a free one.
   * @default 0
   */
  port?: number;
  /** Called with a stream's id when its client goes away before the end (tests). */
  onCancelled?: (id: string) => void;
  /** Called with the bound port once listening. Default: prints `listening http://...`. */
  onListen?: (port: number) => void;
}

/** Starts the emitter on 127.0.0.1. */
export function startEmitter(options: EmitterOptions = {}): {
  server: Deno.HttpServer<Deno.NetAddr>;
  streams: Map<string, StreamRecord>;
} {
  const streams = new Map<string, StreamRecord>();
  let anonymous = 0;
  /** Starts the stream a prompt's settings describe, `limit` tokens long. */
  function stream(
    framing: Framing,
    request: Request,
    { prompt, limit }: { prompt: string; limit: number | undefined },
  ): Response {
    const id = setting(prompt, "id") ?? `anon${anonymous++}`;
    const rate = Number(setting(prompt, "rate") ?? "0");
    const total = Math.max(1, Math.floor(limit ?? DEFAULT_TOKENS));
    const record: StreamRecord = { tokens: 0, bytes: 0, startedAt: now() };
    streams.set(id, record);
    return new Response(
      generateStream({
        framing,
        total,
        rate,
        record,
        signal: request.signal,
        onCancelled: () => options.onCancelled?.(id),
      }),
      { headers: { "content-type": framing.contentType } },
    );
  }
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    onListen: (addr) =>
      options.onListen
        ? options.onListen(addr.port)
        : console.log(`listening http://127.0.0.1:${addr.port}`),
  }, async (request) => {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/bench/now":
        return json({ now: now() });
      case "/bench/stream":
        return json(streams.get(url.searchParams.get("id") ?? "") ?? null);
      case "/api/version":
        return json({ version: "0.12.6" });
      case "/api/tags":
        return json({
          models: [{
            name: MODEL,
            model: MODEL,
            modified_at: "2025-01-01T00:00:00Z",
            size: 1,
            details: { family: "bench", parameter_size: "1B", quantization_level: "Q4_0" },
          }],
        });
      case "/v1/models":
        return json({
          object: "list",
          data: [{
            id: "bench",
            object: "model",
            type: "model",
            display_name: "Bench",
            created_at: "2025-01-01T00:00:00Z",
            created: 1735689600,
            owned_by: "bench",
          }],
          has_more: false,
          first_id: "bench",
          last_id: "bench",
        });
      case "/api/generate": {
        const body = await request.json() as GenerateBody;
        return stream(OLLAMA_FRAMING, request, {
          prompt: body.prompt ?? "",
          limit: body.options?.num_predict,
        });
      }
      case "/v1/messages": {
        const body = await request.json() as ChatBody;
        return stream(anthropicFraming(body.model ?? "bench"), request, {
          prompt: lastUserText(body),
          limit: body.max_tokens,
        });
      }
      case "/v1/chat/completions": {
        const body = await request.json() as ChatBody;
        const framing = openAiFraming(
          body.model ?? "bench",
          body.stream_options?.include_usage === true,
        );
        return stream(framing, request, {
          prompt: lastUserText(body),
          limit: body.max_tokens ?? body.max_completion_tokens,
        });
      }
      default:
        return new Response("404 page not found", { status: 404 });
    }
  });
  return { server, streams };
}

if (import.meta.main) {
  const { server } = startEmitter({ port: Number(Deno.args[0] ?? "0") });
  const stop = () => {
    // A stalled stream would hold shutdown open: give it a moment, then exit.
    const timer = setTimeout(() => Deno.exit(0), 500);
    server.shutdown().finally(() => {
      clearTimeout(timer);
      Deno.exit(0);
    });
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
