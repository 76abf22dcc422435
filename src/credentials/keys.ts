/**
 * The key that encrypts the credential store, from one of three sources:
 *
 * - `keyring`: a random 256-bit key kept in the operating system's keyring,
 *   the Secret Service through `secret-tool` (Linux desktops) or the login
 *   Keychain through `security` (macOS), when that tool runs and answers;
 * - `passphrase`: derived from `RUNE_PASSPHRASE` with PBKDF2-SHA256
 *   ({@linkcode PBKDF2_ITERATIONS} iterations, OWASP's 2023 figure) and a
 *   random salt stored in the store file;
 * - `key-file`: a random 256-bit key in a 0600 file beside the store.
 *
 * A new store takes the first available in that order; an existing store
 * records its source and always uses it (a store made with the keyring is
 * never silently re-keyed with a file because the keyring is away today).
 *
 * The keyring tools run by name (looked up on `PATH`); Deno's `--allow-run`
 * lists their usual absolute paths, so a tool elsewhere is refused and the
 * keyring counts as unavailable for a new store.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { StoreKeyError } from "./errors.ts";
import { writeAll } from "../bytes.ts";

/** Where the store's key comes from. */
export type KeySource = "keyring" | "passphrase" | "key-file";

/** PBKDF2-SHA256 iterations for `RUNE_PASSPHRASE` (OWASP 2023: at least 600,000). */
export const PBKDF2_ITERATIONS = 600_000;

/** The keyring item's service name (`security -s`) and attribute value (`secret-tool`). */
export const KEYRING_SERVICE = "rune-credential-store";

/** Longest wait for a keyring tool, which may ask the user to unlock the keyring. */
export const DEFAULT_KEYRING_TIMEOUT_MS = 60_000;

/** How a store's key is derived: recorded in the store file for a passphrase. */
export interface KdfParams {
  /** Always `PBKDF2-SHA256`. */
  name: "PBKDF2-SHA256";
  /** Iterations (never fewer than {@linkcode PBKDF2_ITERATIONS}). */
  iterations: number;
  /** Random salt, base64. */
  salt: string;
}

/** A resolved key. */
export interface StoreKey {
  /** Where it came from. */
  source: KeySource;
  /** The AES-256-GCM key (not extractable). */
  key: CryptoKey;
  /** For a passphrase: what to record in the store file. */
  kdf?: KdfParams;
}

/** Options of the key functions. */
export interface KeyOptions {
  /** Reads an environment variable (`RUNE_PASSPHRASE`). */
  env: (name: string) => string | undefined;
  /** The operating system, which chooses the keyring tool. @default Deno.build.os */
  os?: string;
  /** Whether to try the system keyring at all (false in tests). @default true */
  keyring?: boolean;
  /** Longest wait for the keyring tool, in ms. @default 60000 */
  keyringTimeoutMs?: number;
  /** Aborts a keyring tool. */
  signal?: AbortSignal;
}

/** Where the store's key is recorded in its file. */
export interface KeyHeader {
  /** The key's source. */
  key_source: KeySource;
  /** Present for `passphrase`. */
  kdf?: KdfParams;
}

/**
 * The key of an existing store (`header` from its file), or of a new one
 * (`header` undefined: the first available source, which is set up now).
 * `storePath` names the keyring item; `keyFile` is the key file's path.
 */
export async function resolveKey(
  header: KeyHeader | undefined,
  paths: { storePath: string; keyFile: string },
  options: KeyOptions,
): Promise<StoreKey> {
  if (header) return await existingKey(header, paths, options);
  const keyring = await keyringLookup(paths.storePath, options);
  if (keyring.available) {
    const raw = keyring.secret ? decodeRawKey(keyring.secret, "the keyring") : randomKey();
    if (!keyring.secret) {
      await keyringStore(paths.storePath, Buffer.from(raw).toString("base64"), options);
    }
    return { source: "keyring", key: await importKey(raw) };
  }
  const passphrase = options.env("RUNE_PASSPHRASE");
  if (passphrase) {
    const kdf: KdfParams = {
      name: "PBKDF2-SHA256",
      iterations: PBKDF2_ITERATIONS,
      salt: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64"),
    };
    return { source: "passphrase", key: await passphraseKey(passphrase, kdf), kdf };
  }
  return { source: "key-file", key: await importKey(await createKeyFile(paths.keyFile)) };
}

