/**
 * A streamed `/api/pull`: posts the request, reads Ollama's progress lines
 * through the shared stream reader and turns them into provider-neutral
 * {@linkcode PullProgress} steps whose byte counts only ever grow.
 *
 * Ollama reports each layer (blob) of a model on its own: `pulling <digest
 * prefix>` lines with the layer's `digest`, `total` and `completed` bytes,
 * written every 60 ms while it waits (`server/download.go`, `Wait`), so the
 * same value repeats, and a part that fails and restarts takes its bytes
 * back (`b.Completed.Add(-n)`), so a value can go backwards. The last line
 * of a layer is not necessarily at its total (the ticker stops when the
 * download ends). {@linkcode PullTally} sums the layers: each layer counts
 * the most it ever reported, capped at its size; a layer counts as complete
 * once Ollama moves on to the next layer or to a status without a layer
 * (`verifying sha256 digest`), since `PullModel` (`server/images.go`)
 * downloads layers one after another and verifies only after all of them.
 *
 * Deadlines: a pull can take hours, so it has no total limit; the idle
 * limit (no line at all) is long, because Ollama writes nothing while it
 * hashes every layer (`verifying sha256 digest`, minutes for a large
 * model). Aborting the signal closes the connection, which stops Ollama's
 * download (it resumes where it stopped at the next pull).
 *
 * @module
 */

import { ConnectionDroppedError, InvalidResponseError, ProviderError } from "../errors.ts";
import { ProviderTimeoutError } from "../errors.ts";
import { describeBody, exchange, type HttpUpstream, parserRefusal, startCall } from "../http.ts";
import { ndjsonParser, ParseRefusal } from "../ndjson.ts";
import { readStream, readText } from "../stream.ts";
import type { PullProgress } from "../types.ts";
import { checkReply } from "../validate.ts";
import { pullLineShape } from "./wire.ts";

/** Most distinct layers one pull may announce (models have a handful; bounds the tally). */
export const MAX_PULL_LAYERS = 4096;

/** Longest accepted pull line: a progress line is ~150 bytes, an error a few hundred. */
export const MAX_PULL_LINE_LENGTH = 64 * 1024;

/** Default idle limit of a pull: no line from Ollama for 15 minutes. */
export const DEFAULT_PULL_IDLE_MS = 15 * 60_000;

/** What one line says about the bytes, as {@linkcode PullTally.add} takes it. */
export interface LayerFigures {
  /** The layer's digest; absent on status-only lines. */
  digest?: string;
  /** The layer's size in bytes (absent while 0). */
  total?: number;
  /** Bytes of the layer downloaded so far (absent while 0). */
  completed?: number;
}

/**
 * Sums a pull's per-layer figures into whole-pull figures that never go
 * backwards (see the module doc for Ollama's behaviour).
 */
export class PullTally {
  #layers = new Map<string, { total: number; completed: number }>();
  #completed = 0;
  #total = 0;

  /** Bytes counted so far over every layer. */
  get completed(): number {
    return this.#completed;
  }

  /** Bytes of every layer announced so far. */
  get total(): number {
    return this.#total;
  }

  /**
   * Takes one line's figures. Throws {@linkcode InvalidResponseError} past
   * {@linkcode MAX_PULL_LAYERS} layers.
   */
  add(figures: LayerFigures): void {
    const { digest } = figures;
    if (digest === undefined || digest === "") {
      // Ollama has moved past the downloads (verifying, writing the manifest, success).
      this.finishAll();
      return;
    }
    let layer = this.#layers.get(digest);
    if (layer === undefined) {
      // Layers are downloaded one after another: a new one means the earlier ones are done.
      this.finishAll();
      if (this.#layers.size >= MAX_PULL_LAYERS) {
        throw new InvalidResponseError(
          `Ollama announced more than ${MAX_PULL_LAYERS} layers in one pull: is it really Ollama?`,
        );
      }
      layer = { total: 0, completed: 0 };
      this.#layers.set(digest, layer);
    }
    const total = Math.max(layer.total, figures.total ?? 0);
    const completed = Math.min(Math.max(layer.completed, figures.completed ?? 0), total);
    this.#total += total - layer.total;
    this.#completed += completed - layer.completed;
    layer.total = total;
    layer.completed = completed;
  }

