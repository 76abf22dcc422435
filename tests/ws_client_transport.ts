/**
 * A client-side `Transport` for MCP over WebSocket (subprotocol `mcp`, one
 * JSON-RPC message per text frame) for the v2 SDK `Client`, which ships no
 * WebSocket transport of its own (the v1 SDK's `WebSocketClientTransport`
 * speaks the same framing).
 *
 * @module
 */

import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/client";

/** Options of {@linkcode WebSocketTransport}. */
export interface WebSocketTransportOptions {
  /** Extra subprotocols, e.g. `bearer.TOKEN`. */
  protocols?: string[];
  /** The client to connect with (`wss://` trusting a test CA). */
  client?: Deno.HttpClient;
}

/** MCP over a browser-style `WebSocket`. */
export class WebSocketTransport implements Transport {
  /** Set by the client on connect. */
  onclose?: () => void;
  /** Set by the client on connect. */
  onerror?: (error: Error) => void;
  /** Set by the client on connect. */
  onmessage?: (message: JSONRPCMessage) => void;

  #url: URL;
  #protocols: string[];
  #client?: Deno.HttpClient;
  #socket?: WebSocket;

  /** Creates a transport to `url` (`ws://host:port/ws`). */
  constructor(url: URL | string, options: WebSocketTransportOptions = {}) {
    this.#url = new URL(url);
    this.#protocols = ["mcp", ...(options.protocols ?? [])];
    this.#client = options.client;
  }

  /** Opens the socket; resolves once it is open. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = this.#client
        ? new WebSocket(this.#url, { protocols: this.#protocols, client: this.#client })
        : new WebSocket(this.#url, this.#protocols);
      this.#socket = socket;
      socket.onopen = () => resolve();
      socket.onerror = (event) => {
        const error = new Error(`WebSocket error: ${(event as ErrorEvent).message ?? "unknown"}`);
        reject(error);
        this.onerror?.(error);
      };
      socket.onclose = () => this.onclose?.();
      socket.onmessage = (event) => {
        try {
          this.onmessage?.(JSON.parse(String(event.data)) as JSONRPCMessage);
        } catch (error) {
          this.onerror?.(error as Error);
        }
      };
    });
  }

  /** Sends one message as a text frame. */
  send(message: JSONRPCMessage): Promise<void> {
    if (this.#socket?.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("WebSocket is not open"));
    }
    this.#socket.send(JSON.stringify(message));
    return Promise.resolve();
  }

  /** Closes the socket; resolves once it is closed. */
  close(): Promise<void> {
    const socket = this.#socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      socket.addEventListener("close", () => resolve(), { once: true });
      socket.close();
    });
  }
}
