/**
 * The SDK's web-standard Streamable HTTP server transport, re-exported with
 * its types (see `sdk.ts`). A module of its own so the daemon loads it only
 * when the first HTTP session starts.
 *
 * @module
 */

// @ts-types="@modelcontextprotocol/sdk/server/webStandardStreamableHttp"
export { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
