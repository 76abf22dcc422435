/**
 * `rune auth`: sign in to providers and keep their secrets in the encrypted
 * credential store.
 *
 * - `login ID [--no-browser] [--timeout SECS]`: OAuth Authorization Code
 *   with PKCE, or OpenRouter's PKCE flow, for a provider with an `auth`
 *   block; the address to open is printed on stderr.
 * - `set-key ID`: an API key from stdin (not echoed on a terminal).
 * - `status [--json]`: how each provider authenticates; never a secret.
 * - `logout ID`: deletes the stored credential and revokes OAuth tokens
 *   where the server has a revocation endpoint.
 *
 * @module
 */

import { loadConfig } from "../config/load.ts";
import { type AuthConfig, type Config, PROVIDER_ID } from "../config/schema.ts";
import { CredentialError } from "../credentials/errors.ts";
import { availableSource, type KeySource } from "../credentials/keys.ts";
import {
  DEFAULT_LOGIN_TIMEOUT_MS,
  oauthSettings,
  revokeTokens,
  signIn,
} from "../credentials/oauth.ts";
import { OPENROUTER_KEYS_PAGE, signInOpenRouter } from "../credentials/openrouter.ts";
import {
  type CredentialStore,
  openStore,
  runeHome,
  type StoredCredential,
} from "../credentials/store.ts";
import { UsageError } from "../errors.ts";
import { concat } from "../bytes.ts";
import { REGISTRY } from "../providers/registry.ts";
import { type Io, style } from "./output.ts";
import { parseFlags, secondsFlag } from "./options.ts";

/** Help of `rune auth`. */
export const AUTH_HELP = `Usage:
  rune auth login ID [--no-browser] [--timeout SECS]
                          sign in to provider ID (its config entry has an "auth" block):
                          the address is printed on stderr and opened in a browser
  rune auth set-key ID    store an API key for provider ID, read from stdin (not echoed)
  rune auth status [--json]
                          how each provider authenticates (never a secret)
  rune auth logout ID     delete the stored credential, revoking OAuth tokens where possible

Options:
  --config FILE           providers and settings (default: $RUNE_CONFIG, else
                          ~/.config/rune/config.json if it exists)
  --no-browser            print the sign-in address only
  --timeout SECS          how long login waits for the browser (default ${
  DEFAULT_LOGIN_TIMEOUT_MS / 1000
})
  --json                  status as JSON

The store is $RUNE_HOME/credentials.json (default ~/.config/rune/), encrypted with a key
from the system keyring, else RUNE_PASSPHRASE, else a key file beside it.`;

/** Largest API key read by `set-key`, in bytes. */
export const MAX_KEY_BYTES = 16 * 1024;

/** One provider in `rune auth status --json`. */
export interface AuthStatus {
  /** Provider id. */
  id: string;
  /** How it authenticates. */
  method: "env" | "stored-key" | "oauth" | "none";
  /** When the OAuth access token expires (ISO 8601), else null. */
  expires_at: string | null;
  /** Granted OAuth scopes, else null. */
  scopes: string[] | null;
  /** The store's key source for stored credentials, else null. */
  store: KeySource | null;
}

/** Test seams of {@linkcode runAuth}. */
export interface AuthOptions {
  /** Reads an environment variable. @default Deno.env.get */
  env?: (name: string) => string | undefined;
  /** Reads the key for `set-key`. @default stdin (raw mode, no echo, on a terminal) */
  readKey?: (io: Io) => Promise<string>;
}

