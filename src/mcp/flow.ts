/**
 * Flow control for responses the SDK writes without waiting.
 *
 * On stdio and WebSocket, Rune's own transports resolve `send()` only when
 * the channel accepted the bytes, so a notification waits for a slow client.
 * The SDK's Streamable HTTP transports (both eras) enqueue SSE frames into
 * the response stream without waiting. The HTTP layer therefore wraps each
 * response body in a metered stream and registers a {@linkcode Flow} for the
 * HTTP request here; the tool layer finds it through the request the SDK
 * hands to tool handlers (`ctx.http.req`) and waits on it after each
 * progress notification, which holds the upstream model back exactly as on
 * WebSocket.
 *
 * @module
 */

/** Backpressure of one HTTP response. */
export interface Flow {
  /** Resolves once the response's unread bytes are below the high-water mark. */
  ready(): Promise<void>;
}

const flows = new WeakMap<Request, Flow>();

/** Registers the flow of the response to `request` (held weakly: it goes with the request). */
export function setFlow(request: Request, flow: Flow): void {
  flows.set(request, flow);
}

/** The flow registered for `request`, if any. */
export function flowOf(request: Request | undefined): Flow | undefined {
  return request === undefined ? undefined : flows.get(request);
}
