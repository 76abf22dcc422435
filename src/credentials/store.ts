/**
 * The encrypted credential store: one JSON file, `$RUNE_HOME/credentials.json`
 * (default `~/.config/rune/`), holding API keys and OAuth tokens per provider
 * id.
 *
 * Each entry is encrypted on its own with AES-256-GCM (WebCrypto), with a
 * fresh 96-bit nonce at every write and the provider id and kind bound as
 * additional data, so an entry moved to another id fails to decrypt. Only
 * ids, kinds and the key's source are in plain text. A `key_check` entry
 * tells a wrong key (wrong passphrase, another keyring item) from a
 * tampered entry.
 *
 * The directory is 0700 and the files 0600. Every update runs under the
 * lock of `lock.ts`, re-reads the file, verifies all of it, and writes a
 * temporary file that is fsynced and renamed over the old one (then the
 * directory is fsynced), so a crash leaves the old or the new file, never
 * half of one. A corrupted, tampered or wrongly keyed file is never
 * overwritten: every operation fails with a message that says how to
 * recover.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { z } from "zod";
import { CredentialError, StoreUnreadableError } from "./errors.ts";
import {
  type KeyHeader,
  type KeyOptions,
  type KeySource,
  resolveKey,
  type StoreKey,
} from "./keys.ts";
import { writeAll } from "../bytes.ts";
import { type LockOptions, withLock } from "./lock.ts";

/** The store's file name in `$RUNE_HOME`. */
export const STORE_FILE = "credentials.json";
/** The key file's name (used only when the key comes from a file). */
export const KEY_FILE = "credentials.key";
/** The lock file's name. */
export const LOCK_FILE = "credentials.lock";
/** The format tag and version written in the file. */
export const STORE_FORMAT = "rune-credentials";
/** Largest store file read, in bytes. */
export const MAX_STORE_BYTES = 1024 * 1024;
/** Most entries (providers) in one store. */
export const MAX_ENTRIES = 256;
/** Largest secret payload of one entry, in bytes (a JWT access token is a few KiB). */
export const MAX_ENTRY_BYTES = 64 * 1024;

/** An API key: set with `rune auth set-key`, or handed back by OpenRouter's sign-in. */
export interface ApiKeyCredential {
  /** Kind tag. */
  kind: "api-key";
  /** The key. */
  key: string;
  /** How it was obtained. */
  via: "set-key" | "openrouter-pkce";
  /** When it was stored (ISO 8601). */
  saved_at: string;
}

/** OAuth tokens and what is needed to refresh and revoke them. */
export interface OAuthCredential {
  /** Kind tag. */
  kind: "oauth";
  /** The access token sent to the provider. */
  access_token: string;
  /** The refresh token, when the server issued one. */
  refresh_token?: string;
  /** When the access token expires (ms since the epoch), when the server said. */
  expires_at?: number;
  /** Granted scopes. */
  scopes?: string[];
  /** The server's issuer identifier. */
  issuer: string;
  /** Where tokens are refreshed. */
  token_endpoint: string;
  /** Where tokens are revoked, when the server has one. */
  revocation_endpoint?: string;
  /** The client id used at sign-in. */
  client_id: string;
  /** RFC 8707 resource indicator sent at sign-in, repeated on refresh. */
  resource?: string;
  /** `audience` parameter sent at sign-in, repeated on refresh. */
  audience?: string;
  /** When it was stored (ISO 8601). */
  saved_at: string;
}

/** A stored credential. */
export type StoredCredential = ApiKeyCredential | OAuthCredential;

/** A credential's kind. */
export type CredentialKind = StoredCredential["kind"];

const b64 = z.string().max(MAX_ENTRY_BYTES * 2).regex(/^[A-Za-z0-9+/]*={0,2}$/);
const sealedSchema = z.object({ nonce: b64, ciphertext: b64 }).strict();
const fileSchema = z.object({
  format: z.literal(STORE_FORMAT),
  version: z.literal(1),
  key_source: z.enum(["keyring", "passphrase", "key-file"]),
  kdf: z.object({
    name: z.literal("PBKDF2-SHA256"),
    iterations: z.number().int().positive(),
    salt: b64,
  }).strict().optional(),
  key_check: sealedSchema,
  entries: z.record(
    z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/),
    sealedSchema.extend({ kind: z.enum(["api-key", "oauth"]) }).strict(),
  ),
}).strict();

type StoreFile = z.infer<typeof fileSchema>;

