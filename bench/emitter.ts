/**
 * A tiny Ollama stand-in for the streaming benchmarks: it speaks just enough
 * of Ollama's NDJSON `/api/generate` to be relayed by Rune, and it stamps
 * every token with the wall-clock time it left (`performance.timeOrigin +
 * performance.now()`, microsecond precision), so the client can compute
 * each token's relay delay.
 *
 * The prompt carries the stream's settings: `id=NAME rate=N` (`rate=0`:
 * as fast as the connection takes them, in batches of up to 16 lines; N > 0:
 * N tokens per second, each written when due). `options.num_predict` is the
 * number of tokens. Each token's text is `|` plus the stamp, e.g.
 * `|1754550000123.456`.
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
const encoder = new TextEncoder();

function now(): number {
  return performance.timeOrigin + performance.now();
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value), {
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

function tokenLine(stamp: number): string {
  return `{"model":"${MODEL}","created_at":"2025-01-01T00:00:00Z","response":"|${
    stamp.toFixed(3)
  }","done":false}\n`;
}

function finalLine(tokens: number): string {
  return JSON.stringify({
    model: MODEL,
    created_at: "2025-01-01T00:00:00Z",
    response: "",
    done: true,
    done_reason: "length",
    total_duration: 1,
    eval_count: tokens,
  }) + "\n";
}

function setting(prompt: string, name: string): string | undefined {
  return new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(prompt)?.[1];
}

/** Builds the NDJSON body of one generate request. */
function generateStream(
  total: number,
  rate: number,
  record: StreamRecord,
  signal: AbortSignal,
): ReadableStream<Uint8Array> {
  const cancelled = () => {
    record.cancelledAt ??= now();
  };
  signal.addEventListener("abort", cancelled, { once: true });
  let sent = 0;
  let finished = false;
  const start = now();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (finished) return;
      let text = "";
      if (rate > 0) {
        const due = start + (sent * 1000) / rate;
        const wait = due - now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (record.cancelledAt !== undefined) return;
        // Every token whose time has come, each stamped as it is written.
        const dueCount = Math.min(total, Math.floor(((now() - start) * rate) / 1000) + 1);
        do {
          text += tokenLine(now());
          sent++;
        } while (sent < dueCount);
      } else {
        for (let i = 0; i < BATCH && sent < total; i++) {
          text += tokenLine(now());
          sent++;
        }
      }
      if (sent >= total) {
        text += finalLine(sent);
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

/** Starts the emitter on 127.0.0.1 (`port` 0: any free port). */
export function startEmitter(port = 0): {
  server: Deno.HttpServer<Deno.NetAddr>;
  streams: Map<string, StreamRecord>;
} {
  const streams = new Map<string, StreamRecord>();
  let anonymous = 0;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: (addr) => console.log(`listening http://127.0.0.1:${addr.port}`),
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
      case "/api/generate": {
        const body = await request.json() as {
          prompt?: string;
          options?: { num_predict?: number };
        };
        const prompt = body.prompt ?? "";
        const id = setting(prompt, "id") ?? `anon${anonymous++}`;
        const rate = Number(setting(prompt, "rate") ?? "0");
        const total = Math.max(1, Math.floor(body.options?.num_predict ?? 16));
        const record: StreamRecord = { tokens: 0, bytes: 0, startedAt: now() };
        streams.set(id, record);
        return new Response(generateStream(total, rate, record, request.signal), {
          headers: { "content-type": "application/x-ndjson" },
        });
      }
      default:
        return new Response("404 page not found", { status: 404 });
    }
  });
  return { server, streams };
}

if (import.meta.main) {
  const { server } = startEmitter(Number(Deno.args[0] ?? "0"));
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
