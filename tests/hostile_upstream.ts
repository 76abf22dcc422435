/**
 * A hostile model server for tests: a real HTTP server on 127.0.0.1 port 0
 * that answers each request with whatever the test scripted: bodies far
 * larger than any budget (generated as streams, never held in memory),
 * huge error pages, endless NDJSON replies in normal-sized lines, endless
 * server-sent event streams in the shapes of Anthropic's Messages API
 * (`content_block_delta` events) and OpenAI's Chat Completions
 * (`chat.completion.chunk` events), an event that never ends, malformed
 * shapes, redirects and redirect loops, gzip, and gzip bombs.
 *
 * It records how many bytes each reply sent and whether the client
 * cancelled it (the connection closed before the body ended), so tests
 * can check that Rune stopped reading at its budget.
 *
 * @module
 */

/** What the server answers to one request. */
export type HostileReply =
  /** A fixed JSON value (any shape) with `status` (default 200). */
  | { kind: "json"; body: unknown; status?: number; contentType?: string }
  /** Fixed NDJSON lines, each a JSON value written as is. */
  | { kind: "ndjson"; lines: unknown[] }
  /**
   * A valid JSON object of `bytes` bytes: `{"<list>":[` + `item` repeated + `]}`;
   * by default `/api/tags`-shaped (`list` "models", an Ollama model).
   */
  | { kind: "huge-json"; bytes: number; gzip?: boolean; list?: string; item?: unknown }
  /** An error page of `bytes` bytes (HTML) with `status` (default 500). */
  | { kind: "huge-error"; bytes: number; status?: number }
  /** NDJSON token lines, each carrying `lineBytes` of text, `bytes` in total (default: endless). */
  | { kind: "huge-stream"; lineBytes: number; bytes?: number; gzip?: boolean }
  /**
   * Fixed server-sent events: `{event, data}` written as `event:`/`data:`
   * lines (`data` JSON-encoded unless a string), or a string written as is.
   */
  | { kind: "sse"; events: (SseSpec | string)[] }
  /**
   * An event stream in `dialect`'s shape whose text deltas carry `tokenBytes`
   * each, `bytes` in total (default: endless), after the events that open a reply.
   */
  | { kind: "huge-sse"; dialect: SseDialect; tokenBytes: number; bytes?: number; gzip?: boolean }
  /**
   * An event stream in `dialect`'s shape whose first text delta never ends:
   * one `data:` line of `bytes` bytes (default: endless) without a newline.
   */
  | { kind: "huge-event"; dialect: SseDialect; bytes?: number }
  /** A redirect to `location` (default: the same path, a loop). */
  | { kind: "redirect"; location?: string; status?: number };

/** Which API's event shapes a generated event stream takes. */
export type SseDialect = "anthropic" | "openai";

/** One scripted server-sent event. */
export interface SseSpec {
  /** The `event:` field, if any. */
  event?: string;
  /** The `data:` field: a string as is, anything else JSON-encoded. */
  data: unknown;
}

/** One reply the server sent. */
export interface SentReply {
  /** Path of the request. */
  path: string;
  /** Body bytes handed to the connection (before compression). */
  bytes: number;
  /** True when the client stopped reading before the end (its body was cancelled). */
  cancelled: boolean;
  /** True when the whole body was sent. */
  completed: boolean;
}