const apiKeySchema = z.object({
  kind: z.literal("api-key"),
  key: z.string().min(1),
  via: z.enum(["set-key", "openrouter-pkce"]),
  saved_at: z.string(),
}).strict();
const oauthSchema = z.object({
  kind: z.literal("oauth"),
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  expires_at: z.number().optional(),
  scopes: z.array(z.string()).optional(),
  issuer: z.string(),
  token_endpoint: z.string(),
  revocation_endpoint: z.string().optional(),
  client_id: z.string(),
  resource: z.string().optional(),
  audience: z.string().optional(),
  saved_at: z.string(),
}).strict();
const credentialSchema = z.discriminatedUnion("kind", [apiKeySchema, oauthSchema]);

/** The plain-text part of the store: readable without the key. */
export interface StoreIndex {
  /** Whether the file exists. */
  exists: boolean;
  /** The key's source, when the file exists. */
  keySource?: KeySource;
  /** Stored ids and kinds. */
  entries: { id: string; kind: CredentialKind }[];
}

/** Options of {@linkcode openStore}. */
export interface StoreOptions {
  /** The directory (`$RUNE_HOME`). */
  home: string;
  /** Reads an environment variable (`RUNE_PASSPHRASE`). */
  env: (name: string) => string | undefined;
  /** Key options beyond `env` (the OS, the keyring tool's timeout). */
  keys?: Omit<KeyOptions, "env" | "signal">;
  /** Lock options (wait and staleness bounds). */
  lock?: Omit<LockOptions, "signal">;
}

/** The store. */
export interface CredentialStore {
  /** The directory. */
  readonly home: string;
  /** The store file's path. */
  readonly path: string;
  /** The plain-text index, synchronously (ids and kinds; no key needed). */
  index(): StoreIndex;
  /** One provider's credential, decrypted; undefined when none is stored. */
  read(id: string, signal?: AbortSignal): Promise<StoredCredential | undefined>;
  /** Every credential, decrypted. */
  readAll(signal?: AbortSignal): Promise<Map<string, StoredCredential>>;
  /**
   * Replaces one provider's credential under the lock: `change` gets the
   * current one and returns the new one (`undefined` deletes it) and a
   * result. The whole file is verified before anything is written.
   */
  update<T>(
    id: string,
    change: (current: StoredCredential | undefined) => Promise<Change<T>>,
    signal?: AbortSignal,
  ): Promise<T>;
}

/** What an update's `change` returns. */
export interface Change<T> {
  /** The new credential; `undefined` removes it; `"keep"` writes nothing. */
  next: StoredCredential | undefined | "keep";
  /** What `update` resolves to. */
  result: T;
}

/**
 * `$RUNE_HOME`, else `~/.config/rune`. Throws when neither `RUNE_HOME` nor
 * `HOME` is set.
 */
export function runeHome(env: (name: string) => string | undefined): string {
  const home = env("RUNE_HOME") || (env("HOME") ? `${env("HOME")}/.config/rune` : undefined);
  if (!home) {
    throw new CredentialError(
      "Cannot find the credential store: set RUNE_HOME (or HOME) to the directory that holds it.",
    );
  }
  return home.replace(/\/+$/, "") || "/";
}

const AAD_PREFIX = `${STORE_FORMAT}/1`;
const KEY_CHECK_PLAINTEXT = "rune credential store key check";

