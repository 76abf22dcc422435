/**
 * Serves MCP in both protocol eras on one long-lived connection (stdio, a
 * WebSocket).
 *
 * The SDK's connection entry is `serveStdio`: it classifies the opening
 * exchange (an `initialize` handshake pins a 2025-era instance; a
 * `server/discover` probe or an enveloped 2026-07-28 request pins a modern
 * one), answers `subscriptions/listen`, and passes everything after the
 * opening straight to the pinned instance. Despite its name it takes any
 * `Transport`, so Rune hands it its own bounded, backpressured message
 * transport for both stdio and WebSocket. This module is the one place that
 * leans on that: if the SDK ever grows a transport-neutral name for the
 * entry, only this file changes.
 *
 * @module
 */

import type { McpServerFactory, Transport } from "@modelcontextprotocol/server";
import { serveStdio } from "@modelcontextprotocol/server/stdio";

/** A served connection. */
export interface Connection {
  /** Closes the pinned server instance (aborting its calls) and the transport. */
  close(): Promise<void>;
}

/** Options of {@linkcode serveConnection}. */
export interface ServeConnectionOptions {
  /** Out-of-band problems (a response before any request, a rejected opening). */
  onError?: (error: Error) => void;
  /**
   * Most `subscriptions/listen` streams open on the connection.
   * @default 16
   */
  maxSubscriptions?: number;
}

/**
 * Serves the server instances `factory` builds over `transport`, in
 * whichever era the client opens with. The entry starts the transport.
 */
export function serveConnection(
  transport: Transport,
  factory: McpServerFactory,
  options: ServeConnectionOptions = {},
): Connection {
  return serveStdio(factory, {
    transport,
    legacy: "serve",
    maxSubscriptions: options.maxSubscriptions ?? 16,
    ...(options.onError && { onerror: options.onError }),
  });
}