/** Which source a new store would use now (for `rune auth status` before any store exists). */
export async function availableSource(storePath: string, options: KeyOptions): Promise<KeySource> {
  if ((await keyringLookup(storePath, options)).available) return "keyring";
  return options.env("RUNE_PASSPHRASE") ? "passphrase" : "key-file";
}

async function existingKey(
  header: KeyHeader,
  paths: { storePath: string; keyFile: string },
  options: KeyOptions,
): Promise<StoreKey> {
  switch (header.key_source) {
    case "keyring": {
      const found = await keyringLookup(paths.storePath, options);
      if (!found.available) {
        throw new StoreKeyError(
          `The credential store ${paths.storePath} is encrypted with a key in the system keyring, ` +
            `which cannot be reached now (${found.why}). Run rune where the keyring is available ` +
            `(a desktop session), or move the store aside and sign in again.`,
        );
      }
      if (!found.secret) {
        throw new StoreKeyError(
          `The credential store ${paths.storePath} is encrypted with a key in the system keyring, ` +
            `but the keyring has no "${KEYRING_SERVICE}" item for it any more. Move the store ` +
            `aside (mv ${paths.storePath} ${paths.storePath}.old) and sign in again.`,
        );
      }
      return { source: "keyring", key: await importKey(decodeRawKey(found.secret, "the keyring")) };
    }
    case "passphrase": {
      const passphrase = options.env("RUNE_PASSPHRASE");
      if (!passphrase) {
        throw new StoreKeyError(
          `The credential store ${paths.storePath} is encrypted with a passphrase: set ` +
            `RUNE_PASSPHRASE (and allow it with --allow-env=RUNE_PASSPHRASE).`,
        );
      }
      const kdf = header.kdf;
      if (!kdf || kdf.iterations < PBKDF2_ITERATIONS) {
        throw new StoreKeyError(
          `The credential store ${paths.storePath} records no valid key derivation (PBKDF2-SHA256 ` +
            `with at least ${PBKDF2_ITERATIONS} iterations): it was altered. Move it aside and ` +
            `sign in again.`,
        );
      }
      return { source: "passphrase", key: await passphraseKey(passphrase, kdf), kdf };
    }
    case "key-file":
      return { source: "key-file", key: await importKey(await readKeyFile(paths.keyFile)) };
  }
}

/** Derives the AES-256-GCM key from a passphrase. */
export async function passphraseKey(passphrase: string, kdf: KdfParams): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(passphrase),
    "PBKDF2",
    false,
    ["deriveKey"],
  );
  return await crypto.subtle.deriveKey(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: Buffer.from(kdf.salt, "base64"),
      iterations: kdf.iterations,
    },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

function randomKey(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(32));
}

function importKey(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

function decodeRawKey(text: string, where: string): Uint8Array<ArrayBuffer> {
  const raw = new Uint8Array(Buffer.from(text.trim(), "base64"));
  if (raw.length !== 32) {
    throw new StoreKeyError(
      `The credential store's key in ${where} is not a 256-bit key: it was altered. Move the ` +
        `store aside and sign in again.`,
    );
  }
  return raw;
}

async function readKeyFile(path: string): Promise<Uint8Array<ArrayBuffer>> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.size > 1024) throw new StoreKeyError(`The key file ${path} is too large to be a key.`);
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new StoreKeyError(
        `The credential store is encrypted with the key file ${path}, which is missing. Restore ` +
          `it, or move the store aside and sign in again.`,
        { cause: error },
      );
    }
    throw error;
  }
  return decodeRawKey(text, path);
}