/** Opens the store in `options.home` (nothing is read until asked). */
export function openStore(options: StoreOptions): CredentialStore {
  const home = options.home;
  const path = `${home}/${STORE_FILE}`;
  const keyFile = `${home}/${KEY_FILE}`;
  const lockPath = `${home}/${LOCK_FILE}`;
  // The derived key, reused while the file's key header stays the same (PBKDF2 is slow on purpose).
  let cached: { header: string; key: StoreKey } | undefined;

  async function keyFor(file: StoreFile | undefined, signal?: AbortSignal): Promise<StoreKey> {
    const header: KeyHeader | undefined = file &&
      { key_source: file.key_source, ...(file.kdf && { kdf: file.kdf }) };
    const tag = JSON.stringify(header ?? null);
    if (header && cached?.header === tag) return cached.key;
    const key = await resolveKey(header, { storePath: path, keyFile }, {
      ...options.keys,
      env: options.env,
      ...(signal && { signal }),
    });
    if (header) cached = { header: tag, key };
    return key;
  }

  /** Reads and verifies the file: its shape and its key. Undefined when there is none. */
  async function load(
    signal?: AbortSignal,
  ): Promise<{ file: StoreFile; key: StoreKey } | undefined> {
    const file = parseFile(await readBounded(path));
    if (!file) return undefined;
    let key = await keyFor(file, signal);
    if (!(await checkKey(file, key.key))) {
      // The key was cached for an older file with the same header: resolve it once more.
      cached = undefined;
      key = await keyFor(file, signal);
      if (!(await checkKey(file, key.key))) throw wrongKey(path, key.source);
    }
    return { file, key };
  }

  async function decryptEntry(
    file: StoreFile,
    id: string,
    key: CryptoKey,
  ): Promise<StoredCredential> {
    const entry = file.entries[id];
    let plaintext: Uint8Array;
    try {
      plaintext = await open(entry, key, entryAad(id, entry.kind));
    } catch (cause) {
      throw new StoreUnreadableError(
        "tampered",
        `The credential store ${path} has an entry for "${id}" that fails its integrity check: ` +
          `it was altered or damaged. Rune leaves the file untouched. Move it aside (mv ${path} ` +
          `${path}.damaged) and sign in again with "rune auth login ${id}" or "rune auth ` +
          `set-key ${id}".`,
        { cause },
      );
    }
    const parsed = credentialSchema.safeParse(JSON.parse(new TextDecoder().decode(plaintext)));
    if (!parsed.success || parsed.data.kind !== entry.kind) {
      throw new StoreUnreadableError(
        "unsupported",
        `The credential store ${path} has an entry for "${id}" this version of Rune cannot ` +
          `read. Update Rune, or sign in again with "rune auth login ${id}".`,
      );
    }
    return parsed.data as StoredCredential;
  }

  return {
    home,
    path,
    index() {
      const file = parseFile(readBoundedSync(path));
      if (!file) return { exists: false, entries: [] };
      return {
        exists: true,
        keySource: file.key_source,
        entries: Object.entries(file.entries).map(([id, entry]) => ({ id, kind: entry.kind })),
      };
    },
    async read(id, signal) {
      const loaded = await load(signal);
      if (!loaded || !Object.hasOwn(loaded.file.entries, id)) return undefined;
      return await decryptEntry(loaded.file, id, loaded.key.key);
    },
    async readAll(signal) {
      const loaded = await load(signal);
      const all = new Map<string, StoredCredential>();
      if (!loaded) return all;
      for (const id of Object.keys(loaded.file.entries)) {
        all.set(id, await decryptEntry(loaded.file, id, loaded.key.key));
      }
      return all;
    },
    async update(id, change, signal) {
      await ensureDirectory(home);
      return await withLock(lockPath, async () => {
        const loaded = await load(signal);
        // Verify every entry: a store with one damaged entry is never rewritten.
        let current: StoredCredential | undefined;
        for (const other of Object.keys(loaded?.file.entries ?? {})) {
          const value = await decryptEntry(loaded!.file, other, loaded!.key.key);
          if (other === id) current = value;
        }
        const { next, result } = await change(current);
        if (next === "keep") return result;
        if (next === undefined && !current) return result;
        const key = loaded?.key ?? await keyFor(undefined, signal);
        const file: StoreFile = loaded?.file ?? {
          format: STORE_FORMAT,
          version: 1,
          key_source: key.source,
          ...(key.kdf && { kdf: key.kdf }),
          key_check: await seal(
            new TextEncoder().encode(KEY_CHECK_PLAINTEXT),
            key.key,
            keyCheckAad(),
          ),
          entries: {},
        };
        const entries = { ...file.entries };
        if (next === undefined) {
          delete entries[id];
        } else {
          if (!entries[id] && Object.keys(entries).length >= MAX_ENTRIES) {
            throw new CredentialError(
              `The credential store holds ${MAX_ENTRIES} providers, the most it keeps: remove ` +
                `some with "rune auth logout ID".`,
            );
          }
          const plaintext = new TextEncoder().encode(JSON.stringify(next));
          if (plaintext.length > MAX_ENTRY_BYTES) {
            throw new CredentialError(
              `The credential for "${id}" is ${plaintext.length} bytes; the store keeps at most ` +
                `${MAX_ENTRY_BYTES} per provider.`,
            );
          }
          entries[id] = {
            kind: next.kind,
            ...await seal(plaintext, key.key, entryAad(id, next.kind)),
          };
        }
        await writeAtomically(path, JSON.stringify({ ...file, entries }, null, 2) + "\n");
        return result;
      }, { ...options.lock, ...(signal && { signal }) });
    },
  };

  function parseFile(text: string | undefined): StoreFile | undefined {
    if (text === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new StoreUnreadableError(
        "corrupt",
        `The credential store ${path} is not valid JSON (truncated or damaged). Rune leaves it ` +
          `untouched. Restore it from a backup, or move it aside (mv ${path} ${path}.damaged) ` +
          `and sign in again.`,
        { cause },
      );
    }
    const parsed = fileSchema.safeParse(json);
    if (!parsed.success) {
      const format = json as { format?: unknown; version?: unknown } | null;
      const newer = format?.format === STORE_FORMAT && format.version !== 1;
      throw new StoreUnreadableError(
        newer ? "unsupported" : "corrupt",
        newer
          ? `The credential store ${path} was written by a newer Rune (format version ` +
            `${JSON.stringify(format.version)}): update Rune.`
          : `The credential store ${path} is damaged (${
            parsed.error.issues[0]?.path.join(".") || "its structure"
          } is not as expected). Rune leaves it untouched. Move it aside (mv ${path} ` +
            `${path}.damaged) and sign in again.`,
      );
    }
    return parsed.data;
  }
}

