/**
 * The configuration file's schema (zod), its defaults, and the JSON Schema
 * published from it for editors (`schema/config.schema.json`).
 *
 * The file is a JSON object (comments allowed) that declares providers
 * beyond the zero-config ones: `{ "providers": [ { "id", "type",
 * "base_url" or "hosts", "api_key_env", "headers", "models", "auth", "rpm",
 * "tpm", "max_in_flight_per_host" } ] }`, and the fleet settings:
 * `"fallbacks"`, `"redis"`, `"cache"`, `"rate_limit"`. Unknown keys are
 * errors that name the key, so a typo never silently does nothing.
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

/** Most hosts of one provider. */
export const MAX_HOSTS = 64;

/** `N/s`, `N/m` or `N/h`: a rate. */
export const RATE_PATTERN = /^([1-9][0-9]{0,8})\/(s|m|h)$/;

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
  hosts: z.array(z.string().min(1)).min(1).max(MAX_HOSTS).optional().describe(
    "Several hosts serving this provider (instead of base_url): calls go to a host that has " +
      'the model, with failover. Ollama takes its own forms ("gpu-1:11434"); others take URLs.',
  ),
  max_in_flight_per_host: z.number().int().min(1).max(1024).optional().describe(
    "Most calls running on one host at once (default 4, like OLLAMA_NUM_PARALLEL).",
  ),
  rpm: z.number().int().min(1).optional().describe(
    "Requests per minute Rune sends this provider at most (shared across instances with redis).",
  ),
  tpm: z.number().int().min(1).optional().describe(
    "Tokens per minute (prompt + completion) this provider may use; a call waits for none: " +
      "once the minute's tokens are used, calls are refused until the next minute.",
  ),
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
  fallbacks: z.record(
    z.string().regex(/^[^/]+\/.+$/, { error: 'expected "<provider>/<model>"' }),
    z.array(z.string().regex(/^[^/]+\/.+$/, { error: 'expected "<provider>/<model>"' })).min(1)
      .max(8),
  ).optional().describe(
    "Models that answer when a model is rate limited, overloaded or down before its first " +
      'token, e.g. {"anthropic/claude-sonnet-4-6": ["openai/gpt-4.1", "ollama/llama3.2"]}.',
  ),
  redis: z.string().regex(/^rediss?:\/\//, { error: "expected a redis:// or rediss:// URL" })
    .optional().describe(
      "Redis shared by several Rune instances: cache, rate limits and tasks (--redis wins).",
    ),
  cache: z.object({
    store: z.enum(["memory", "off"]).optional().describe(
      '"memory" (default; shared through redis when set) or "off" (--cache wins).',
    ),
    max_bytes: z.number().int().min(1).optional().describe(
      "Largest size of the in-memory cache in bytes (default 64 MiB; --cache-max-bytes wins).",
    ),
    ttl_seconds: z.number().int().min(1).optional().describe(
      "How long an entry is kept in Redis (default 86400).",
    ),
  }).strict().optional(),
  rate_limit: z.string().regex(RATE_PATTERN, { error: 'expected "N/s", "N/m" or "N/h"' })
    .optional().describe("Requests per client (token, or session): --rate-limit wins."),
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
