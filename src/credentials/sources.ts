/**
 * Credential sources backed by the store, for providers (the registry's
 * `storedCredential` hook): a stored API key, or OAuth tokens refreshed
 * unattended.
 *
 * - Every request reads the store (a small file), so a `rune auth login`,
 *   `set-key` or `logout` in another terminal takes effect at the next call.
 * - An access token is refreshed before it expires (a margin of
 *   {@linkcode DEFAULT_REFRESH_MARGIN_MS}, at most half its lifetime), so no
 *   request carries an expired token, and once more after a 401.
 * - Concurrent callers share one refresh. Across processes the refresh runs
 *   under the store's lock and first re-reads the store: when another
 *   process already refreshed, its token is used and the (possibly rotated,
 *   single-use) refresh token is not sent twice. The new tokens, including a
 *   rotated refresh token, are written before the lock is released.
 * - A provider with nothing stored, or whose refresh is refused, fails with
 *   a {@linkcode SignInRequiredError} that says which command to run.
 *
 * @module
 */

import type { Config } from "../config/schema.ts";
import type { CredentialSource } from "../providers/credential.ts";
import { SignInRequiredError } from "./errors.ts";
import { type HttpOptions, refreshTokens } from "./oauth.ts";
import {
  type CredentialStore,
  openStore,
  runeHome,
  type StoredCredential,
  type StoreOptions,
} from "./store.ts";

/** Refresh an access token this long before it expires (at most half its lifetime). */
export const DEFAULT_REFRESH_MARGIN_MS = 60_000;

/** Options of {@linkcode storedCredentialSource}. */
export interface SourceOptions extends Pick<HttpOptions, "fetch" | "requestTimeoutMs"> {
  /** Refresh this long before expiry, in ms. @default 60000 */
  refreshMarginMs?: number;
  /** The clock (ms since the epoch). @default Date.now */
  now?: () => number;
  /**
   * Which command the "nothing stored" error names: `login` for providers
   * with an `auth` block, `set-key` otherwise. @default "set-key"
   */
  signIn?: "login" | "set-key";
}

/** A credential source reading provider `id`'s entry of `store`. */
export function storedCredentialSource(
  id: string,
  store: CredentialStore,
  options: SourceOptions = {},
): CredentialSource {
  const now = options.now ?? Date.now;
  const margin = options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
  // The secret handed out last: after a 401 this is the one the provider refused.
  let served: string | undefined;
  let refreshing: Promise<string> | undefined;

  const missing = () =>
    new SignInRequiredError(
      id,
      options.signIn === "login"
        ? `Provider "${id}" is not signed in: run "rune auth login ${id}".`
        : `Provider "${id}" has no stored key: run "rune auth set-key ${id}" (or set its key ` +
          `variable).`,
    );

  function fresh(credential: StoredCredential): boolean {
    if (credential.kind !== "oauth" || credential.expires_at === undefined) return true;
    const lifetime = credential.expires_at - Date.parse(credential.saved_at);
    const early = Number.isFinite(lifetime) ? Math.min(margin, lifetime / 2) : margin;
    return now() < credential.expires_at - early;
  }

  async function current(signal?: AbortSignal): Promise<StoredCredential> {
    const credential = await store.read(id, signal);
    if (!credential) throw missing();
    return credential;
  }

  /** One refresh for every caller; `stale` is the access token to replace. */
  function shared(stale: string, signal?: AbortSignal): Promise<string> {
    refreshing ??= store.update(id, async (stored) => {
      if (!stored) throw missing();
      if (stored.kind !== "oauth") return { next: "keep", result: stored.key };
      // Someone (another process, an earlier refresh) already replaced the stale token.
      if (stored.access_token !== stale && fresh(stored)) {
        return { next: "keep", result: stored.access_token };
      }
      const next = await refreshTokens(id, stored, {
        ...(options.fetch && { fetch: options.fetch }),
        ...(options.requestTimeoutMs && { requestTimeoutMs: options.requestTimeoutMs }),
        now,
      });
      return { next, result: next.access_token };
    }).finally(() => refreshing = undefined);
    // A caller that gives up does not cancel the refresh the others wait for.
    return abortable(refreshing, signal);
  }

  return {
    describe: `the credential store ("${id}")`,
    async get(signal) {
      const credential = await current(signal);
      if (credential.kind === "api-key") return served = credential.key;
      if (fresh(credential)) return served = credential.access_token;
      return served = await shared(credential.access_token, signal);
    },
    async refresh(signal) {
      const credential = await current(signal);
      if (credential.kind === "api-key") {
        // A key changed since (rune auth set-key in another terminal) is worth one more try.
        return credential.key !== served ? served = credential.key : undefined;
      }
      return served = await shared(served ?? credential.access_token, signal);
    },
  };
}

/** Inputs of {@linkcode storedCredentials}. */
export interface HookOptions {
  /** The configuration (providers with an `auth` block always get a source). */
  config: Config;
  /** Reads an environment variable (`RUNE_HOME`, `HOME`, `RUNE_PASSPHRASE`). */
  env: (name: string) => string | undefined;
  /** Options of every source. */
  source?: Omit<SourceOptions, "signIn">;
  /** Store options beyond the directory and `env` (key and lock options; tests). */
  store?: Omit<StoreOptions, "home" | "env">;
}

/**
 * The registry's `storedCredential` hook: a source for each provider that
 * has an entry in the store now, or an `auth` block in the configuration
 * (so signing in later needs no restart). Reads only the store's plain-text
 * index, synchronously; nothing is decrypted until a request needs it.
 */
export function storedCredentials(
  options: HookOptions,
): (id: string) => CredentialSource | undefined {
  let store: CredentialStore;
  let stored: Set<string>;
  let problem: Error | undefined;
  try {
    store = openStore({ ...options.store, home: runeHome(options.env), env: options.env });
    stored = new Set(store.index().entries.map((entry) => entry.id));
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    problem = error as Error;
    stored = new Set();
  }
  return (id) => {
    const signsIn = options.config.providers?.some((entry) => entry.id === id && entry.auth);
    if (problem) {
      // A damaged store must not stop providers that never use it; those that do say why.
      return signsIn ? failing(id, problem) : undefined;
    }
    if (!stored.has(id) && !signsIn) return undefined;
    return storedCredentialSource(id, store, {
      ...options.source,
      signIn: signsIn ? "login" : "set-key",
    });
  };
}

function failing(id: string, problem: Error): CredentialSource {
  return {
    describe: `the credential store ("${id}")`,
    get: () => Promise.reject(problem),
  };
}

function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const aborted = () => reject(signal.reason);
    signal.addEventListener("abort", aborted, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", aborted));
  });
}