function wrongKey(path: string, source: KeySource): StoreUnreadableError {
  const how = source === "passphrase"
    ? "RUNE_PASSPHRASE is not the passphrase it was created with: set the right one"
    : source === "keyring"
    ? "the keyring's key is not the one it was created with"
    : "the key file beside it is not the one it was created with: restore that file";
  return new StoreUnreadableError(
    "wrong-key",
    `The credential store ${path} cannot be decrypted: ${how}. Rune leaves it untouched. If the ` +
      `key is lost, move the store aside (mv ${path} ${path}.old) and sign in again.`,
  );
}

function entryAad(id: string, kind: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${AAD_PREFIX}\nentry\n${id}\n${kind}`);
}

function keyCheckAad(): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${AAD_PREFIX}\nkey-check`);
}

async function checkKey(file: StoreFile, key: CryptoKey): Promise<boolean> {
  try {
    const plaintext = await open(file.key_check, key, keyCheckAad());
    return new TextDecoder().decode(plaintext) === KEY_CHECK_PLAINTEXT;
  } catch {
    return false;
  }
}

async function seal(
  plaintext: Uint8Array<ArrayBuffer>,
  key: CryptoKey,
  additionalData: Uint8Array<ArrayBuffer>,
): Promise<{ nonce: string; ciphertext: string }> {
  // A fresh random 96-bit nonce per encryption (NIST SP 800-38D, section 8.2.2).
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce, additionalData },
    key,
    plaintext,
  );
  return {
    nonce: Buffer.from(nonce).toString("base64"),
    ciphertext: Buffer.from(ciphertext).toString("base64"),
  };
}

async function open(
  sealed: { nonce: string; ciphertext: string },
  key: CryptoKey,
  additionalData: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const nonce = new Uint8Array(Buffer.from(sealed.nonce, "base64"));
  if (nonce.length !== 12) throw new Error("bad nonce length");
  return new Uint8Array(
    await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: nonce, additionalData },
      key,
      new Uint8Array(Buffer.from(sealed.ciphertext, "base64")),
    ),
  );
}

function tooLarge(path: string, size: number): StoreUnreadableError {
  return new StoreUnreadableError(
    "too-large",
    `The credential store ${path} is ${size} bytes; at most ${MAX_STORE_BYTES} are read. It is ` +
      `not a file Rune wrote: move it aside and sign in again.`,
  );
}

async function readBounded(path: string): Promise<string | undefined> {
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_STORE_BYTES) throw tooLarge(path, info.size);
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function readBoundedSync(path: string): string | undefined {
  try {
    const info = Deno.statSync(path);
    if (info.size > MAX_STORE_BYTES) throw tooLarge(path, info.size);
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Creates `home` with mode 0700, or narrows an existing one to 0700. */
async function ensureDirectory(home: string): Promise<void> {
  await Deno.mkdir(home, { recursive: true, mode: 0o700 });
  if (Deno.build.os === "windows") return;
  const info = await Deno.stat(home);
  if (info.mode !== null && (info.mode & 0o077) !== 0) await Deno.chmod(home, 0o700);
}

/** Writes `text` to `path` through a 0600 temporary file, fsync and rename. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${crypto.randomUUID()}.tmp`;
  const file = await Deno.open(temporary, { createNew: true, write: true, mode: 0o600 });
  try {
    try {
      await writeAll(file, new TextEncoder().encode(text));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temporary, path);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  // The rename itself is durable once the directory is synced (not possible everywhere).
  try {
    const directory = await Deno.open(path.slice(0, path.lastIndexOf("/")) || "/", { read: true });
    try {
      await directory.sync();
    } finally {
      directory.close();
    }
  } catch {
    // Windows cannot open directories; the rename is still atomic.
  }
}