async function createKeyFile(path: string): Promise<Uint8Array<ArrayBuffer>> {
  const raw = randomKey();
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { createNew: true, write: true, mode: 0o600 });
  } catch (error) {
    // A key file without a store (the store was moved aside): use it rather than replace it.
    if (error instanceof Deno.errors.AlreadyExists) return await readKeyFile(path);
    throw error;
  }
  try {
    await writeAll(file, new TextEncoder().encode(Buffer.from(raw).toString("base64") + "\n"));
    await file.sync();
  } finally {
    file.close();
  }
  return raw;
}

/** What the keyring said: reachable or not (and why), and the item if there is one. */
interface KeyringAnswer {
  available: boolean;
  secret?: string;
  why?: string;
}

async function keyringLookup(storePath: string, options: KeyOptions): Promise<KeyringAnswer> {
  if (options.keyring === false) return { available: false, why: "the keyring is turned off" };
  const os = options.os ?? Deno.build.os;
  if (os === "darwin") {
    const result = await runTool(
      "security",
      ["find-generic-password", "-s", KEYRING_SERVICE, "-a", storePath, "-w"],
      undefined,
      options,
    );
    if ("why" in result) return { available: false, why: result.why };
    if (result.code === 0) return { available: true, secret: result.stdout.trim() };
    // 44: errSecItemNotFound.
    if (result.code === 44) return { available: true };
    return { available: false, why: `security exited with ${result.code}: ${result.stderr}` };
  }
  const result = await runTool(
    "secret-tool",
    ["lookup", "application", KEYRING_SERVICE, "store", storePath],
    undefined,
    options,
  );
  if ("why" in result) return { available: false, why: result.why };
  if (result.code === 0 && result.stdout.trim()) {
    return { available: true, secret: result.stdout.trim() };
  }
  // No item: exit 1 and silence. No Secret Service (no D-Bus session, locked): a message.
  if (result.code <= 1 && !result.stderr.trim()) return { available: true };
  return {
    available: false,
    why: `secret-tool exited with ${result.code}: ${result.stderr.trim().slice(0, 200)}`,
  };
}

async function keyringStore(storePath: string, secret: string, options: KeyOptions): Promise<void> {
  const os = options.os ?? Deno.build.os;
  // The secret goes through stdin, never the command line (other users can read that).
  const result = os === "darwin"
    ? await runTool(
      "security",
      ["-i"],
      `add-generic-password -U -s ${KEYRING_SERVICE} -a "${
        storePath.replaceAll(/["\\\n]/g, "_")
      }" -w ${secret}\n`,
      options,
    )
    : await runTool(
      "secret-tool",
      [
        "store",
        "--label=Rune credential store key",
        "application",
        KEYRING_SERVICE,
        "store",
        storePath,
      ],
      secret,
      options,
    );
  if ("why" in result || result.code !== 0) {
    const why = "why" in result ? result.why : `exit code ${result.code}: ${result.stderr.trim()}`;
    throw new StoreKeyError(`Could not save the credential store's key in the keyring (${why}).`);
  }
}

type ToolResult = { code: number; stdout: string; stderr: string } | { why: string };

/** Runs a keyring tool, bounded in time; `why` when it cannot run at all. */
async function runTool(
  name: string,
  args: string[],
  stdin: string | undefined,
  options: KeyOptions,
): Promise<ToolResult> {
  const timeout = AbortSignal.timeout(options.keyringTimeoutMs ?? DEFAULT_KEYRING_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(name, {
      args,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { why: `${name} is not installed` };
    if (error instanceof Deno.errors.NotCapable) {
      return { why: `Deno's --allow-run does not allow ${name} where it is installed` };
    }
    throw error;
  }
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin)).catch(() => {});
    await writer.close().catch(() => {});
  }
  const output = await child.output();
  options.signal?.throwIfAborted();
  if (timeout.aborted) return { why: `${name} did not answer within the time allowed` };
  const decoder = new TextDecoder();
  // Bounded: a key is 44 characters; anything long is not a key.
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout.subarray(0, 4096)),
    stderr: decoder.decode(output.stderr.subarray(0, 4096)),
  };
}
