/**
 * MCP over WebSocket (subprotocol `mcp`, one JSON-RPC message per text
 * frame) for the Vercel AI SDK's MCP client, through its `MCPTransport`
 * seam: the AI SDK ships stdio, Streamable HTTP and the old HTTP+SSE
 * transports, but none for WebSocket.
 *
 * Two choices the AI SDK leaves to a custom transport:
 * - Discovery: the transport opts in to `server/discover`
 *   (`supportsProtocolVersionDiscovery`) and says Rune always answers it
 *   (`waitsForProtocolVersionDiscovery`), so the client waits for the answer
 *   instead of falling back to `initialize` after its 1 s probe deadline.
 * - Cancel: the client core never sends `notifications/cancelled`; it hands
 *   each request's abort signal to the transport, and the HTTP transport
 *   cancels by aborting the request's fetch. On a shared socket the
 *   equivalent is the cancel notification, so that is what an abort sends.
 *
 * @module
 */

import type { JSONRPCMessage, MCPTransport, MCPTransportSendOptions } from "@ai-sdk/mcp";

type RequestId = string | number;

/** The AI SDK's transport seam over a browser-style `WebSocket`. */
export class AiSdkWebSocketTransport implements MCPTransport {
  /** The client may probe with `server/discover`. */
  readonly supportsProtocolVersionDiscovery = true;
  /** Rune answers every request on `/ws`, so the probe needs no deadline. */
  readonly waitsForProtocolVersionDiscovery = true;
  /** Set by the client. */
  onclose?: () => void;
  /** Set by the client. */
  onerror?: (error: Error) => void;
  /** Set by the client. */
  onmessage?: (message: JSONRPCMessage) => void;
  /** Every message sent, in order (for the tests' assertions). */
  readonly sent: JSONRPCMessage[] = [];

  #url: URL;
  #socket?: WebSocket;
  /** Requests in flight with an abort signal: how to stop listening to it. */
  #aborts = new Map<RequestId, () => void>();

  /** Creates a transport to `url` (`ws://host:port/ws`). */
  constructor(url: URL | string) {
    this.#url = new URL(url);
  }

  /** Opens the socket; resolves once it is open. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.#url, ["mcp"]);
      this.#socket = socket;
      socket.onopen = () => resolve();
      socket.onerror = (event) => {
        const error = new Error(`WebSocket error: ${(event as ErrorEvent).message ?? "unknown"}`);
        reject(error);
        this.onerror?.(error);
      };
      socket.onclose = () => {
        for (const stop of this.#aborts.values()) stop();
        this.#aborts.clear();
        this.onclose?.();
      };
      socket.onmessage = (event) => {
        let message: JSONRPCMessage;
        try {
          message = JSON.parse(String(event.data)) as JSONRPCMessage;
        } catch (error) {
          this.onerror?.(error as Error);
          return;
        }
        if (!("method" in message) && message.id !== undefined) this.#settled(message.id);
        this.onmessage?.(message);
      };
    });
  }

  /**
   * Sends one message as a text frame. A request sent with a signal is
   * cancelled with `notifications/cancelled` when the signal aborts first.
   */
  send(message: JSONRPCMessage, options?: MCPTransportSendOptions): Promise<void> {
    options?.signal?.throwIfAborted();
    const socket = this.#socket;
    if (socket?.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("WebSocket is not open"));
    }
    const signal = options?.signal;
    if (signal && "method" in message && "id" in message) {
      const id = message.id;
      const onAbort = () => {
        this.#settled(id);
        if (socket.readyState !== WebSocket.OPEN) return;
        const reason = signal.reason instanceof Error ? signal.reason.message : signal.reason;
        this.#write(socket, {
          jsonrpc: "2.0",
          method: "notifications/cancelled",
          params: { requestId: id, ...(typeof reason === "string" && { reason }) },
        });
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#aborts.set(id, () => signal.removeEventListener("abort", onAbort));
    }
    this.#write(socket, message);
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

  #write(socket: WebSocket, message: JSONRPCMessage): void {
    this.sent.push(message);
    socket.send(JSON.stringify(message));
  }

  /** A request was answered (or cancelled): its signal no longer matters. */
  #settled(id: RequestId): void {
    this.#aborts.get(id)?.();
    this.#aborts.delete(id);
  }
}
