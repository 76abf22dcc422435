/**
 * `rune auth` as a real process with the development permissions (plus
 * writing its temporary RUNE_HOME): set-key from stdin, sign-in against a
 * real OpenID provider driven through the printed address, status as JSON,
 * logout with revocation, the timeout message, the keyring path through a
 * fake `secret-tool` on PATH, and no secret in any output or file.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { DEV_PERMISSIONS } from "../../scripts/permissions.ts";
import { openStore } from "../../src/credentials/store.ts";
import {
  browse,
  CLIENT_ID,
  type IdentityProvider,
  startIdentityProvider,
} from "../credentials/oidc_server.ts";
import { childEnv, MAIN } from "../stdio_client.ts";

const KEY = "sk-ant-cli-test-0123456789abcdefghijklmnopqrstuvwxyz";
const PASSPHRASE = "a passphrase for the cli tests";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface Home {
  dir: string;
  config: string;
}

async function makeHome(idp?: IdentityProvider): Promise<Home> {
  const dir = await Deno.makeTempDir({ prefix: "rune-auth-cli-" });
  const config = `${dir}/config.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      providers: [
        {
          id: "myidp",
          type: "openai",
          base_url: "http://127.0.0.1:9/v1",
          auth: {
            type: "oauth",
            issuer: idp?.issuer ?? "http://127.0.0.1:9",
            client_id: CLIENT_ID,
            scopes: ["openid", "llm.read"],
          },
        },
      ],
    }),
  );
  return { dir: `${dir}/home`, config };
}

function spawnRune(
  home: Home,
  args: string[],
  options: { stdin?: boolean; env?: Record<string, string>; permissions?: string[] } = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...DEV_PERMISSIONS,
      `--allow-write=${home.dir}`,
      ...(options.permissions ?? []),
      MAIN,
      "auth",
      ...args,
      "--config",
      home.config,
    ],
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    // No keyring tool on PATH unless a test puts its fake there.
    env: childEnv({
      RUNE_HOME: home.dir,
      RUNE_PASSPHRASE: PASSPHRASE,
      PATH: "/nonexistent",
      ...options.env,
    }),
  }).spawn();
}

async function rune(
  home: Home,
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; permissions?: string[] } = {},
): Promise<Run> {
  const child = spawnRune(home, args, { ...options, stdin: options.stdin !== undefined });
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Every file under `dir`, as bytes. */
async function filesUnder(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) { for (const [p, b] of await filesUnder(path)) files.set(p, b); }
    else if (entry.isFile) files.set(path, await Deno.readFile(path));
  }
  return files;
}

async function assertNowhere(secrets: string[], runs: Run[], dirs: string[]) {
  for (const secret of secrets) {
    for (const run of runs) {
      assert.ok(!run.stdout.includes(secret), "no secret on stdout");
      assert.ok(!run.stderr.includes(secret), "no secret on stderr");
    }
    for (const dir of dirs) {
      for (const [path, bytes] of await filesUnder(dir)) {
        assert.ok(
          !new TextDecoder("latin1").decode(bytes).includes(secret),
          `no secret in ${path}`,
        );
      }
    }
  }
}

Deno.test("rune auth set-key stores a key from stdin; status says how each provider authenticates", async () => {
  const home = await makeHome();
  const set = await rune(home, ["set-key", "anthropic"], { stdin: `${KEY}\n` });
  assert.equal(set.code, 0, set.stderr);
  assert.equal(
    set.stdout,
    `Stored the key for "anthropic" encrypted in ${home.dir}/credentials.json (key: passphrase).\n`,
  );
  assert.equal(set.stderr, "");
  const stored = await openStore({
    home: home.dir,
    env: (n) => n === "RUNE_PASSPHRASE" ? PASSPHRASE : undefined,
    keys: { keyring: false },
  }).read("anthropic");
  assert.equal(stored?.kind === "api-key" && stored.key, KEY);
  const status = await rune(home, ["status", "--json"]);
  assert.equal(status.code, 0, status.stderr);
  assert.deepEqual(JSON.parse(status.stdout), {
    providers: [
      { id: "ollama", method: "none", expires_at: null, scopes: null, store: null },
      { id: "myidp", method: "none", expires_at: null, scopes: null, store: null },
      {
        id: "anthropic",
        method: "stored-key",
        expires_at: null,
        scopes: null,
        store: "passphrase",
      },
    ],
  });
  const text = await rune(home, ["status"]);
  assert.equal(text.code, 0);
  assert.match(text.stdout, /^anthropic\s+stored-key\s+-\s+-$/m);
  assert.match(text.stdout, new RegExp(`Store: ${home.dir}/credentials.json; key: passphrase\n$`));
  await assertNowhere([KEY], [set, status, text], [home.dir]);
});

