/**
 * Where a provider's secret comes from, as a seam: a fixed API key from the
 * environment or config, a key from the encrypted credential store, or an
 * OAuth access token that is refreshed before it expires. Providers ask for
 * the secret on every request (never caching it themselves) and call
 * `refresh` once after a 401.
 *
 * @module
 */

/** A provider's secret and where it comes from. */
export interface CredentialSource {
  /**
   * Where the secret comes from, for messages: `ANTHROPIC_API_KEY`,
   * `config entry "openrouter" (api_key_env OPENROUTER_API_KEY)`, `the
   * credential store`. Never the secret itself.
   */
  readonly describe: string;
  /** The current secret (an API key or an access token). */
  get(signal?: AbortSignal): Promise<string>;
  /**
   * After the provider refused the secret (401): a fresh one, or undefined
   * when there is none to get (a fixed key). Concurrent callers share one
   * refresh.
   */
  refresh?(signal?: AbortSignal): Promise<string | undefined>;
}

/** A fixed secret, e.g. an API key from an environment variable. */
export function fixedCredential(secret: string, describe: string): CredentialSource {
  return { describe, get: () => Promise.resolve(secret) };
}
