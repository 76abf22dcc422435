/**
 * A WebSocket client written on a raw TCP connection that completes the
 * handshake, sends a few MCP messages, and then never reads again: the
 * "client that stops reading" of the memory benchmark.
 *
 * @module
 */

import { maskedTextFrame, rawWebSocket, writeAll } from "../tests/transports/raw_http.ts";

/** A connected client that does not read. */
export interface StalledClient {
  /** Sends one JSON-RPC message as a masked text frame. */
  send(message: unknown): Promise<void>;
  /** Closes the TCP connection. */
  close(): void;
}

/** Opens `ws://127.0.0.1:port/ws` (subprotocol `mcp`) and reads only the 101 response. */
export async function connectStalled(port: number): Promise<StalledClient> {
  const conn = await rawWebSocket(port);
  let closed = false;
  return {
    async send(message) {
      await writeAll(conn, maskedTextFrame(JSON.stringify(message)));
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  };
}
