/**
 * The Rune version, shared by `rune --version`, the MCP server info and `/healthz`.
 *
 * @module
 */

/** Rune's semantic version; keep in step with `deno.json`. */
export const VERSION = "0.1.0";
