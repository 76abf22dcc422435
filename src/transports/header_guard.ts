/**
 * A deadline on request headers and a cap on connections still sending
 * them, in front of `Deno.serve`, which has neither: a client that opens a
 * connection and trickles its headers (or sends nothing) otherwise holds a
 * socket and Deno's state for it forever, and a few hundred of them pin
 * the daemon.
 *
 * {@linkcode serveGuarded} listens on the public address itself (TCP, or
 * TLS with the same ALPN offer as `Deno.serve`: `h2` and `http/1.1`) and
 * serves the handler with `Deno.serve` on a private loopback port. Each
 * accepted connection is followed with {@linkcode RequestFraming}: while a
 * request's header block is arriving the connection counts against
 * `maxHeaderConnections` and must finish within `headerTimeoutMs` (from
 * the connection's opening for the first request, TLS handshake included;
 * from its first byte for later ones). A connection past the deadline is
 * answered 408 (or just closed, when a response may be in flight); when a
 * new connection finds the cap reached, the one that has been sending its
 * headers longest (for a second or more) is answered 503 and closed, so
 * slow connections cannot crowd out new clients while a burst of fast ones
 * passes. Only a connection whose first header block is complete
 * gets a connection to the private server, and from then on bytes are
 * copied both ways as they come, each copy awaiting the other side, so a
 * client that does not read still holds the server back.
 *
 * The handler sees the client's own address as `remoteAddr` (the
 * failed-authentication limit counts per address); a connection to the
 * private port that did not come through the guard is refused with 421.
 *
 * @module
 */

import { concat, writeAll } from "../bytes.ts";
import type { Logger } from "../log.ts";
import { HeaderTooLargeError, RequestFraming } from "./request_framing.ts";

/** Limits of the header guard. */
export interface HeaderGuardLimits {
  /**
   * Time a request's header block may take, in milliseconds: from the
   * connection's opening (TLS handshake included) for its first request,
   * from the first byte for later ones.
   * @default 10_000
   */
  headerTimeoutMs?: number;
  /**
   * Most connections that have been sending a request's header block for a
   * second or more: past it, the longest-sending one is answered 503 and
   * closed to make room for each new one.
   * @default 256
   */
  maxHeaderConnections?: number;
  /**
   * Largest header block in bytes; a larger one is answered 431.
   * @default 65_536
   */
  maxHeaderBytes?: number;
}

/** Defaults of {@linkcode HeaderGuardLimits}. */
export const DEFAULT_HEADER_GUARD: Readonly<Required<HeaderGuardLimits>> = {
  headerTimeoutMs: 10_000,
  maxHeaderConnections: 256,
  maxHeaderBytes: 64 * 1024,
};

/** Options of {@linkcode serveGuarded}. */
export interface GuardedServeOptions extends HeaderGuardLimits {
  /** Public bind address. */
  hostname: string;
  /** Public port; `0` picks a free one. */
  port: number;
  /** PEM certificate chain: with `key`, the public side speaks TLS. */
  cert?: string;
  /** PEM private key. */
  key?: string;
  /** `Deno.serve`'s `onError`. */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Diagnostics sink: one info line per minute at most about closed connections. */
  log?: Logger;
}

/** The part of `Deno.HttpServer` the daemon uses. */
export interface GuardedServer {
  /** The public address. */
  readonly addr: Deno.NetAddr;
  /** Resolves once the server has shut down. */
  readonly finished: Promise<void>;
  /** Stops accepting, closes connections still sending headers, lets responses finish. */
  shutdown(): Promise<void>;
  /** Connections still sending a request's header block. */
  receivingHeaders(): number;
}

/** The handler served behind the guard. */
export type GuardedHandler = (
  request: Request,
  info: { remoteAddr: Deno.NetAddr },
) => Response | Promise<Response>;

/** First read buffer of each direction; a read that fills it switches to the large one. */
const SMALL_READ = 4 * 1024;
const LARGE_READ = 64 * 1024;
/** A connection sending headers this long may be closed to make room for a new one. */
const EVICT_AFTER_MS = 1_000;
/** Pause after a failed accept (out of file descriptors) before the next. */
const ACCEPT_RETRY_MS = 100;
/** At shutdown, how long connections may take to pass on the private server's last bytes. */
const SHUTDOWN_FLUSH_MS = 1_000;
/** One log line per this period at most. */
const LOG_PERIOD_MS = 60_000;

const encoder = new TextEncoder();

/**
 * Listens on `hostname:port` and serves `handler` behind the header guard.
 * Throws what `Deno.listen` throws (address in use, missing permission).
 */
