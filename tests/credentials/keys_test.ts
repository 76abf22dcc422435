/**
 * The store key's sources beyond what the CLI tests cover: the macOS
 * Keychain path through a fake `security` on PATH (the key goes through
 * `security -i` on stdin, never the command line), the reuse of a keyring
 * item, and a passphrase-derived key that depends on the salt.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  type KdfParams,
  KEYRING_SERVICE,
  passphraseKey,
  PBKDF2_ITERATIONS,
  resolveKey,
} from "../../src/credentials/keys.ts";

async function roundTrip(encryptWith: CryptoKey, decryptWith: CryptoKey): Promise<string> {
  const iv = new Uint8Array(12);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv },
    encryptWith,
    new TextEncoder().encode("hello"),
  );
  return new TextDecoder().decode(
    await crypto.subtle.decrypt({ name: "AES-GCM", iv }, decryptWith, sealed),
  );
}

Deno.test("on macOS the key lives in the Keychain, stored through security -i on stdin", async () => {
  const bin = await Deno.makeTempDir({ prefix: "rune-fake-security-" });
  // A stand-in for macOS security: one item per account, exit 44 when missing.
  await Deno.writeTextFile(
    `${bin}/security`,
    `#!/bin/sh
here="$(dirname "$0")"
echo "$@" >> "$here/calls"
if [ "$1" = "-i" ]; then
  read -r line
  echo "$line" > "$here/item"
  exit 0
fi
if [ "$1" = "find-generic-password" ]; then
  [ -f "$here/item" ] || exit 44
  sed 's/.* -w //' "$here/item"
  exit 0
fi
exit 2
`,
  );
  await Deno.chmod(`${bin}/security`, 0o755);
  const path = Deno.env.get("PATH");
  Deno.env.set("PATH", `${bin}:/usr/bin:/bin`);
  try {
    const paths = { storePath: "/home/a/.config/rune/credentials.json", keyFile: `${bin}/unused` };
    const created = await resolveKey(undefined, paths, { env: () => undefined, os: "darwin" });
    assert.equal(created.source, "keyring");
    const item = await Deno.readTextFile(`${bin}/item`);
    assert.match(
      item,
      new RegExp(
        `^add-generic-password -U -s ${KEYRING_SERVICE} -a "${paths.storePath}" -w [A-Za-z0-9+/]{43}=\\n$`,
      ),
    );
    const secret = item.trim().split(" ").at(-1)!;
    const calls = await Deno.readTextFile(`${bin}/calls`);
    assert.equal(
      calls,
      `find-generic-password -s ${KEYRING_SERVICE} -a ${paths.storePath} -w\n-i\n`,
    );
    assert.ok(!calls.includes(secret), "the key never appears on a command line");
    const again = await resolveKey({ key_source: "keyring" }, paths, {
      env: () => undefined,
      os: "darwin",
    });
    assert.equal(await roundTrip(created.key, again.key), "hello", "the same key comes back");
    assert.equal(Buffer.from(secret, "base64").length, 32);
  } finally {
    if (path === undefined) Deno.env.delete("PATH");
    else Deno.env.set("PATH", path);
  }
});

Deno.test("a passphrase key depends on the passphrase and the salt", async () => {
  const kdf: KdfParams = {
    name: "PBKDF2-SHA256",
    iterations: PBKDF2_ITERATIONS,
    salt: Buffer.alloc(16, 1).toString("base64"),
  };
  const one = await passphraseKey("pass", kdf);
  assert.equal(await roundTrip(one, await passphraseKey("pass", kdf)), "hello");
  await assert.rejects(roundTrip(one, await passphraseKey("Pass", kdf)));
  await assert.rejects(
    roundTrip(
      one,
      await passphraseKey("pass", { ...kdf, salt: Buffer.alloc(16, 2).toString("base64") }),
    ),
  );
});