Deno.test("rune auth set-key without a key, or with a bad id, is a usage error", async () => {
  const home = await makeHome();
  const empty = await rune(home, ["set-key", "anthropic"], { stdin: "\n" });
  assert.equal(empty.code, 2);
  assert.equal(
    empty.stderr,
    'error: No key was given for "anthropic": pipe it on stdin or type it.\n',
  );
  const bad = await rune(home, ["set-key", "Bad/Id"], { stdin: KEY });
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr,
    'error: "Bad/Id" is not a provider id (short, lower-case letters, digits, - and _).\n',
  );
});

Deno.test("rune auth login signs in through the printed address; status shows expiry and scopes; logout revokes", async () => {
  const idp = await startIdentityProvider();
  const home = await makeHome(idp);
  try {
    const child = spawnRune(home, ["login", "myidp", "--no-browser"]);
    // Read stderr until the address appears, then play the browser.
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let stderr = "";
    let url: string | undefined;
    while (!url) {
      const { done, value } = await reader.read();
      if (done) break;
      stderr += value;
      url = /\n {2}(http\S+)\n/.exec(stderr)?.[1];
    }
    assert.ok(url, `the address is printed on stderr: ${stderr}`);
    const page = await browse(url);
    assert.equal(page.status, 200);
    await page.body?.cancel();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      stderr += value;
    }
    const [status, stdout] = await Promise.all([
      child.status,
      new Response(child.stdout).text(),
    ]);
    assert.equal(status.code, 0, stderr);
    assert.equal(
      stderr,
      `To sign in to "myidp", open this address in a browser:\n\n  ${url}\n\n` +
        "Waiting for the sign-in to finish...\n",
    );
    const token = idp.latestAccessToken()!;
    const store = openStore({
      home: home.dir,
      env: (n) => n === "RUNE_PASSPHRASE" ? PASSPHRASE : undefined,
      keys: { keyring: false },
    });
    const stored = await store.read("myidp");
    assert.ok(stored?.kind === "oauth");
    assert.equal(stored.access_token, token);
    const expires = new Date(stored.expires_at!).toISOString();
    assert.equal(
      stdout,
      `Signed in to "myidp": the access token is valid until ${expires} and is refreshed ` +
        `automatically; scopes: openid llm.read.\nStored encrypted in ${home.dir}/credentials.json ` +
        "(key: passphrase).\n",
    );
    const json = await rune(home, ["status", "--json"]);
    assert.deepEqual(JSON.parse(json.stdout), {
      providers: [
        { id: "ollama", method: "none", expires_at: null, scopes: null, store: null },
        {
          id: "myidp",
          method: "oauth",
          expires_at: expires,
          scopes: ["openid", "llm.read"],
          store: "passphrase",
        },
      ],
    });
    const logout = await rune(home, ["logout", "myidp"]);
    assert.equal(logout.code, 0, logout.stderr);
    assert.equal(logout.stdout, 'Signed out of "myidp": the tokens were revoked and deleted.\n');
    assert.deepEqual(idp.revocations, ["refresh_token", "access_token"]);
    assert.equal(await idp.accessTokenValid(token), false);
    assert.equal(await store.read("myidp"), undefined);
    const again = await rune(home, ["logout", "myidp"]);
    assert.equal(again.stdout, 'Nothing is stored for "myidp".\n');
    await assertNowhere(
      [token, stored.refresh_token!],
      [{ code: 0, stdout, stderr }, json, logout, again],
      [home.dir],
    );
  } finally {
    await idp.close();
  }
});

Deno.test("rune auth login gives up after --timeout with a message saying what to do", async () => {
  const idp = await startIdentityProvider();
  const home = await makeHome(idp);
  try {
    const run = await rune(home, ["login", "myidp", "--no-browser", "--timeout", "0.2"]);
    assert.equal(run.code, 1);
    assert.ok(
      run.stderr.endsWith(
        'error: Nobody finished signing in to "myidp" within 0.2 s. Run "rune auth login myidp" ' +
          "again and complete the sign-in in the browser (with --no-browser, open the printed " +
          "URL yourself).\n",
      ),
      run.stderr,
    );
    const none = await rune(home, ["login", "nosuch"]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^error: No provider "nosuch" in .*config\.json: declare it/);
  } finally {
    await idp.close();
  }
});