/** Runs `rune auth ARGS`; resolves to the exit code. */
export async function runAuth(args: string[], io: Io, options: AuthOptions = {}): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    config: { type: "string" },
    json: { type: "boolean" },
    "no-browser": { type: "boolean" },
    timeout: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  const [command, id, ...extra] = positionals;
  if (values.help || command === "help") {
    await io.out(AUTH_HELP + "\n");
    return 0;
  }
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const needsId = command === "login" || command === "set-key" || command === "logout";
  if (needsId && !id) throw new UsageError(`"rune auth ${command}" needs a provider id.`);
  if (extra.length || (!needsId && id)) {
    throw new UsageError(`Unexpected argument "${extra[0] ?? id}": see "rune auth --help".`);
  }
  if (id && !PROVIDER_ID.test(id)) {
    throw new UsageError(
      `"${id}" is not a provider id (short, lower-case letters, digits, - and _).`,
    );
  }
  const timeoutMs = secondsFlag(values.timeout, "timeout");
  const loaded = () => loadConfig({ file: values.config as string | undefined, env });
  const store = () => openStore({ home: runeHome(env), env });
  switch (command) {
    case "login":
      return await login(id, {
        io,
        store: store(),
        ...loaded(),
        browser: !values["no-browser"],
        ...(timeoutMs !== undefined && { timeoutMs }),
      });
    case "set-key":
      return await setKey(id, { io, store: store(), env, ...loaded(), readKey: options.readKey });
    case "status":
      return await status({ io, store: store(), env, ...loaded(), json: values.json === true });
    case "logout":
      return await logout(id, { io, store: store() });
    case undefined:
      io.err(AUTH_HELP + "\n");
      return 2;
    default:
      throw new UsageError(`Unknown command "auth ${command}": see "rune auth --help".`);
  }
}

async function login(
  id: string,
  context: {
    io: Io;
    store: CredentialStore;
    config: Config;
    path?: string;
    browser: boolean;
    timeoutMs?: number;
  },
): Promise<number> {
  const { io, store } = context;
  const where = context.path ?? "the configuration file";
  const entry = context.config.providers?.find((provider) => provider.id === id);
  if (!entry) {
    throw new UsageError(
      `No provider "${id}" in ${where}: declare it with an "auth" block to sign in (see ` +
        `"Credentials" in README.md), or store an API key with "rune auth set-key ${id}".`,
    );
  }
  if (!entry.auth) {
    throw new UsageError(
      `Provider "${id}" in ${where} has no "auth" block, so there is nothing to sign in to: ` +
        `store an API key with "rune auth set-key ${id}".`,
    );
  }
  const auth: AuthConfig = entry.auth;
  const show = (url: string) =>
    io.err(
      `To sign in to "${id}", open this address in a browser${
        context.browser ? " (opening it now)" : ""
      }:\n\n  ${url}\n\nWaiting for the sign-in to finish...\n`,
    );
  const common = {
    show,
    ...(context.browser && { openBrowser }),
    ...(context.timeoutMs !== undefined && { timeoutMs: context.timeoutMs }),
  };
  const credential: StoredCredential = auth.type === "openrouter-pkce"
    ? await signInOpenRouter(id, auth, common)
    : await signIn(oauthSettings(id, auth, where), common);
  await store.update(id, () => Promise.resolve({ next: credential, result: undefined }));
  const source = store.index().keySource;
  if (credential.kind === "oauth") {
    const expiry = credential.expires_at
      ? `the access token is valid until ${new Date(credential.expires_at).toISOString()}` +
        (credential.refresh_token ? " and is refreshed automatically" : "")
      : "the access token has no announced expiry";
    await io.out(
      `${style(io, "green", "Signed in")} to "${id}": ${expiry}; scopes: ${
        credential.scopes?.join(" ") || "(none announced)"
      }.\nStored encrypted in ${store.path} (key: ${source}).\n`,
    );
  } else {
    await io.out(
      `${style(io, "green", "Signed in")} to "${id}": OpenRouter issued an API key.\n` +
        `Stored encrypted in ${store.path} (key: ${source}).\n`,
    );
  }
  return 0;
}

