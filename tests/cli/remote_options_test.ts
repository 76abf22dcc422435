/**
 * The remote-access flags of `rune serve` (`--oauth-issuer`, `--public-url`,
 * `--oauth-introspection-url`, `--tls-cert`, `--tls-key`): what they
 * refuse and why, and where the introspection client's credentials come
 * from (the credential store).
 *
 * @module
 */

import assert from "node:assert/strict";
import { INTROSPECTION_CREDENTIAL, remoteSetup } from "../../src/cli/remote_options.ts";
import { type CredentialStore, openStore } from "../../src/credentials/store.ts";
import { RuneError, UsageError } from "../../src/errors.ts";
import { serveArgs } from "../stdio_client.ts";
import { childEnv } from "../stdio_client.ts";

const ISSUER = "https://idp.example/realms/rune";

function setup(values: Record<string, unknown>, hostname = "127.0.0.1", store?: CredentialStore) {
  return remoteSetup(values, {
    hostname,
    env: () => undefined,
    log: () => {},
    ...(store && { store }),
  });
}

async function refused(
  values: Record<string, unknown>,
  pattern: RegExp,
  hostname?: string,
  store?: CredentialStore,
): Promise<void> {
  await assert.rejects(setup(values, hostname, store), (error: unknown) => {
    assert.ok(error instanceof UsageError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("remote access is off without flags", async () => {
  assert.deepEqual(await setup({}), {});
});

Deno.test("OAuth flags that cannot work are refused with what to do", async () => {
  await refused({ "tls-cert": "cert.pem" }, /--tls-cert and --tls-key go together/);
  await refused({ "public-url": "https://rune.example.com" }, /need --oauth-issuer/);
  await refused({ "oauth-issuer": ["http://idp.example"] }, /must be an https:\/\/ URL/);
  await refused({ "oauth-issuer": [`${ISSUER}?x=1`] }, /no query or fragment/);
  await refused({ "oauth-issuer": [ISSUER] }, /give it with --public-url/, "0.0.0.0");
  await refused({ "oauth-issuer": [ISSUER] }, /send bearer tokens in clear/, "192.168.1.5");
  await refused(
    { "oauth-issuer": [ISSUER], "public-url": "http://rune.example.com" },
    /plain http: bearer tokens must travel over TLS/,
  );
  await refused(
    { "oauth-issuer": [ISSUER], "public-url": "https://rune.example.com/mcp" },
    /has a path, query or fragment/,
  );
  await refused(
    { "oauth-issuer": [ISSUER], "oauth-introspection-url": "http://idp.example/introspect" },
    /--oauth-introspection-url .* must be an https:\/\/ URL/,
  );
});

Deno.test("--public-url is the resource, as an origin", async () => {
  const { oauth } = await setup(
    { "oauth-issuer": [ISSUER], "public-url": "https://Rune.Example.com:8443/" },
    "0.0.0.0",
  );
  assert.equal(oauth?.resource, "https://rune.example.com:8443");
  assert.deepEqual(oauth?.audiences, [
    "https://rune.example.com:8443",
    "https://rune.example.com:8443/mcp",
  ]);
  assert.equal(
    oauth?.metadataUrl("/mcp"),
    "https://rune.example.com:8443/.well-known/oauth-protected-resource/mcp",
  );
});

Deno.test("introspection reads Rune's client credentials from the credential store", async () => {
  const home = await Deno.makeTempDir({ prefix: "rune-remote-" });
  const env = (
    name: string,
  ) => (name === "RUNE_PASSPHRASE" ? "a passphrase for the test" : undefined);
  const store = openStore({ home, env, keys: { keyring: false } });
  const flags = {
    "oauth-issuer": [ISSUER],
    "public-url": "https://rune.example.com",
    "oauth-introspection-url": `${ISSUER}/protocol/openid-connect/token/introspect`,
  };
  try {
    await refused(flags, /rune auth set-key oauth-introspection/, "0.0.0.0", store);
    const put = (key: string) =>
      store.update(INTROSPECTION_CREDENTIAL, () =>
        Promise.resolve({
          next: { kind: "api-key", key, via: "set-key", saved_at: new Date().toISOString() },
          result: undefined,
        }));
    await put("no-colon-here");
    await refused(flags, /is not CLIENT_ID:CLIENT_SECRET/, "0.0.0.0", store);
    await put("rune-rs:s3cret:with:colons");
    const { oauth } = await setup(flags, "0.0.0.0", store);
    assert.equal(oauth?.resource, "https://rune.example.com");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("TLS files are checked at start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rune-tls-flags-" });
  try {
    await Deno.writeTextFile(`${dir}/not.pem`, "hello");
    await assert.rejects(
      setup({ "tls-cert": `${dir}/missing.pem`, "tls-key": `${dir}/not.pem` }),
      (error: unknown) =>
        error instanceof RuneError && /Cannot read --tls-cert/.test(error.message),
    );
    await assert.rejects(
      setup({ "tls-cert": `${dir}/not.pem`, "tls-key": `${dir}/not.pem` }),
      (error: unknown) =>
        error instanceof RuneError && /holds no PEM certificate/.test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rune serve exits 2 on a bad remote-access flag, saying which", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: serveArgs("127.0.0.1:1", ["--port", "0", "--tls-key", "key.pem"]),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    clearEnv: true,
    env: childEnv(),
  }).output();
  assert.equal(code, 2);
  assert.match(new TextDecoder().decode(stderr), /--tls-cert and --tls-key go together/);
});