Deno.test("with a Secret Service (a fake secret-tool on PATH) the store's key lives in the keyring", async () => {
  const home = await makeHome();
  const bin = await Deno.makeTempDir({ prefix: "rune-fake-keyring-" });
  // A stand-in for secret-tool: keeps each secret in a file named after its attributes.
  await Deno.writeTextFile(
    `${bin}/secret-tool`,
    `#!/bin/sh
dir="$(dirname "$0")/items"
mkdir -p "$dir"
echo "$@" >> "$(dirname "$0")/calls"
command="$1"; shift
case "$command" in
  store) shift; name=$(echo "$@" | tr -c 'a-zA-Z0-9' _); cat > "$dir/$name" ;;
  lookup) name=$(echo "$@" | tr -c 'a-zA-Z0-9' _); [ -f "$dir/$name" ] || exit 1; cat "$dir/$name" ;;
  *) echo "fake secret-tool: unknown command $command" >&2; exit 2 ;;
esac
`,
  );
  await Deno.chmod(`${bin}/secret-tool`, 0o755);
  const options = {
    env: { PATH: `${bin}:/usr/bin:/bin`, RUNE_PASSPHRASE: "" },
    permissions: [`--allow-run=${bin}/secret-tool`],
  };
  const set = await rune(home, ["set-key", "anthropic"], { ...options, stdin: KEY });
  assert.equal(set.code, 0, set.stderr);
  assert.equal(
    set.stdout,
    `Stored the key for "anthropic" encrypted in ${home.dir}/credentials.json (key: keyring).\n`,
  );
  const path = `${home.dir}/credentials.json`;
  assert.deepEqual((await Deno.readTextFile(`${bin}/calls`)).split("\n"), [
    `lookup application rune-credential-store store ${path}`,
    `store --label=Rune credential store key application rune-credential-store store ${path}`,
    "",
  ]);
  const [item] = [...(await filesUnder(`${bin}/items`)).values()];
  assert.equal(atob(new TextDecoder().decode(item)).length, 32, "a 256-bit key in the keyring");
  assert.equal(JSON.parse(await Deno.readTextFile(path)).key_source, "keyring");
  assert.deepEqual([...Deno.readDirSync(home.dir)].map((e) => e.name), ["credentials.json"]);
  // Reading it back goes through the keyring (logout decrypts the entry first).
  const logout = await rune(home, ["logout", "anthropic"], options);
  assert.equal(logout.stdout, 'Deleted the stored key of "anthropic".\n');
  const status = await rune(home, ["status", "--json"], options);
  assert.deepEqual(JSON.parse(status.stdout).providers.map((p: { id: string }) => p.id), [
    "ollama",
    "myidp",
  ]);
  // Without the keyring (not on PATH), the store says how to get its key back.
  const away = await rune(home, ["set-key", "openai"], { stdin: KEY });
  assert.equal(away.code, 1);
  assert.equal(
    away.stderr,
    `error: The credential store ${path} is encrypted with a key in the system keyring, which ` +
      "cannot be reached now (secret-tool is not installed). Run rune where the keyring is " +
      "available (a desktop session), or move the store aside and sign in again.\n",
  );
  await assertNowhere([KEY], [set, logout, status, away], [home.dir]);
});

Deno.test("rune auth set-key on a terminal hides what is typed", {
  ignore: Deno.build.os !== "linux" || !existsSync("/usr/bin/script"),
}, async () => {
  const home = await makeHome();
  const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
  const command = [
    Deno.execPath(),
    "run",
    ...DEV_PERMISSIONS,
    `--allow-write=${home.dir}`,
    MAIN,
    "auth",
    "set-key",
    "anthropic",
    "--config",
    home.config,
  ].map(quote).join(" ");
  // util-linux script gives the command a pseudo-terminal and relays our pipe to it.
  const child = new Deno.Command("/usr/bin/script", {
    args: ["-qfec", command, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv({ RUNE_HOME: home.dir, RUNE_PASSPHRASE: PASSPHRASE, PATH: "/usr/bin:/bin" }),
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let screen = "";
  while (!screen.includes("Enter to finish): ")) {
    const { done, value } = await reader.read();
    if (done) break;
    screen += value;
  }
  assert.ok(screen.includes("API key (typing is hidden, Enter to finish): "), screen);
  // Typed with a mistake corrected by backspace, then Enter.
  const stdin = child.stdin.getWriter();
  await stdin.write(new TextEncoder().encode(`${KEY}x\x7f\r`));
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    screen += value;
  }
  await stdin.close().catch(() => {});
  const [status] = await Promise.all([child.status, child.stderr.cancel()]);
  assert.equal(status.code, 0, screen);
  assert.match(screen, /Stored the key for "anthropic" encrypted in /);
  assert.ok(!screen.includes(KEY), "the typed key is not echoed");
  const stored = await openStore({
    home: home.dir,
    env: (n) => n === "RUNE_PASSPHRASE" ? PASSPHRASE : undefined,
    keys: { keyring: false },
  }).read("anthropic");
  assert.equal(stored?.kind === "api-key" && stored.key, KEY);
});
