/**
 * The MCP SDK client modules the tests and benchmarks use, re-exported with
 * their type declarations (see `src/mcp/sdk.ts` for why).
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/client/index"
export { Client } from "@modelcontextprotocol/sdk/client/index.js";
// @ts-types="@modelcontextprotocol/sdk/client/stdio"
export { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
// @ts-types="@modelcontextprotocol/sdk/client/websocket"
export { WebSocketClientTransport } from "@modelcontextprotocol/sdk/client/websocket.js";
// @ts-types="@modelcontextprotocol/sdk/client/streamableHttp"
export { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// @ts-types="@modelcontextprotocol/sdk/types"
export {
  type CallToolResult,
  CallToolResultSchema,
  ErrorCode,
  McpError,
  type ProgressNotification,
} from "@modelcontextprotocol/sdk/types.js";
