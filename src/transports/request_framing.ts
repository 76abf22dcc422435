/**
 * Where each HTTP/1.1 request starts and where its header block ends, in
 * the bytes a client sends: the part of HTTP framing the header guard
 * (`header_guard.ts`) needs to put a deadline on request headers, which
 * Deno's HTTP server does not have.
 *
 * It follows request framing only (RFC 9112 §6: `Content-Length`, chunked
 * `Transfer-Encoding`, pipelined requests), never buffers a body, and holds
 * at most one header block (bounded). After a WebSocket upgrade request or
 * the HTTP/2 preface, and after anything it cannot frame (which Deno's
 * server then refuses with 400 and closes), it stops following: the rest
 * of the connection is opaque.
 *
 * @module
 */

/** What the framing has seen of the bytes fed so far. */
export interface FramingEvents {
  /** A request's first byte arrived: its header block is being received. */
  headStart(): void;
  /** The header block of the current request is complete. */
  headEnd(): void;
  /**
   * The header block is complete but the request is one the server must
   * refuse with 400 (RFC 9112 §3.2: an HTTP/1.1 request without `Host`);
   * called instead of `headEnd`, and the rest of the connection is opaque.
   */
  badRequest(reason: string): void;
}

/** Thrown when a header block grows past its bound. */
export class HeaderTooLargeError extends Error {
  /** The bound, in bytes. */
  readonly maxBytes: number;

  /** A header block over `maxBytes`. */
  constructor(maxBytes: number) {
    super(`The request's header block is larger than ${maxBytes} bytes.`);
    this.name = "HeaderTooLargeError";
    this.maxBytes = maxBytes;
  }
}

type State =
  /** Between requests (a CR or LF here is ignored, as RFC 9112 §2.2 allows). */
  | "idle"
  /** Receiving a header block. */
  | "head"
  /** Receiving a body of known length. */
  | "body"
  /** Chunked body: a chunk-size line. */
  | "chunk-size"
  /** Chunked body: chunk data. */
  | "chunk-data"
  /** Chunked body: the line end after chunk data. */
  | "chunk-end"
  /** Chunked body: trailer lines up to the empty line. */
  | "trailer"
  /** No longer followed (upgraded, HTTP/2, or not frameable). */
  | "opaque";

const LF = 0x0a;
const CR = 0x0d;
/** Longest chunk-size or trailer line followed; longer ones make the rest opaque. */
const MAX_CHUNK_LINE = 4096;
const latin1 = new TextDecoder("latin1");

/**
 * Follows the requests of one connection. Feed it every byte the client
 * sends, in order; it calls `events` as requests start and their header
 * blocks end. Starts in the header block of the connection's first request
 * (the caller's deadline for it runs from the connection's opening).
 */
export class RequestFraming {
  #events: FramingEvents;
  #maxHeaderBytes: number;
  #state: State = "head";
  /** The header block so far. */
  #head: Uint8Array[] = [];
  #headBytes = 0;
  /** Bytes of the current line (without its CR) in the header block or a chunk line. */
  #lineBytes = 0;
  /** Lines completed in the current header block (a leading empty line does not count). */
  #lines = 0;
  /** Body or chunk bytes still to come. */
  #remaining = 0;
  /** The current chunk-size line, as text. */
  #chunkLine = "";

  /** Follows a connection whose first request's header block starts now. */
  constructor(events: FramingEvents, options: { maxHeaderBytes: number }) {
    this.#events = events;
    this.#maxHeaderBytes = options.maxHeaderBytes;
  }

  /** True once the rest of the connection is no longer followed. */
  get opaque(): boolean {
    return this.#state === "opaque";
  }

  /** True while a header block is being received. */
  get inHead(): boolean {
    return this.#state === "head";
  }