async function setKey(
  id: string,
  context: {
    io: Io;
    store: CredentialStore;
    env: (name: string) => string | undefined;
    config: Config;
    readKey?: (io: Io) => Promise<string>;
  },
): Promise<number> {
  const { io, store } = context;
  const key = (await (context.readKey ?? readKey)(io)).trim();
  if (!key) throw new UsageError(`No key was given for "${id}": pipe it on stdin or type it.`);
  if (/[\s\0]/.test(key)) {
    throw new UsageError(
      `The key for "${id}" contains spaces or control characters: give the key alone.`,
    );
  }
  await store.update(id, () =>
    Promise.resolve({
      next: { kind: "api-key", key, via: "set-key", saved_at: new Date().toISOString() },
      result: undefined,
    }));
  await io.out(
    `Stored the key for "${id}" encrypted in ${store.path} (key: ${store.index().keySource}).\n`,
  );
  const variable = keyVariable(id, context.config);
  if (variable && safeEnv(context.env, variable)) {
    io.err(`Note: ${variable} is set, and a key in the environment wins over the stored one.\n`);
  }
  return 0;
}

async function status(
  context: {
    io: Io;
    store: CredentialStore;
    env: (name: string) => string | undefined;
    config: Config;
    json: boolean;
  },
): Promise<number> {
  const { io, store, config } = context;
  const index = store.index();
  const ids: string[] = [];
  const add = (id: string) => !ids.includes(id) && ids.push(id);
  const configured = new Set((config.providers ?? []).map((entry) => entry.id));
  if (!configured.has("ollama")) add("ollama");
  for (const entry of Object.values(REGISTRY)) {
    if (!entry?.keyEnv || configured.has(entry.type)) continue;
    if (safeEnv(context.env, entry.keyEnv) || index.entries.some((e) => e.id === entry.type)) {
      add(entry.type);
    }
  }
  for (const entry of config.providers ?? []) add(entry.id);
  for (const entry of index.entries) add(entry.id);
  // Expiry and scopes are inside the encrypted entries: decrypt only when an OAuth entry exists.
  const stored = index.entries.some((entry) => entry.kind === "oauth")
    ? await store.readAll()
    : undefined;
  const rows: AuthStatus[] = ids.map((id) => {
    const variable = keyVariable(id, config);
    const kind = index.entries.find((entry) => entry.id === id)?.kind;
    if (variable && safeEnv(context.env, variable)) {
      return { id, method: "env", expires_at: null, scopes: null, store: null };
    }
    if (!kind) return { id, method: "none", expires_at: null, scopes: null, store: null };
    const credential = stored?.get(id);
    const oauth = credential?.kind === "oauth" ? credential : undefined;
    return {
      id,
      method: kind === "oauth" ? "oauth" : "stored-key",
      expires_at: oauth?.expires_at ? new Date(oauth.expires_at).toISOString() : null,
      scopes: oauth?.scopes ?? null,
      store: index.keySource ?? null,
    };
  });
  if (context.json) {
    await io.out(JSON.stringify({ providers: rows }, null, 2) + "\n");
    return 0;
  }
  const width = Math.max(2, ...rows.map((row) => row.id.length));
  await io.out(`${"ID".padEnd(width)}  ${"METHOD".padEnd(10)}  EXPIRES                   SCOPES\n`);
  for (const row of rows) {
    const how = row.method === "env" ? `env (${keyVariable(row.id, config)})` : row.method;
    await io.out(
      `${row.id.padEnd(width)}  ${how.padEnd(10)}  ${(row.expires_at ?? "-").padEnd(24)}  ${
        row.scopes?.join(" ") ?? "-"
      }\n`,
    );
  }
  const source = index.keySource ?? await availableSource(store.path, { env: context.env });
  await io.out(
    `\nStore: ${store.path}${index.exists ? "" : " (not created yet)"}; key: ${source}${
      index.exists ? "" : " (would be used)"
    }\n`,
  );
  return 0;
}