  /** Counts every layer announced so far as complete. */
  finishAll(): void {
    for (const layer of this.#layers.values()) {
      this.#completed += layer.total - layer.completed;
      layer.completed = layer.total;
    }
  }
}

/** Options of {@linkcode streamPull}. */
export interface StreamPullOptions {
  /** The model to pull, as the user named it. */
  model: string;
  /** Aborts the pull and closes the connection. */
  signal?: AbortSignal;
  /** Maps an error line (`{"error": "..."}`) onto a typed error. */
  lineError: (message: string) => ProviderError;
}

/**
 * Posts `/api/pull` and yields the pull's progress, ending with a step with
 * `done: true` at Ollama's `success`. `upstream` carries the pull's
 * deadlines (no total limit, a long idle limit).
 */
export async function* streamPull(
  upstream: HttpUpstream,
  options: StreamPullOptions,
): AsyncGenerator<PullProgress> {
  const { model } = options;
  const path = "/api/pull";
  const deadline = startCall(upstream, options.signal);
  const tally = new PullTally();
  let status = "";
  try {
    // Ollama writes "pulling manifest" at once, with the headers: the connect limit applies.
    const response = await exchange(upstream, {
      method: "POST",
      path,
      payload: { model, stream: true },
      model,
      signal: options.signal,
      deadline,
    });
    const type = response.headers.get("content-type") ?? "";
    if (!response.body || (!type.includes("ndjson") && !type.includes("json"))) {
      const body = await readText(response.body, {
        maxBytes: upstream.limits.maxErrorBytes,
        signal: deadline.signal,
      }).catch(() => ({ text: "", truncated: false }));
      throw new InvalidResponseError(
        `Invalid response from Ollama at ${upstream.address}: ${path} answered with ${
          describeBody(type, body.text, body.truncated)
        } instead of NDJSON: is OLLAMA_HOST pointing at Ollama and not at a proxy or another service?`,
      );
    }
    deadline.arm("idle");
    const lines = readStream(
      response.body,
      ndjsonParser({ maxLineLength: MAX_PULL_LINE_LENGTH }),
      { signal: deadline.signal },
    );
    let count = 0;
    try {
      while (true) {
        let next: IteratorResult<unknown>;
        try {
          next = await lines.next();
        } catch (error) {
          if (deadline.signal.aborted) throw deadline.signal.reason;
          // The NDJSON parser does not know who sent the line: without this a line past the
          // bound reached the client as a bare "A reply line is longer than ...".
          if (error instanceof ParseRefusal) {
            throw parserRefusal(upstream, `${path} after line ${count}`, error);
          }
          if (error instanceof ProviderError) throw error;
          throw new ConnectionDroppedError(
            `Ollama at ${upstream.address} closed the connection in the middle of pulling "${model}"${
              status ? ` (at "${status}")` : ""
            }: it may have crashed; check the Ollama server log and pull again (the download resumes where it stopped).`,
            { cause: error },
          );
        }
        if (next.done) break;
        count++;
        deadline.arm("idle");
        const line = checkReply(next.value, pullLineShape, upstream, `${path} line ${count}`);
        if (line.error !== undefined) throw options.lineError(line.error);
        status = line.status ?? status;
        tally.add(line);
        const done = line.status === "success";
        yield { status, completed: tally.completed, total: tally.total, done };
        if (done) return;
      }
    } finally {
      await lines.return(undefined);
    }
    throw new ConnectionDroppedError(
      `Ollama at ${upstream.address} ended the pull of "${model}" without "success"${
        status ? ` (last status "${status}")` : ""
      }: it may have crashed; check the Ollama server log and pull again.`,
    );
  } catch (error) {
    if (error instanceof ProviderTimeoutError && error.phase === "idle") {
      throw new ProviderTimeoutError(
        "idle",
        error.ms,
        `Ollama at ${upstream.address} sent nothing for ${
          error.ms / 1000
        }s while pulling "${model}"${
          status ? ` (at "${status}")` : ""
        }: it may be stuck; check the Ollama server log and pull again (the download resumes where it stopped).`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    deadline.dispose();
  }
}
