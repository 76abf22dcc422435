/**
 * The encrypted credential store on disk: round trips, a fresh nonce per
 * write, the provider id bound to its entry, wrong keys, tampering and
 * truncation detected and never overwritten, two processes writing at once
 * without losing updates, stale locks, modes 0700/0600, and no secret in
 * the file.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  StoreKeyError,
  StoreLockedError,
  StoreUnreadableError,
} from "../../src/credentials/errors.ts";
import { PBKDF2_ITERATIONS } from "../../src/credentials/keys.ts";
import {
  type ApiKeyCredential,
  type CredentialStore,
  KEY_FILE,
  LOCK_FILE,
  MAX_STORE_BYTES,
  type OAuthCredential,
  openStore,
  runeHome,
  STORE_FILE,
} from "../../src/credentials/store.ts";

const SECRET = "sk-test-5ecret-key-that-must-never-appear-0123456789";
const ACCESS = "at-must-not-leak-9f8e7d6c5b4a";
const REFRESH = "rt-must-not-leak-a1b2c3d4e5f6";

function store(home: string, passphrase?: string): CredentialStore {
  return openStore({
    home,
    env: (name) => name === "RUNE_PASSPHRASE" ? passphrase : undefined,
    keys: { keyring: false },
    lock: { timeoutMs: 2_000 },
  });
}

function key(value = SECRET): ApiKeyCredential {
  return { kind: "api-key", key: value, via: "set-key", saved_at: "2026-01-01T00:00:00.000Z" };
}

const oauthTokens: OAuthCredential = {
  kind: "oauth",
  access_token: ACCESS,
  refresh_token: REFRESH,
  expires_at: 1_900_000_000_000,
  scopes: ["openid", "llm.read"],
  issuer: "https://idp.example.com",
  token_endpoint: "https://idp.example.com/token",
  client_id: "rune",
  saved_at: "2026-01-01T00:00:00.000Z",
};

async function put(s: CredentialStore, id: string, value: ApiKeyCredential | OAuthCredential) {
  await s.update(id, () => Promise.resolve({ next: value, result: undefined }));
}

async function home(): Promise<string> {
  // A directory that does not exist yet: the store creates it with mode 0700.
  return `${await Deno.makeTempDir({ prefix: "rune-store-" })}/rune`;
}

function assertNoSecret(bytes: Uint8Array | string, where: string) {
  const text = typeof bytes === "string" ? bytes : new TextDecoder("latin1").decode(bytes);
  for (const secret of [SECRET, ACCESS, REFRESH]) {
    assert.ok(!text.includes(secret), `${where} must not contain a secret`);
  }
}

Deno.test("credentials round-trip through the store, which keeps only ciphertext on disk", async () => {
  const dir = await home();
  const s = store(dir, "correct horse battery staple");
  await put(s, "anthropic", key());
  await put(s, "myidp", oauthTokens);
  assert.deepEqual(await s.read("anthropic"), key());
  assert.deepEqual(await s.read("myidp"), oauthTokens);
  assert.equal(await s.read("other"), undefined);
  // Another instance (another process) with the same passphrase reads the same.
  assert.deepEqual(
    [...(await store(dir, "correct horse battery staple").readAll())],
    [["anthropic", key()], ["myidp", oauthTokens]],
  );
  const raw = await Deno.readFile(`${dir}/${STORE_FILE}`);
  assertNoSecret(raw, "the store file");
  const file = JSON.parse(new TextDecoder().decode(raw));
  assert.deepEqual(Object.keys(file), [
    "format",
    "version",
    "key_source",
    "kdf",
    "key_check",
    "entries",
  ]);
  assert.equal(file.format, "rune-credentials");
  assert.equal(file.version, 1);
  assert.equal(file.key_source, "passphrase");
  assert.equal(file.kdf.name, "PBKDF2-SHA256");
  assert.equal(file.kdf.iterations, PBKDF2_ITERATIONS);
  assert.equal(atob(file.kdf.salt).length, 16);
  assert.deepEqual(Object.keys(file.entries), ["anthropic", "myidp"]);
  assert.deepEqual(Object.keys(file.entries.myidp), ["kind", "nonce", "ciphertext"]);
  assert.equal(file.entries.myidp.kind, "oauth");
  assert.equal(atob(file.entries.myidp.nonce).length, 12);
  assert.deepEqual(s.index(), {
    exists: true,
    keySource: "passphrase",
    entries: [{ id: "anthropic", kind: "api-key" }, { id: "myidp", kind: "oauth" }],
  });
  // Deleting removes the entry.
  await s.update("anthropic", () => Promise.resolve({ next: undefined, result: undefined }));
  assert.equal(await s.read("anthropic"), undefined);
  assert.deepEqual(s.index().entries, [{ id: "myidp", kind: "oauth" }]);
});

Deno.test("the directory is 0700, the store and key files 0600, and no temporary file is left", {
  ignore: Deno.build.os === "windows",
}, async () => {
  const dir = await home();
  const s = store(dir);
  await put(s, "anthropic", key());
  assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
  assert.equal((await Deno.stat(`${dir}/${STORE_FILE}`)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(`${dir}/${KEY_FILE}`)).mode! & 0o777, 0o600);
  const names = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  assert.deepEqual(names.sort(), [STORE_FILE, KEY_FILE]);
  // An existing, too open directory is narrowed.
  await Deno.chmod(dir, 0o755);
  await put(s, "openai", key());
  assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
});

Deno.test("without a keyring or passphrase the key is a random file beside the store", async () => {
  const dir = await home();
  const s = store(dir);
  await put(s, "anthropic", key());
  assert.equal(s.index().keySource, "key-file");
  assert.equal(atob((await Deno.readTextFile(`${dir}/${KEY_FILE}`)).trim()).length, 32);
  assertNoSecret(await Deno.readFile(`${dir}/${KEY_FILE}`), "the key file");
  await Deno.remove(`${dir}/${KEY_FILE}`);
  await assert.rejects(
    store(dir).read("anthropic"),
    (e: Error) =>
      e instanceof StoreKeyError &&
      e.message ===
        `The credential store is encrypted with the key file ${dir}/${KEY_FILE}, which is ` +
          "missing. Restore it, or move the store aside and sign in again.",
  );
});

Deno.test("every write uses a fresh nonce", async () => {
  const dir = await home();
  const s = store(dir);
  await put(s, "anthropic", key());
  const first = JSON.parse(await Deno.readTextFile(`${dir}/${STORE_FILE}`)).entries.anthropic;
  await put(s, "anthropic", key());
  const second = JSON.parse(await Deno.readTextFile(`${dir}/${STORE_FILE}`)).entries.anthropic;
  assert.notEqual(second.nonce, first.nonce);
  assert.notEqual(second.ciphertext, first.ciphertext);
});

Deno.test("a wrong passphrase is refused with advice, and the store is not overwritten", async () => {
  const dir = await home();
  await put(store(dir, "right passphrase"), "anthropic", key());
  const before = await Deno.readFile(`${dir}/${STORE_FILE}`);
  const wrong = store(dir, "wrong passphrase");
  const message = `The credential store ${dir}/${STORE_FILE} cannot be decrypted: ` +
    "RUNE_PASSPHRASE is not the passphrase it was created with: set the right one. Rune " +
    `leaves it untouched. If the key is lost, move the store aside (mv ${dir}/${STORE_FILE} ` +
    `${dir}/${STORE_FILE}.old) and sign in again.`;
  await assert.rejects(
    wrong.read("anthropic"),
    (e: Error) =>
      e instanceof StoreUnreadableError && e.problem === "wrong-key" && e.message === message,
  );
  await assert.rejects(put(wrong, "openai", key("sk-other")), StoreUnreadableError);
  assert.deepEqual(await Deno.readFile(`${dir}/${STORE_FILE}`), before);
  await assert.rejects(
    store(dir).read("anthropic"),
    (e: Error) =>
      e instanceof StoreKeyError &&
      e.message ===
        `The credential store ${dir}/${STORE_FILE} is encrypted with a passphrase: set ` +
          "RUNE_PASSPHRASE (and allow it with --allow-env=RUNE_PASSPHRASE).",
  );
});

Deno.test("tampered ciphertext is detected and the store is never rewritten", async () => {
  const dir = await home();
  const s = store(dir, "pass");
  await put(s, "anthropic", key());
  await put(s, "openai", key("sk-openai"));
  const file = JSON.parse(await Deno.readTextFile(`${dir}/${STORE_FILE}`));
  const bytes = Uint8Array.from(atob(file.entries.anthropic.ciphertext), (c) => c.charCodeAt(0));
  bytes[3] ^= 0x01;
  file.entries.anthropic.ciphertext = btoa(String.fromCharCode(...bytes));
  await Deno.writeTextFile(`${dir}/${STORE_FILE}`, JSON.stringify(file));
  const before = await Deno.readFile(`${dir}/${STORE_FILE}`);
  await assert.rejects(
    store(dir, "pass").read("anthropic"),
    (e: Error) =>
      e instanceof StoreUnreadableError && e.problem === "tampered" &&
      e.message ===
        `The credential store ${dir}/${STORE_FILE} has an entry for "anthropic" that fails its ` +
          "integrity check: it was altered or damaged. Rune leaves the file untouched. Move it " +
          `aside (mv ${dir}/${STORE_FILE} ${dir}/${STORE_FILE}.damaged) and sign in again with ` +
          '"rune auth login anthropic" or "rune auth set-key anthropic".',
  );
  // The untouched entry still reads, but no update (even of another id) rewrites the file.
  assert.deepEqual(await store(dir, "pass").read("openai"), key("sk-openai"));
  await assert.rejects(put(store(dir, "pass"), "openai", key("sk-new")), StoreUnreadableError);
  assert.deepEqual(await Deno.readFile(`${dir}/${STORE_FILE}`), before);
});

Deno.test("an entry copied under another provider id fails: the id is bound to the ciphertext", async () => {
  const dir = await home();
  await put(store(dir, "pass"), "anthropic", key());
  await put(store(dir, "pass"), "openai", key("sk-openai"));
  const file = JSON.parse(await Deno.readTextFile(`${dir}/${STORE_FILE}`));
  file.entries.openai = file.entries.anthropic;
  await Deno.writeTextFile(`${dir}/${STORE_FILE}`, JSON.stringify(file));
  await assert.rejects(
    store(dir, "pass").read("openai"),
    (e: Error) => e instanceof StoreUnreadableError && e.problem === "tampered",
  );
});

Deno.test("a truncated store is reported as damaged and left as it is", async () => {
  const dir = await home();
  await put(store(dir), "anthropic", key());
  const text = await Deno.readTextFile(`${dir}/${STORE_FILE}`);
  await Deno.writeTextFile(`${dir}/${STORE_FILE}`, text.slice(0, text.length / 2));
  const before = await Deno.readFile(`${dir}/${STORE_FILE}`);
  const message = `The credential store ${dir}/${STORE_FILE} is not valid JSON (truncated or ` +
    "damaged). Rune leaves it untouched. Restore it from a backup, or move it aside (mv " +
    `${dir}/${STORE_FILE} ${dir}/${STORE_FILE}.damaged) and sign in again.`;
  await assert.rejects(
    store(dir).read("anthropic"),
    (e: Error) =>
      e instanceof StoreUnreadableError && e.problem === "corrupt" && e.message === message,
  );
  assert.throws(() => store(dir).index(), (e: Error) => e.message === message);
  await assert.rejects(put(store(dir), "anthropic", key()), StoreUnreadableError);
  assert.deepEqual(await Deno.readFile(`${dir}/${STORE_FILE}`), before);
});

Deno.test("a store with fewer PBKDF2 iterations than required is refused as altered", async () => {
  const dir = await home();
  await put(store(dir, "pass"), "anthropic", key());
  const file = JSON.parse(await Deno.readTextFile(`${dir}/${STORE_FILE}`));
  file.kdf.iterations = 1000;
  await Deno.writeTextFile(`${dir}/${STORE_FILE}`, JSON.stringify(file));
  await assert.rejects(
    store(dir, "pass").read("anthropic"),
    (e: Error) => e instanceof StoreKeyError && e.message.includes("it was altered"),
  );
});

Deno.test("a store file over the size bound is not read", async () => {
  const dir = await home();
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/${STORE_FILE}`, " ".repeat(MAX_STORE_BYTES + 1));
  await assert.rejects(
    store(dir).read("x"),
    (e: Error) => e instanceof StoreUnreadableError && e.problem === "too-large",
  );
});

Deno.test("two processes writing at once lose none of each other's updates", async () => {
  const dir = await home();
  const writer = new URL("./store_writer.ts", import.meta.url).pathname;
  const children = ["a", "b"].map((prefix) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", writer, dir, prefix, "12"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn()
  );
  // Both are running; release them together.
  for (const child of children) {
    const stdin = child.stdin.getWriter();
    await stdin.write(new Uint8Array([1]));
    await stdin.close();
  }
  for (const child of children) {
    const output = await child.output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.equal(new TextDecoder().decode(output.stdout), "done\n");
  }
  const all = await store(dir).readAll();
  const expected = ["a", "b"].flatMap((p) => Array.from({ length: 12 }, (_, i) => `${p}${i}`));
  assert.deepEqual([...all.keys()].sort(), expected.sort());
  for (const id of expected) {
    assert.equal((all.get(id) as ApiKeyCredential).key, `sk-${id.slice(0, 1)}-${id.slice(1)}`);
  }
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [STORE_FILE, KEY_FILE]);
});

Deno.test("a lock left by a process that died is taken over; a live one makes the writer wait, then give up", async () => {
  const dir = await home();
  await put(store(dir), "anthropic", key());
  // A stale lock: its heartbeat stopped an hour ago.
  await Deno.writeTextFile(`${dir}/${LOCK_FILE}`, "12345 dead-token\n");
  const past = new Date(Date.now() - 3600_000);
  await Deno.utime(`${dir}/${LOCK_FILE}`, past, past);
  await put(store(dir), "openai", key("sk-openai"));
  assert.deepEqual(await store(dir).read("openai"), key("sk-openai"));
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [STORE_FILE, KEY_FILE]);
  // A live lock (fresh heartbeat) is respected until the bounded wait ends.
  await Deno.writeTextFile(`${dir}/${LOCK_FILE}`, "12345 live-token\n");
  const waiting = openStore({
    home: dir,
    env: () => undefined,
    keys: { keyring: false },
    lock: { timeoutMs: 100 },
  });
  await assert.rejects(
    put(waiting, "openai", key("sk-lost")),
    (e: Error) =>
      e instanceof StoreLockedError &&
      e.message ===
        `The credential store is locked by another rune process (${dir}/${LOCK_FILE}) and ` +
          "stayed locked for 0.1 s. Try again; if no other rune command is running, delete that " +
          "lock file.",
  );
  assert.equal(await Deno.readTextFile(`${dir}/${LOCK_FILE}`), "12345 live-token\n");
  assert.deepEqual(await store(dir).read("openai"), key("sk-openai"));
});

Deno.test("RUNE_HOME chooses the directory, else ~/.config/rune", () => {
  assert.equal(runeHome((n) => ({ RUNE_HOME: "/srv/rune/", HOME: "/home/a" })[n]), "/srv/rune");
  assert.equal(runeHome((n) => ({ HOME: "/home/a" })[n]), "/home/a/.config/rune");
  assert.throws(() => runeHome(() => undefined), /set RUNE_HOME \(or HOME\)/);
});