/** A running hostile server. */
export interface HostileUpstream {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** Every streamed reply, in order. */
  readonly sent: SentReply[];
  /** Requests received per path. */
  readonly requests: { method: string; path: string }[];
  /** Answers requests to `path` with `reply` until changed; other paths get 404. */
  on(path: string, reply: HostileReply): void;
  /** Resolves once the reply at `index` of {@linkcode sent} is cancelled or completed. */
  settled(index: number): Promise<SentReply>;
  /** Stops the server and ends open bodies. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();
/** Size of each generated chunk. */
const CHUNK = 64 * 1024;

/** Starts a hostile server on 127.0.0.1 port 0. */
export async function startHostileUpstream(): Promise<HostileUpstream> {
  const routes = new Map<string, HostileReply>();
  const sent: SentReply[] = [];
  const requests: { method: string; path: string }[] = [];
  const waiters = new Map<number, (reply: SentReply) => void>();
  const open = new Set<ReadableStreamDefaultController<Uint8Array>>();

  const settle = (index: number) => {
    waiters.get(index)?.(sent[index]);
    waiters.delete(index);
  };

  /** A body generated chunk by chunk by `next` (undefined: end), counted in `sent`. */
  function generated(path: string, next: () => Uint8Array | undefined): ReadableStream<Uint8Array> {
    const index = sent.push({ path, bytes: 0, cancelled: false, completed: false }) - 1;
    let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;
    return new ReadableStream<Uint8Array>({
      start(controller) {
        controllerRef = controller;
        open.add(controller);
      },
      pull(controller) {
        const chunk = next();
        if (chunk === undefined) {
          sent[index].completed = true;
          open.delete(controller);
          controller.close();
          settle(index);
          return;
        }
        sent[index].bytes += chunk.byteLength;
        // A copy: the connection may take ownership of what it is given.
        controller.enqueue(chunk.slice());
      },
      cancel() {
        sent[index].cancelled = true;
        if (controllerRef) open.delete(controllerRef);
        settle(index);
      },
    }, { highWaterMark: 0 });
  }

  function reply(path: string, spec: HostileReply): Response {
    switch (spec.kind) {
      case "json":
        return new Response(JSON.stringify(spec.body), {
          status: spec.status ?? 200,
          headers: { "content-type": spec.contentType ?? "application/json; charset=utf-8" },
        });
      case "ndjson": {
        const lines = spec.lines.map((line) => encoder.encode(JSON.stringify(line) + "\n"));
        let i = 0;
        return new Response(generated(path, () => lines[i++]), {
          headers: { "content-type": "application/x-ndjson" },
        });
      }
      case "huge-json":
        return compressed(
          generated(path, hugeJson(spec.bytes, spec.list, spec.item)),
          spec.gzip,
          "application/json; charset=utf-8",
        );
      case "huge-error": {
        const body = filler(
          spec.bytes,
          "<html><body>",
          "<p>error error error error</p>",
          "</body></html>",
        );
        return new Response(generated(path, body), {
          status: spec.status ?? 500,
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      }
      case "huge-stream":
        return compressed(
          generated(path, hugeStream(spec.lineBytes, spec.bytes ?? Infinity)),
          spec.gzip,
          "application/x-ndjson",
        );
      case "sse": {
        const events = spec.events.map((e) => encoder.encode(typeof e === "string" ? e : sse(e)));
        let i = 0;
        return new Response(generated(path, () => events[i++]), {
          headers: { "content-type": "text/event-stream; charset=utf-8" },
        });
      }
      case "huge-sse":
        return compressed(
          generated(path, hugeSse(spec.dialect, spec.tokenBytes, spec.bytes ?? Infinity)),
          spec.gzip,
          "text/event-stream; charset=utf-8",
        );
      case "huge-event":
        return new Response(generated(path, hugeEvent(spec.dialect, spec.bytes ?? Infinity)), {
          headers: { "content-type": "text/event-stream; charset=utf-8" },
        });
      case "redirect":
        return new Response(null, {
          status: spec.status ?? 302,
          headers: { location: spec.location ?? path },
        });
    }
  }

  const listening = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: (addr) => listening.resolve(addr) },
    async (request) => {
      const path = new URL(request.url).pathname;
      requests.push({ method: request.method, path });
      await request.body?.cancel();
      const spec = routes.get(path);
      if (!spec) return new Response("404 page not found", { status: 404 });
      return reply(path, spec);
    },
  );
  const addr = await listening.promise;
  const host = `127.0.0.1:${addr.port}`;
  return {
    url: `http://${host}`,
    host,
    sent,
    requests,
    on(path, spec) {
      routes.set(path, spec);
    },
    settled(index) {
      const reply = sent[index];
      if (reply && (reply.cancelled || reply.completed)) return Promise.resolve(reply);
      return new Promise((resolve) => waiters.set(index, resolve));
    },
    async close() {
      for (const controller of open) {
        try {
          controller.error(new Error("hostile upstream closed"));
        } catch {
          // Already closed.
        }
      }
      open.clear();
      await server.shutdown();
    },
  };
}

/** Gzips `body` on the fly when asked (the client inflates it: a bomb when the body is filler). */
function compressed(
  body: ReadableStream<Uint8Array>,
  gzip: boolean | undefined,
  contentType: string,
): Response {
  if (!gzip) return new Response(body, { headers: { "content-type": contentType } });
  const gzipped = body.pipeThrough(
    new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>,
  );
  return new Response(gzipped, {
    headers: { "content-type": contentType, "content-encoding": "gzip" },
  });
}

/** Chunks of `head`, then `unit` repeated, then `tail`: `bytes` in all (roughly). */
function filler(
  bytes: number,
  head: string,
  unit: string,
  tail: string,
): () => Uint8Array | undefined {
  const repeated = encoder.encode(unit.repeat(Math.ceil(CHUNK / unit.length)));
  let sentBytes = 0;
  let stage: "head" | "body" | "tail" | "done" = "head";
  return () => {
    switch (stage) {
      case "head":
        stage = "body";
        sentBytes += head.length;
        return encoder.encode(head);
      case "body":
        if (sentBytes + repeated.byteLength >= bytes) stage = "tail";
        sentBytes += repeated.byteLength;
        return repeated;
      case "tail":
        stage = "done";
        return encoder.encode(tail);
      case "done":
        return undefined;
    }
  };
}

/** The default item of a huge JSON list: an Ollama model. */
const OLLAMA_MODEL = {
  name: "filler:latest",
  model: "filler:latest",
  size: 1,
  details: { family: "filler" },
};

/** A valid reply of about `bytes` bytes: `{"<list>":[item,item,...]}`. */
function hugeJson(
  bytes: number,
  list = "models",
  item: unknown = OLLAMA_MODEL,
): () => Uint8Array | undefined {
  const model = JSON.stringify(item);
  // Each unit starts with a comma; the head's first item has none.
  return filler(bytes, `{${JSON.stringify(list)}:[${model}`, `,${model}`, "]}");
}

/** One event as it goes on the wire. */
function sse({ event, data }: SseSpec): string {
  const text = typeof data === "string" ? data : JSON.stringify(data);
  return `${event === undefined ? "" : `event: ${event}\n`}data: ${text}\n\n`;
}

/** The events that open a reply before its first text delta, in `dialect`'s shape. */
function openingEvents(dialect: SseDialect): string {
  if (dialect === "openai") {
    return sse({ data: openAiChunk({ role: "assistant", content: "" }) });
  }
  return sse({
    event: "message_start",
    data: {
      type: "message_start",
      message: {
        id: "msg_hostile",
        type: "message",
        role: "assistant",
        model: "claude-haiku-4-5",
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 1, output_tokens: 1 },
      },
    },
  }) + sse({
    event: "content_block_start",
    data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
  });
}

