/**
 * OAuth scopes per tool. A remote client's access token grants some of
 * three scopes (its space-separated `scope` claim):
 *
 * | scope           | tools                                                   |
 * | --------------- | ------------------------------------------------------- |
 * | `rune:models`   | `*_list_models`, `*_show`, `*_ps`                        |
 * | `rune:generate` | `*_generate`, `*_chat`, `*_embed`, `*_compare`           |
 * | `rune:manage`   | `*_pull`, `*_delete`                                    |
 *
 * Tools are matched by their name's suffix, so each provider's tools
 * (`ai_<id>_chat`), the router tools (`ai_chat`) and tools added later with
 * the same endings fall in the right scope. A tool whose name matches no
 * suffix is in no scope: it is never served to a scoped client (fail
 * closed), and a test keeps every registered tool mapped.
 *
 * Scopes are flat: none implies another.
 *
 * @module
 */

/** The scopes Rune understands. */
export const RUNE_SCOPES = ["rune:models", "rune:generate", "rune:manage"] as const;

/** One of {@linkcode RUNE_SCOPES}. */
export type RuneScope = (typeof RUNE_SCOPES)[number];

/**
 * What a client without a token is told to ask for (the `scope` of the 401
 * challenge): enough to list models and use them. Managing models
 * (`rune:manage`) is requested deliberately, never by default.
 */
export const DEFAULT_SCOPES: readonly RuneScope[] = ["rune:models", "rune:generate"];

/** Tool name endings and their scope, longest first. */
const SUFFIXES: readonly [string, RuneScope][] = [
  ["_list_models", "rune:models"],
  ["_generate", "rune:generate"],
  ["_compare", "rune:generate"],
  ["_delete", "rune:manage"],
  ["_embed", "rune:generate"],
  ["_chat", "rune:generate"],
  ["_show", "rune:models"],
  ["_pull", "rune:manage"],
  ["_ps", "rune:models"],
];

/** The scope a tool needs, or undefined for a name that matches no known suffix. */
export function toolScope(name: string): RuneScope | undefined {
  for (const [suffix, scope] of SUFFIXES) if (name.endsWith(suffix)) return scope;
  return undefined;
}

/**
 * Whether a client holding `granted` may see and call tool `name`;
 * `granted` undefined means unrestricted (stdio, shared tokens, no auth).
 */
export function toolAllowed(name: string, granted: readonly string[] | undefined): boolean {
  if (granted === undefined) return true;
  const scope = toolScope(name);
  return scope !== undefined && granted.includes(scope);
}

/** The Rune scopes among `granted` (a token may carry others, such as `openid`). */
export function runeScopesIn(granted: readonly string[]): RuneScope[] {
  return RUNE_SCOPES.filter((scope) => granted.includes(scope));
}

/**
 * Parses a `scope` claim: a space-separated string (RFC 6749, RFC 9068),
 * or an array of strings (the `scp` claim some providers use instead).
 * Anything else grants nothing.
 */
export function parseScopeClaim(value: unknown): string[] {
  if (typeof value === "string") return value.split(" ").filter(Boolean);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

/**
 * The scopes a client holding `granted` lacks for the `tools/call`
 * requests in `body` (one JSON-RPC message or a batch), all of them at
 * once so the client re-authorizes only once. Calls of tools in no scope
 * are left to the server, which answers that no such tool exists.
 */
export function missingScopes(body: unknown, granted: readonly string[]): RuneScope[] {
  const missing = new Set<RuneScope>();
  for (const message of Array.isArray(body) ? body : [body]) {
    const name = calledTool(message);
    const scope = name === undefined ? undefined : toolScope(name);
    if (scope !== undefined && !granted.includes(scope)) missing.add(scope);
  }
  return RUNE_SCOPES.filter((scope) => missing.has(scope));
}

/** The tool a `tools/call` request names, else undefined. */
export function calledTool(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const { method, params } = message as { method?: unknown; params?: unknown };
  if (method !== "tools/call" || typeof params !== "object" || params === null) return undefined;
  const name = (params as { name?: unknown }).name;
  return typeof name === "string" ? name : undefined;
}

/**
 * The scopes a server instance is restricted to, from the `authInfo` the
 * transports pass it (`transports/auth_info.ts`): undefined, meaning every
 * tool, unless the identity is an OAuth token.
 */
export function scopesOf(
  ctx: { authInfo?: { scopes?: string[]; extra?: Record<string, unknown> } },
): readonly string[] | undefined {
  return ctx.authInfo?.extra?.scoped === true ? ctx.authInfo.scopes ?? [] : undefined;
}