  /**
   * Follows `bytes`, the next bytes the client sent. Throws
   * {@linkcode HeaderTooLargeError} when a header block passes its bound.
   */
  feed(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length && this.#state !== "opaque") {
      switch (this.#state) {
        case "idle": {
          const byte = bytes[at];
          if (byte === CR || byte === LF) {
            at++;
            break;
          }
          this.#startHead();
          break;
        }
        case "head":
          at = this.#readHead(bytes, at);
          break;
        case "body": {
          const take = Math.min(this.#remaining, bytes.length - at);
          this.#remaining -= take;
          at += take;
          if (this.#remaining === 0) this.#state = "idle";
          break;
        }
        case "chunk-data": {
          const take = Math.min(this.#remaining, bytes.length - at);
          this.#remaining -= take;
          at += take;
          if (this.#remaining === 0) this.#state = "chunk-end";
          break;
        }
        case "chunk-size":
        case "chunk-end":
        case "trailer":
          at = this.#readChunkLine(bytes, at);
          break;
      }
    }
  }

  #startHead(): void {
    this.#state = "head";
    this.#head = [];
    this.#headBytes = 0;
    this.#lineBytes = 0;
    this.#lines = 0;
    this.#events.headStart();
  }

  /** Reads header bytes from `at`; returns where the header block ended, or `bytes.length`. */
  #readHead(bytes: Uint8Array, at: number): number {
    let i = at;
    for (; i < bytes.length; i++) {
      const byte = bytes[i];
      if (byte === CR) continue;
      if (byte !== LF) {
        this.#lineBytes++;
        continue;
      }
      if (this.#lineBytes > 0) {
        this.#lines++;
        this.#lineBytes = 0;
        continue;
      }
      // An empty line: before the request line it is ignored, after it it ends the block.
      if (this.#lines === 0) continue;
      this.#keep(bytes.subarray(at, i + 1));
      this.#endHead();
      return i + 1;
    }
    this.#keep(bytes.subarray(at, i));
    return i;
  }

  #keep(part: Uint8Array): void {
    this.#headBytes += part.length;
    if (this.#headBytes > this.#maxHeaderBytes) throw new HeaderTooLargeError(this.#maxHeaderBytes);
    // Copied: the caller reuses its read buffer.
    if (part.length > 0) this.#head.push(part.slice());
  }

  #endHead(): void {
    const text = this.#head.map((part) => latin1.decode(part)).join("");
    this.#head = [];
    const state = nextState(text, (length) => (this.#remaining = length));
    if (state === "no-host") {
      this.#state = "opaque";
      this.#events.badRequest("An HTTP/1.1 request needs a Host header.");
      return;
    }
    this.#events.headEnd();
    this.#state = state;
  }

  /** Reads a chunk-size line, the line end after chunk data, or a trailer line. */
  #readChunkLine(bytes: Uint8Array, at: number): number {
    let i = at;
    for (; i < bytes.length; i++) {
      const byte = bytes[i];
      if (byte === LF) break;
      if (byte === CR) continue;
      if (++this.#lineBytes > MAX_CHUNK_LINE) {
        this.#state = "opaque";
        return bytes.length;
      }
      if (this.#state === "chunk-size") this.#chunkLine += String.fromCharCode(byte);
    }
    if (i === bytes.length) return i;
    // A whole line.
    const empty = this.#lineBytes === 0;
    this.#lineBytes = 0;
    if (this.#state === "chunk-end") {
      this.#state = empty ? "chunk-size" : "opaque";
    } else if (this.#state === "trailer") {
      if (empty) this.#state = "idle";
    } else {
      const size = /^\s*([0-9a-fA-F]{1,12})\s*(;.*)?$/.exec(this.#chunkLine);
      this.#chunkLine = "";
      if (!size) this.#state = "opaque";
      else {
        this.#remaining = parseInt(size[1], 16);
        this.#state = this.#remaining === 0 ? "trailer" : "chunk-data";
      }
    }
    return i + 1;
  }
}

/**
 * What follows a header block: a body, the next request, or an opaque rest;
 * `no-host` for an HTTP/1.1 request without `Host`.
 */
function nextState(head: string, setLength: (length: number) => void): State | "no-host" {
  const lines = head.split(/\r?\n/).filter((line) => line !== "");
  const requestLine = lines[0] ?? "";
  // The HTTP/2 preface ("PRI * HTTP/2.0", then "SM"): the rest is HTTP/2 frames.
  if (requestLine.startsWith("PRI * HTTP/2")) return "opaque";
  const fields = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return "opaque";
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    fields.set(name, [...(fields.get(name) ?? []), value]);
  }
  const list = (name: string) =>
    (fields.get(name) ?? []).flatMap((value) => value.split(",")).map((v) => v.trim().toLowerCase())
      .filter((v) => v !== "");
  if (/ HTTP\/1\.1$/.test(requestLine) && !fields.has("host")) return "no-host";
  // A WebSocket upgrade: after the server's 101 the bytes are frames.
  if (list("upgrade").includes("websocket") && list("connection").includes("upgrade")) {
    return "opaque";
  }
  const codings = list("transfer-encoding");
  if (codings.length > 0) {
    // Chunked must be last (RFC 9112 §6.3); otherwise the server refuses the request.
    return codings.at(-1) === "chunked" && !fields.has("content-length") ? "chunk-size" : "opaque";
  }
  const lengths = list("content-length");
  if (lengths.length === 0) return "idle";
  if (!lengths.every((value) => value === lengths[0]) || !/^\d{1,15}$/.test(lengths[0])) {
    return "opaque";
  }
  const length = Number(lengths[0]);
  if (length === 0) return "idle";
  setLength(length);
  return "body";
}
