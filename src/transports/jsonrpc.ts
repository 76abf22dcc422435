/**
 * JSON-RPC error replies and the default message bound, kept free of SDK
 * imports so the network listener can use them before (or without)
 * loading the MCP machinery.
 *
 * @module
 */

/** A JSON-RPC request id. */
export type JsonRpcId = string | number;

/** JSON-RPC error code: the message is not valid JSON. */
export const JSONRPC_PARSE_ERROR = -32700;
/** JSON-RPC error code: the message is JSON but not a valid JSON-RPC 2.0 message. */
export const JSONRPC_INVALID_REQUEST = -32600;
/** Implementation-defined server error: too many requests in flight. */
export const TOO_MANY_REQUESTS = -32000;
/**
 * Implementation-defined server error: the client's OAuth token lacks a
 * scope the request needs (the WebSocket counterpart of HTTP 403
 * `insufficient_scope`; MCP defines no code for it).
 */
export const FORBIDDEN = -32003;

/** Default bound on one message: large enough for several base64 images (32 MiB). */
export const DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024;

/** Serializes a JSON-RPC error reply (with `data` when given). */
export function errorReply(
  id: JsonRpcId | null,
  code: number,
  message: string,
  data?: unknown,
): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    error: data === undefined ? { code, message } : { code, message, data },
  });
}