/** The events that close a reply after its text deltas. */
function closingEvents(dialect: SseDialect): string {
  if (dialect === "openai") return sse({ data: openAiChunk({}, "stop") }) + sse({ data: "[DONE]" });
  return sse({ event: "content_block_stop", data: { type: "content_block_stop", index: 0 } }) +
    sse({
      event: "message_delta",
      data: {
        type: "message_delta",
        delta: { stop_reason: "end_turn", stop_sequence: null },
        usage: { output_tokens: 1 },
      },
    }) +
    sse({ event: "message_stop", data: { type: "message_stop" } });
}

/** A `chat.completion.chunk` with one choice carrying `delta`. */
function openAiChunk(delta: unknown, finish: string | null = null): unknown {
  return {
    id: "chatcmpl-hostile",
    object: "chat.completion.chunk",
    created: 1760000000,
    model: "gpt-4o-mini",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  };
}

/** One text delta event carrying `text`, in `dialect`'s shape. */
function textEvent(dialect: SseDialect, text: string): string {
  if (dialect === "openai") return sse({ data: openAiChunk({ content: text }) });
  return sse({
    event: "content_block_delta",
    data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } },
  });
}

/**
 * An event stream in `dialect`'s shape: the opening events, text deltas of
 * `tokenBytes` each until `bytes` (maybe endless), then the closing events.
 */
function hugeSse(
  dialect: SseDialect,
  tokenBytes: number,
  bytes: number,
): () => Uint8Array | undefined {
  const event = encoder.encode(textEvent(dialect, "x".repeat(tokenBytes)));
  const perChunk = Math.max(1, Math.floor(CHUNK / event.byteLength));
  const chunk = new Uint8Array(event.byteLength * perChunk);
  for (let i = 0; i < perChunk; i++) chunk.set(event, i * event.byteLength);
  let stage: "open" | "body" | "close" | "done" = "open";
  let sentBytes = 0;
  return () => {
    switch (stage) {
      case "open":
        stage = "body";
        return encoder.encode(openingEvents(dialect));
      case "body":
        sentBytes += chunk.byteLength;
        if (sentBytes >= bytes) stage = "close";
        return chunk;
      case "close":
        stage = "done";
        return encoder.encode(closingEvents(dialect));
      case "done":
        return undefined;
    }
  };
}

/** The opening events, then one text delta whose `data:` line never ends (or ends past `bytes`). */
function hugeEvent(dialect: SseDialect, bytes: number): () => Uint8Array | undefined {
  const event = textEvent(dialect, "@");
  // The event up to its text: `data: {..."text":"` (or `"content":"`), then text for ever.
  const at = event.indexOf("@");
  return filler(bytes, openingEvents(dialect) + event.slice(0, at), "x", event.slice(at + 1));
}

/** Endless (or `bytes`-long) NDJSON token lines carrying `lineBytes` of text each. */
function hugeStream(lineBytes: number, bytes: number): () => Uint8Array | undefined {
  const line = encoder.encode(
    JSON.stringify({
      model: "llama3.2",
      created_at: "2025-10-14T09:31:07.123Z",
      response: "x".repeat(lineBytes),
      done: false,
    }) + "\n",
  );
  const perChunk = Math.max(1, Math.floor(CHUNK / line.byteLength));
  const chunk = new Uint8Array(line.byteLength * perChunk);
  for (let i = 0; i < perChunk; i++) chunk.set(line, i * line.byteLength);
  let sentBytes = 0;
  return () => {
    if (sentBytes >= bytes) return undefined;
    sentBytes += chunk.byteLength;
    return chunk;
  };
}
