/**
 * A hostile model server for tests: a real HTTP server on 127.0.0.1 port 0
 * that answers each request with whatever the test scripted: bodies far
 * larger than any budget (generated as streams, never held in memory),
 * huge error pages, endless NDJSON replies in normal-sized lines,
 * malformed shapes, redirects and redirect loops, gzip, and gzip bombs.
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
  /** A valid JSON object of `bytes` bytes: `{"models":[` + filler models + `]}`. */
  | { kind: "huge-json"; bytes: number; gzip?: boolean }
  /** An error page of `bytes` bytes (HTML) with `status` (default 500). */
  | { kind: "huge-error"; bytes: number; status?: number }
  /** NDJSON token lines, each carrying `lineBytes` of text, `bytes` in total (default: endless). */
  | { kind: "huge-stream"; lineBytes: number; bytes?: number; gzip?: boolean }
  /** A redirect to `location` (default: the same path, a loop). */
  | { kind: "redirect"; location?: string; status?: number };

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
          generated(path, hugeJson(spec.bytes)),
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

/** A valid `/api/tags`-shaped reply of about `bytes` bytes. */
function hugeJson(bytes: number): () => Uint8Array | undefined {
  const model = JSON.stringify({
    name: "filler:latest",
    model: "filler:latest",
    size: 1,
    details: { family: "filler" },
  });
  // Each unit starts with a comma; the head's first model has none.
  return filler(bytes, `{"models":[${model}`, `,${model}`, "]}");
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