async function logout(id: string, context: { io: Io; store: CredentialStore }): Promise<number> {
  const { io, store } = context;
  const outcome = await store.update(id, async (current) => {
    if (!current) return { next: "keep", result: "nothing" };
    if (current.kind === "api-key") {
      return { next: undefined, result: current.via === "openrouter-pkce" ? "openrouter" : "key" };
    }
    try {
      const revoked = await revokeTokens(id, current);
      return { next: undefined, result: revoked ? "revoked" : "no-endpoint" };
    } catch (error) {
      // Delete it anyway: the user asked to be signed out here.
      io.err(
        `${style(io, "red", "warning")}: could not revoke the tokens of "${id}": ${
          (error as Error).message
        } They stay valid until they expire.\n`,
      );
      return { next: undefined, result: "revoke-failed" };
    }
  });
  const messages: Record<string, string> = {
    nothing: `Nothing is stored for "${id}".`,
    key: `Deleted the stored key of "${id}".`,
    openrouter: `Deleted the stored OpenRouter key of "${id}". OpenRouter has no revocation ` +
      `API: delete the key itself at ${OPENROUTER_KEYS_PAGE}.`,
    revoked: `Signed out of "${id}": the tokens were revoked and deleted.`,
    "no-endpoint": `Signed out of "${id}": the tokens were deleted; the server has no ` +
      `revocation endpoint, so they stay valid until they expire.`,
    "revoke-failed": `Signed out of "${id}": the tokens were deleted.`,
  };
  await io.out(messages[outcome] + "\n");
  return 0;
}

/** The environment variable that holds provider `id`'s key, if any. */
function keyVariable(id: string, config: Config): string | undefined {
  const entry = config.providers?.find((provider) => provider.id === id);
  if (entry) return entry.api_key_env;
  return Object.values(REGISTRY).find((registry) => registry?.type === id)?.keyEnv;
}

/** A variable's value; one that the permissions do not allow counts as unset here. */
function safeEnv(env: (name: string) => string | undefined, name: string): string | undefined {
  try {
    return env(name) || undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) return undefined;
    throw error;
  }
}

/** Opens `url` in the desktop's browser, when there is one; never waits for it. */
function openBrowser(url: string): Promise<void> {
  const command = Deno.build.os === "darwin" ? "open" : "xdg-open";
  try {
    const child = new Deno.Command(command, {
      args: [url],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.unref();
    child.status.catch(() => {});
  } catch {
    // No browser opener (a server, a container) or not allowed: the printed address is enough.
  }
  return Promise.resolve();
}

/** Reads a key from stdin: hidden typing on a terminal, else the whole input (bounded). */
async function readKey(io: Io): Promise<string> {
  if (!io.isTerminal.stdin) {
    const reader = Deno.stdin.readable.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > MAX_KEY_BYTES) {
          throw new CredentialError(`The key on stdin is longer than ${MAX_KEY_BYTES} bytes.`);
        }
        chunks.push(value);
      }
    } finally {
      reader.releaseLock();
    }
    return new TextDecoder().decode(concat(chunks));
  }
  // Raw mode before the prompt: nothing typed after the prompt can be echoed.
  Deno.stdin.setRaw(true);
  io.err("API key (typing is hidden, Enter to finish): ");
  const typed: number[] = [];
  const buffer = new Uint8Array(256);
  try {
    while (true) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) break;
      for (const byte of buffer.subarray(0, n)) {
        if (byte === 0x0d || byte === 0x0a) return new TextDecoder().decode(new Uint8Array(typed));
        if (byte === 0x03) throw new UsageError("Cancelled: no key was stored.");
        if (byte === 0x7f || byte === 0x08) typed.pop();
        else if (byte >= 0x20) typed.push(byte);
        if (typed.length > MAX_KEY_BYTES) {
          throw new CredentialError(`The key is longer than ${MAX_KEY_BYTES} bytes.`);
        }
      }
    }
    return new TextDecoder().decode(new Uint8Array(typed));
  } finally {
    Deno.stdin.setRaw(false);
    io.err("\n");
    typed.fill(0);
  }
}