export function serveGuarded(options: GuardedServeOptions, handler: GuardedHandler): GuardedServer {
  const headerTimeoutMs = options.headerTimeoutMs ?? DEFAULT_HEADER_GUARD.headerTimeoutMs;
  const maxHeaderConnections = options.maxHeaderConnections ??
    DEFAULT_HEADER_GUARD.maxHeaderConnections;
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_HEADER_GUARD.maxHeaderBytes;
  const tls = options.cert !== undefined && options.key !== undefined;
  const listener: Deno.Listener = tls
    ? Deno.listenTls({
      hostname: options.hostname,
      port: options.port,
      cert: options.cert!,
      key: options.key!,
      alpnProtocols: ["h2", "http/1.1"],
    })
    : Deno.listen({ hostname: options.hostname, port: options.port });
  /** Public peers by the local port of their connection to the private server. */
  const peers = new Map<number, Deno.NetAddr>();
  let inner: Deno.HttpServer<Deno.NetAddr>;
  try {
    inner = Deno.serve({
      hostname: options.hostname.includes(":") ? "::1" : "127.0.0.1",
      port: 0,
      onListen: () => {},
      ...(options.onError && { onError: options.onError }),
    }, (request, info) => {
      const peer = peers.get(info.remoteAddr.port);
      if (!peer) {
        return new Response(`Connect to Rune at its public address, not this private port.\n`, {
          status: 421,
        });
      }
      return handler(request, { remoteAddr: peer });
    });
  } catch (error) {
    listener.close();
    throw error;
  }
  const innerAddr = inner.addr;
  const guards = new Set<Guard>();
  /** Connections sending a header block, longest first. */
  const heads = new Set<Guard>();
  let stopping = false;
  const dropped = { timeout: 0, full: 0, large: 0 };
  let loggedAt = -Infinity;

  function note(kind: keyof typeof dropped): void {
    dropped[kind]++;
    const now = performance.now();
    if (!options.log || now - loggedAt < LOG_PERIOD_MS) return;
    loggedAt = now;
    const parts = [
      dropped.timeout &&
      `${dropped.timeout} whose request headers took longer than ${
        headerTimeoutMs / 1000
      } s (--header-timeout)`,
      dropped.full &&
      `${dropped.full} over the limit of ${maxHeaderConnections} connections still sending headers (--max-header-connections)`,
      dropped.large && `${dropped.large} with headers over ${maxHeaderBytes} bytes`,
    ].filter(Boolean);
    options.log("info", `closed connections: ${parts.join(", ")}`);
    dropped.timeout = dropped.full = dropped.large = 0;
  }

  /** One public connection and, once its first header block is in, its private twin. */
  class Guard {
    readonly client: Deno.Conn;
    server: Deno.TcpConn | undefined;
    #timer: ReturnType<typeof setTimeout> | undefined;
    #counted = false;
    #closed = false;
    #ended = Promise.withResolvers<void>();
    /** True once a byte has gone to the private server (a response may be in flight). */
    #forwarded = false;

    constructor(client: Deno.Conn) {
      this.client = client;
    }

    /** When the current header block started (performance.now()). */
    headSince = 0;

    /**
     * Counts the connection as receiving headers and arms the deadline. At
     * the cap, the connection that has been sending headers longest makes
     * room (503) once it is older than {@linkcode EVICT_AFTER_MS}; younger
     * ones are all let through, so a burst of fast clients is not refused.
     */
    enterHead(): void {
      if (heads.size >= maxHeaderConnections) {
        const oldest = heads.values().next().value;
        if (oldest && performance.now() - oldest.headSince >= EVICT_AFTER_MS) {
          note("full");
          void oldest.refuse(
            503,
            "Service Unavailable",
            `Too many connections still sending request headers (limit ${maxHeaderConnections}).`,
          );
        }
      }
      this.headSince = performance.now();
      heads.add(this);
      this.#counted = true;
      this.#timer = setTimeout(() => this.#expire(), headerTimeoutMs);
    }

    leaveHead(): void {
      if (!this.#counted) return;
      this.#counted = false;
      heads.delete(this);
      clearTimeout(this.#timer);
    }

    #expire(): void {
      note("timeout");
      void this.refuse(408, "Request Timeout", "The request headers did not arrive in time.");
    }

    /** Answers `status` when no response can be in flight, then closes both sides. */
    async refuse(status: number, reason: string, text: string): Promise<void> {
      if (this.#closed) return;
      if (!this.#forwarded) {
        const body = `${text}\n`;
        const head = `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\n` +
          `content-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n\r\n`;
        // A few hundred bytes fit in any socket buffer; a client that reads nothing loses them.
        await Promise.race([
          this.client.write(encoder.encode(head + body)).catch(() => {}),
          new Promise((resolve) => setTimeout(resolve, 1000)),
        ]);
      }
      this.close();
    }

    close(): void {
      if (this.#closed) return;
      this.#closed = true;
      this.#ended.resolve();
      this.leaveHead();
      guards.delete(this);
      for (const conn of [this.client, this.server]) {
        try {
          conn?.close();
        } catch {
          // Already closed.
        }
      }
      if (this.server) peers.delete((this.server.localAddr as Deno.NetAddr).port);
    }

    get closed(): boolean {
      return this.#closed;
    }

    /** Resolves once both sides are closed. */
    get ended(): Promise<void> {
      return this.#ended.promise;
    }

    /** Sends `bytes` to the private server, connecting first when needed. */
    async forward(bytes: Uint8Array): Promise<void> {
      if (!this.server) {
        const server = await Deno.connect({ hostname: innerAddr.hostname, port: innerAddr.port });
        if (this.#closed) {
          server.close();
          return;
        }
        server.setNoDelay(true);
        this.server = server;
        peers.set((server.localAddr as Deno.NetAddr).port, this.client.remoteAddr as Deno.NetAddr);
        void this.#copyReplies(server);
      }
      this.#forwarded = true;
      await writeAll(this.server, bytes);
    }

    /** Copies the private server's bytes to the client until either side ends. */
    async #copyReplies(server: Deno.TcpConn): Promise<void> {
      try {
        await copy(server, this.client);
      } finally {
        this.close();
      }
    }
  }

  async function serveConnection(client: Deno.Conn): Promise<void> {
    const guard = new Guard(client);
    guards.add(guard);
    if (stopping) {
      guard.close();
      return;
    }
    guard.enterHead();
    try {
      if (tls) {
        const { alpnProtocol } = await (client as Deno.TlsConn).handshake();
        // HTTP/2 multiplexes requests on one socket: its frames are not followed.
        if (alpnProtocol === "h2") {
          guard.leaveHead();
          await guard.forward(new Uint8Array(0));
          await copy(client, guard.server!);
          return;
        }
      } else {
        (client as Deno.TcpConn).setNoDelay(true);
      }
      let firstHeadDone = false;
      const framing = new RequestFraming({
        headStart: () => guard.enterHead(),
        headEnd() {
          firstHeadDone = true;
          guard.leaveHead();
        },
        badRequest(reason) {
          guard.leaveHead();
          void guard.refuse(400, "Bad Request", reason);
        },
      }, { maxHeaderBytes });
      let pending: Uint8Array[] = [];
      let buffer = new Uint8Array(SMALL_READ);
      while (!guard.closed) {
        const n = await client.read(buffer);
        if (n === null) break;
        const bytes = buffer.subarray(0, n);
        try {
          framing.feed(bytes);
        } catch (error) {
          if (!(error instanceof HeaderTooLargeError)) throw error;
          note("large");
          await guard.refuse(431, "Request Header Fields Too Large", error.message);
          return;
        }
        if (!firstHeadDone) {
          // Nothing reaches the private server before the first header block is whole.
          pending.push(bytes.slice());
        } else {
          const out = pending.length ? concat([...pending, bytes]) : bytes;
          pending = [];
          await guard.forward(out);
        }
        if (n === buffer.length && buffer.length < LARGE_READ) buffer = new Uint8Array(LARGE_READ);
      }
    } catch {
      // A reset, a failed handshake or a close from the other side ends the connection.
    } finally {
      guard.close();
    }
  }

  const accepting = (async () => {
    while (true) {
      let client: Deno.Conn;
      try {
        client = await listener.accept();
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, most likely: let connections end before accepting more.
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      void serveConnection(client);
    }
  })();

  return {
    addr: listener.addr as Deno.NetAddr,
    finished: inner.finished,
    receivingHeaders: () => heads.size,
    async shutdown() {
      stopping = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await accepting;
      for (const guard of [...guards]) if (!guard.server) guard.close();
      await inner.shutdown();
      // The private server's last bytes (a WebSocket's 1001 close frame) still reach the clients.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all([...guards].map((guard) => guard.ended)),
        new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_FLUSH_MS))),
      ]);
      clearTimeout(timer);
      for (const guard of [...guards]) guard.close();
    },
  };
}

/** Copies `from` to `to` until `from` ends; each write is awaited before the next read. */
async function copy(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  let buffer = new Uint8Array(SMALL_READ);
  try {
    while (true) {
      const n = await from.read(buffer);
      if (n === null) return;
      await writeAll(to, buffer.subarray(0, n));
      if (n === buffer.length && buffer.length < LARGE_READ) buffer = new Uint8Array(LARGE_READ);
    }
  } catch {
    // Either side closed or reset: the caller closes both.
  }
}
