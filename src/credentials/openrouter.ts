/**
 * OpenRouter's sign-in (`"type": "openrouter-pkce"`): a PKCE flow that hands
 * back a long-lived, user-controlled API key instead of OAuth tokens
 * (https://openrouter.ai/docs/guides/overview/auth/oauth).
 *
 * 1. The browser goes to `https://openrouter.ai/auth?callback_url=...&
 *    code_challenge=...&code_challenge_method=S256`.
 * 2. OpenRouter redirects to the callback with `?code=...`. Localhost
 *    callbacks are accepted on any port, so the loopback receiver listens
 *    on a free one and names itself `localhost` as the documentation shows.
 * 3. `POST https://openrouter.ai/api/v1/auth/keys` with `{ code,
 *    code_verifier, code_challenge_method }` answers `{ key, user_id }`.
 *
 * The exchange is a JSON request rather than an OAuth token request, so it
 * cannot go through `oauth4webapi`'s grant functions; the PKCE values come
 * from `oauth4webapi`. OpenRouter has no `state` parameter; PKCE binds the
 * code to this sign-in. There is no revocation endpoint: the key is
 * deleted on OpenRouter's keys page.
 *
 * @module
 */

import * as oauth from "oauth4webapi";
import { z } from "zod";
import type { AuthConfig } from "../config/schema.ts";
import { CredentialError, SignInError } from "./errors.ts";
import { startLoopback, waitFor } from "./loopback.ts";
import {
  DEFAULT_LOGIN_TIMEOUT_MS,
  MAX_REPLY_BYTES,
  REQUEST_TIMEOUT_MS,
  secureUrl,
} from "./oauth.ts";
import type { ApiKeyCredential } from "./store.ts";

/** OpenRouter's authorization page. */
export const OPENROUTER_AUTH_URL = "https://openrouter.ai/auth";
/** OpenRouter's code-for-key exchange. */
export const OPENROUTER_KEYS_URL = "https://openrouter.ai/api/v1/auth/keys";
/** Where an OpenRouter key is deleted (there is no revocation API for it). */
export const OPENROUTER_KEYS_PAGE = "https://openrouter.ai/settings/keys";

const keyReply = z.object({ key: z.string().min(1).max(4096) });

/** Options of {@linkcode signInOpenRouter}. */
export interface OpenRouterOptions {
  /** Shows the authorization URL to the user (stderr). */
  show(url: string): void;
  /** Opens the URL in a browser; absent with `--no-browser`. */
  openBrowser?: (url: string) => Promise<void>;
  /** How long to wait for the user, in ms. @default 300000 */
  timeoutMs?: number;
  /** Longest wait for the exchange, in ms. @default 30000 */
  requestTimeoutMs?: number;
  /** Aborts the sign-in. */
  signal?: AbortSignal;
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * Signs in to OpenRouter; resolves to the key to store. The `auth` block's
 * `authorization_endpoint` and `token_endpoint` override OpenRouter's URLs.
 */
export async function signInOpenRouter(
  id: string,
  auth: AuthConfig,
  options: OpenRouterOptions,
): Promise<ApiKeyCredential> {
  const authUrl = auth.authorization_endpoint ?? OPENROUTER_AUTH_URL;
  const keysUrl = auth.token_endpoint ?? OPENROUTER_KEYS_URL;
  for (const value of [authUrl, keysUrl]) {
    if (!secureUrl(value)) {
      throw new CredentialError(
        `Provider "${id}": ${value} is not https:// (plain http:// only on loopback addresses).`,
      );
    }
  }
  const verifier = oauth.generateRandomCodeVerifier();
  const loopback = startLoopback<string>({
    redirectHost: "localhost",
    check(url) {
      const code = url.searchParams.get("code");
      if (!code) {
        return {
          error: new SignInError(
            `OpenRouter redirected back without a code${
              url.searchParams.get("error") ? ` (${url.searchParams.get("error")})` : ""
            }: the sign-in was cancelled or refused. Run "rune auth login ${id}" again.`,
          ),
        };
      }
      return { value: code };
    },
  });
  try {
    const url = new URL(authUrl);
    url.searchParams.set("callback_url", loopback.redirectUri);
    url.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set("code_challenge_method", "S256");
    options.show(url.href);
    await options.openBrowser?.(url.href).catch(() => {});
    const timeoutMs = options.timeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS;
    const code = await waitFor(
      loopback.result,
      timeoutMs,
      options.signal,
      () =>
        new SignInError(
          `Nobody finished signing in to "${id}" within ${timeoutMs / 1000} s. ` +
            `Run "rune auth login ${id}" again and complete the sign-in in the browser.`,
        ),
    );
    const key = await exchange(id, keysUrl, code, verifier, options);
    return { kind: "api-key", key, via: "openrouter-pkce", saved_at: new Date().toISOString() };
  } finally {
    await loopback.close();
  }
}

async function exchange(
  id: string,
  keysUrl: string,
  code: string,
  verifier: string,
  options: OpenRouterOptions,
): Promise<string> {
  const limit = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(limit);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  let text: string;
  try {
    response = await (options.fetch ?? fetch)(keysUrl, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ code, code_verifier: verifier, code_challenge_method: "S256" }),
      redirect: "error",
      signal,
    });
    text = await readBounded(response);
  } catch (error) {
    options.signal?.throwIfAborted();
    throw new SignInError(
      timeout.aborted
        ? `OpenRouter did not answer the key exchange within ${limit / 1000} s.`
        : `Could not reach OpenRouter for the key exchange: ${(error as Error).message}.`,
      { cause: error },
    );
  }
  if (!response.ok) {
    const advice = response.status === 403
      ? "the code or code verifier was refused (expired, or used already)"
      : response.status === 400
      ? "the request was refused (code_challenge_method mismatch)"
      : `HTTP ${response.status}`;
    throw new SignInError(
      `OpenRouter refused the key exchange for "${id}": ${advice}. Run "rune auth login ${id}" ` +
        `again.`,
    );
  }
  let parsed: z.infer<typeof keyReply>;
  try {
    parsed = keyReply.parse(JSON.parse(text));
  } catch (cause) {
    throw new SignInError(
      `OpenRouter's key exchange reply has no "key": invalid response from OpenRouter.`,
      { cause },
    );
  }
  return parsed.key;
}

async function readBounded(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_REPLY_BYTES) {
      await reader.cancel();
      throw new TypeError(`the reply is larger than ${MAX_REPLY_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}
