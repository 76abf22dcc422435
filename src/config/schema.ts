/**
 * The configuration file's schema (zod), its defaults, and the JSON Schema
 * published from it for editors (`schema/config.schema.json`).
 *
 * The file is a JSON object (comments allowed) that declares providers
 * beyond the zero-config ones: `{ "providers": [ { "id", "type",
 * "base_url", "api_key_env", "headers", "models", "auth" } ] }`. Unknown keys
 * are errors that name the key, so a typo never silently does nothing.
 *
 * @module
 */

import { z } from "zod";

/** Provider types Rune can create (registry entries). */
export const PROVIDER_TYPES = ["ollama", "anthropic", "openai"] as const;

/** A provider type. */
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/**
 * A provider id: it appears in tool names (`ai_<id>_generate`) and model
 * names (`<id>/<model>`), so it is short, lower-case and has no `/`.
 */
export const PROVIDER_ID = /^[a-z][a-z0-9_-]{0,31}$/;

const url = z.string().refine((value) => {
  try {
    const parsed = new URL(value);
    return parsed.protocol === "http:" || parsed.protocol === "https:";
  } catch {
    return false;
  }
}, { error: "expected an http:// or https:// URL" });

/** How a provider signs in (issue: credentials); checked in full by `rune auth`. */
const authSchema = z.object({
  type: z.enum(["oauth", "openrouter-pkce"]).describe(
    '"oauth": Authorization Code with PKCE; "openrouter-pkce": OpenRouter\'s flow that returns a key.',
  ),
  issuer: url.optional().describe("OpenID issuer, for discovery."),
  authorization_endpoint: url.optional(),
  token_endpoint: url.optional(),
  revocation_endpoint: url.optional(),
  client_id: z.string().min(1).optional(),
  scopes: z.array(z.string().min(1)).optional(),
  audience: z.string().optional(),
  resource: z.string().optional(),
}).strict();

/** One provider entry of the file. */
export const providerConfigSchema = z.object({
  id: z.string().regex(PROVIDER_ID, {
    error: 'expected a short lower-case id (letters, digits, - and _), e.g. "openrouter"',
  }).describe('Provider id: tools are named "ai_<id>_*" and models "<id>/<model>".'),
  type: z.enum(PROVIDER_TYPES).describe("Which API the provider speaks."),
  base_url: url.optional().describe(
    "The API's base URL, e.g. https://openrouter.ai/api/v1 (default: the type's own).",
  ),
  api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
    error: "expected the name of an environment variable",
  }).optional().describe(
    "Environment variable holding the API key (never the key itself); omit for keyless local servers.",
  ),
  headers: z.record(z.string(), z.string()).optional().describe(
    "Extra HTTP headers sent with every request.",
  ),
  models: z.array(z.string().min(1)).optional().describe(
    "Models to list (and the only ones listed when the server cannot list its own).",
  ),
  auth: authSchema.optional().describe("Sign-in with OAuth (see rune auth login)."),
}).strict();

/** The whole file. */
export const configSchema = z.object({
  $schema: z.string().optional().describe("The JSON Schema of this file, for editors."),
  providers: z.array(providerConfigSchema).optional(),
  tools: z.enum(["per-provider", "router", "all"]).optional().describe(
    "Which MCP tools to register (the --tools flag wins).",
  ),
  allow_model_management: z.boolean().optional().describe(
    "Also register the tools that pull and delete Ollama models (as --allow-model-management).",
  ),
}).strict();

/** A provider entry's `auth` block. */
export type AuthConfig = z.infer<typeof authSchema>;

/** A provider entry. */
export type ProviderConfig = z.infer<typeof providerConfigSchema>;

/** The parsed file. */
export type Config = z.infer<typeof configSchema>;

/** The JSON Schema of the file, as published in `schema/config.schema.json`. */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { target: "draft-2020-12" }),
    $id: "https://github.com/rune/rune/schema/config.schema.json",
    title: "Rune configuration",
  };
}
