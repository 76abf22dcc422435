/**
 * How a request reaches an OpenAI-compatible server: the key read from its
 * credential source for every request (never cached here), sent as
 * `Authorization: Bearer` (or Azure's `api-key` header), a single retry with
 * a refreshed key after a 401, and retries with backoff for what a retry
 * cures (429 unless the quota is gone, 408, 5xx, a reset connection),
 * honouring the server's requested wait. Only the part before the first
 * token goes through here, so nothing the client has seen is repeated.
 *
 * @module
 */

import type { CredentialSource } from "../credential.ts";
import { AuthenticationError, ProviderUnreachableError, UpstreamError } from "../errors.ts";
import { type RetryJudge, type RetryOptions, withRetries } from "../retry.ts";

/** How requests authenticate. */
export interface Access {
  /** Where the key comes from; absent for a keyless server (no auth header is sent). */
  credential?: CredentialSource;
  /** Which header carries the key: `authorization` (Bearer) or Azure's `api-key`. */
  authHeader: "authorization" | "api-key";
  /** The retry policy. */
  retry: RetryOptions;
  /** Called before each retry's wait (metrics), besides the call's own hook. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** One attempt: the auth headers to send, and the secret in them (for redaction). */
export type Attempt<T> = (
  headers: Record<string, string>,
  secret: string | undefined,
) => Promise<T>;

/** Options of {@linkcode send}. */
export interface SendOptions {
  /** Ends waits and attempts. */
  signal?: AbortSignal;
  /** Called before each wait between attempts (the stream re-arms its deadline). */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** Decides which failures a retry may cure, and how long the server asked to wait. */
export const RETRY_JUDGE: RetryJudge = {
  retryable(error) {
    if (error instanceof AuthenticationError) return false;
    if (error instanceof UpstreamError) {
      return error.retryable ??
        (error.status === 429 || error.status === 408 || error.status >= 500);
    }
    return error instanceof ProviderUnreachableError && error.reason === "reset";
  },
  retryAfterMs(error) {
    return error instanceof UpstreamError ? error.retryAfterMs : undefined;
  },
};

function authHeaders(access: Access, secret: string | undefined): Record<string, string> {
  if (secret === undefined) return {};
  return access.authHeader === "api-key"
    ? { "api-key": secret }
    : { authorization: `Bearer ${secret}` };
}

/**
 * Runs `attempt` with the credential's headers, under the retry policy;
 * after a 401 the credential is refreshed once and, if that gives a new
 * key, the attempt runs again with it. Errors never carry the key.
 */
export function send<T>(
  access: Access,
  attempt: Attempt<T>,
  options: SendOptions = {},
): Promise<T> {
  const { signal } = options;
  return withRetries(
    async () => {
      const secret = await access.credential?.get(signal);
      try {
        return await attempt(authHeaders(access, secret), secret);
      } catch (error) {
        redact(error, secret);
        if (
          !(error instanceof AuthenticationError) || error.status !== 401 || secret === undefined ||
          !access.credential?.refresh
        ) throw error;
        const fresh = await access.credential.refresh(signal);
        if (fresh === undefined || fresh === secret) throw error;
        try {
          return await attempt(authHeaders(access, fresh), fresh);
        } catch (again) {
          throw redact(redact(again, fresh), secret);
        }
      }
    },
    {
      ...RETRY_JUDGE,
      onRetry: (error, attempt, delayMs) => {
        access.onRetry?.(error, attempt, delayMs);
        options.onRetry?.(error, attempt, delayMs);
      },
    },
    { ...access.retry, signal },
  );
}

/** Removes `secret` from the messages of `error` and its causes; returns `error`. */
export function redact(error: unknown, secret: string | undefined): unknown {
  if (secret === undefined || secret.length < 4) return error;
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 8; depth++) {
    if (current.message.includes(secret)) {
      current.message = current.message.replaceAll(secret, "[redacted]");
    }
    current = current.cause;
  }
  return error;
}
