/**
 * How an authenticated identity is handed to the MCP SDK: as `authInfo`,
 * which the SDK passes to server factories and tool handlers. Only the
 * identity's id goes (as the client id); the token itself never does.
 *
 * @module
 */

import type { Identity } from "./security.ts";

/**
 * What the SDK passes to handlers as `authInfo` for an identity: its id as
 * the client id (never a token). Without tokens there is no identity to pass.
 */
export function authInfoOf(
  identity: Identity,
): { authInfo?: { token: string; clientId: string; scopes: string[] } } {
  return identity.id === "anonymous"
    ? {}
    : { authInfo: { token: "", clientId: identity.id, scopes: [] } };
}
