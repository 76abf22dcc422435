/**
 * How an authenticated identity is handed to the MCP SDK: as `authInfo`,
 * which the SDK passes to server factories and tool handlers. Only the
 * identity's id goes (as the client id) with its scopes; the token itself
 * never does.
 *
 * @module
 */

import { RUNE_SCOPES } from "../mcp/scopes.ts";
import type { Identity } from "./security.ts";

/** The SDK's `authInfo` as Rune fills it. */
export interface RuneAuthInfo {
  /** Always empty: the token stays in the transport. */
  token: string;
  /** The identity id (`token:N`, `oauth:HEX`). */
  clientId: string;
  /** The Rune scopes granted: all of them for a shared token. */
  scopes: string[];
  /** When the OAuth token expires (seconds since the epoch). */
  expiresAt?: number;
  /** `scoped: true` when the instance must serve only the tools `scopes` allow. */
  extra: { scoped: boolean };
}

/**
 * What the SDK passes to handlers as `authInfo` for an identity: its id as
 * the client id (never a token) and its scopes. Without tokens there is no
 * identity to pass.
 */
export function authInfoOf(identity: Identity): { authInfo?: RuneAuthInfo } {
  if (identity.id === "anonymous") return {};
  return {
    authInfo: {
      token: "",
      clientId: identity.id,
      scopes: [...(identity.scopes ?? RUNE_SCOPES)],
      ...(identity.expiresAt !== undefined && { expiresAt: Math.floor(identity.expiresAt / 1000) }),
      extra: { scoped: identity.scopes !== undefined },
    },
  };
}
