/**
 * OAuth against a real OpenID Connect provider (npm `oidc-provider`, PKCE
 * required, refresh tokens rotated at every use, revocation): sign-in
 * through the loopback redirect, a forged `state` refused, tokens refreshed
 * before expiry and after a 401 from the provider double, rotation saved
 * at once, one refresh shared by concurrent calls, refresh failures that
 * say to sign in again, revocation at logout.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SignInError, SignInRequiredError } from "../../src/credentials/errors.ts";
import {
  type OAuthSettings,
  oauthSettings,
  revokeTokens,
  signIn,
} from "../../src/credentials/oauth.ts";
import { storedCredentialSource } from "../../src/credentials/sources.ts";
import {
  type CredentialStore,
  type OAuthCredential,
  openStore,
} from "../../src/credentials/store.ts";
import { browse, CLIENT_ID, type IdentityProvider, startIdentityProvider } from "./oidc_server.ts";
import { callProvider, startProviderDouble } from "./provider_double.ts";

const SCOPES = ["openid", "offline_access", "llm.read"];

function settings(idp: IdentityProvider): OAuthSettings {
  return oauthSettings("myidp", {
    type: "oauth",
    issuer: idp.issuer,
    client_id: CLIENT_ID,
    scopes: SCOPES,
  }, "test config");
}

async function tempStore(): Promise<{ store: CredentialStore; home: string }> {
  const home = await Deno.makeTempDir({ prefix: "rune-oauth-" });
  const store = openStore({
    home,
    env: (name) => name === "RUNE_PASSPHRASE" ? "correct horse battery staple" : undefined,
    keys: { keyring: false },
  });
  return { store, home };
}

/** Signs in with the test playing the browser: it opens the printed address. */
async function signInThroughBrowser(idp: IdentityProvider): Promise<OAuthCredential> {
  let browsing: Promise<Response> | undefined;
  const credential = await signIn(settings(idp), {
    show(url) {
      browsing = browse(url);
    },
  });
  const page = await browsing!;
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Rune is signed in/);
  return credential;
}

Deno.test("sign-in runs the code flow with PKCE through the loopback redirect and stores tokens the server honours", async () => {
  const idp = await startIdentityProvider();
  try {
    let shown = "";
    let browsing: Promise<Response> | undefined;
    const before = Date.now();
    const credential = await signIn(settings(idp), {
      show(url) {
        shown = url;
        browsing = browse(url);
      },
    });
    await (await browsing!).body?.cancel();
    const url = new URL(shown);
    assert.equal(url.origin + url.pathname, `${idp.issuer}/auth`);
    assert.equal(url.searchParams.get("code_challenge_method"), "S256");
    assert.match(url.searchParams.get("code_challenge")!, /^[A-Za-z0-9_-]{43}$/);
    assert.match(url.searchParams.get("state")!, /^[A-Za-z0-9_-]{43}$/);
    assert.match(url.searchParams.get("nonce")!, /^[A-Za-z0-9_-]{43}$/);
    assert.match(url.searchParams.get("redirect_uri")!, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    assert.equal(url.searchParams.get("scope"), SCOPES.join(" "));
    assert.deepEqual(idp.grants, ["authorization_code"]);
    assert.equal(credential.kind, "oauth");
    assert.equal(credential.access_token, idp.latestAccessToken());
    assert.equal(await idp.accessTokenValid(credential.access_token), true);
    assert.equal(typeof credential.refresh_token, "string");
    // What the server granted: oidc-provider grants offline_access only with prompt=consent.
    assert.deepEqual(credential.scopes, ["openid", "llm.read"]);
    assert.equal(credential.issuer, idp.issuer);
    assert.equal(credential.token_endpoint, `${idp.issuer}/token`);
    assert.equal(credential.revocation_endpoint, `${idp.issuer}/token/revocation`);
    assert.ok(
      credential.expires_at! >= before + 3600_000 &&
        credential.expires_at! <= Date.now() + 3600_000,
      "expires an hour after the exchange",
    );
  } finally {
    await idp.close();
  }
});

Deno.test("a redirect with another state is refused and no code is exchanged", async () => {
  const idp = await startIdentityProvider();
  try {
    let page: Promise<Response> | undefined;
    const signingIn = signIn(settings(idp), {
      show(url) {
        const redirect = new URL(url).searchParams.get("redirect_uri")!;
        page = fetch(
          `${redirect}?code=attacker-code&state=forged&iss=${encodeURIComponent(idp.issuer)}`,
        );
      },
    });
    await assert.rejects(signingIn, (error: Error) => {
      assert.ok(error instanceof SignInError);
      assert.equal(
        error.message,
        "The sign-in redirect did not carry the state Rune sent (a stale or forged redirect), so " +
          'it was refused. Run "rune auth login myidp" again.',
      );
      return true;
    });
    const response = await page!;
    assert.equal(response.status, 400);
    await response.body?.cancel();
    assert.deepEqual(idp.grants, [], "the token endpoint never saw the forged code");
  } finally {
    await idp.close();
  }
});

Deno.test("a sign-in nobody finishes times out with a message saying what to do", async () => {
  const idp = await startIdentityProvider();
  try {
    await assert.rejects(
      signIn(settings(idp), { show() {}, timeoutMs: 50 }),
      (error: Error) =>
        error instanceof SignInError &&
        error.message ===
          'Nobody finished signing in to "myidp" within 0.05 s. Run "rune auth login myidp" again ' +
            "and complete the sign-in in the browser (with --no-browser, open the printed URL " +
            "yourself).",
    );
  } finally {
    await idp.close();
  }
});

Deno.test("plain-http issuers are refused unless they are on loopback", () => {
  assert.throws(
    () =>
      oauthSettings("corp", {
        type: "oauth",
        issuer: "http://idp.example.com",
        client_id: "x",
      }, "/etc/rune.json"),
    (error: Error) =>
      error.message ===
        '/etc/rune.json: provider "corp" has an "auth" block that has issuer ' +
          "http://idp.example.com: plain http:// is allowed only on loopback addresses.",
  );
  assert.equal(
    oauthSettings("local", { type: "oauth", issuer: "http://127.0.0.1:8080", client_id: "x" }, "f")
      .issuer,
    "http://127.0.0.1:8080",
  );
});

Deno.test("a token about to expire is refreshed before the request, and the rotated refresh token is saved at once", async () => {
  const idp = await startIdentityProvider();
  const double = startProviderDouble(async (token) =>
    token === idp.latestAccessToken() && await idp.accessTokenValid(token)
  );
  const { store, home } = await tempStore();
  try {
    const first = await signInThroughBrowser(idp);
    await store.update("myidp", () => Promise.resolve({ next: first, result: undefined }));
    let clock = Date.now();
    const source = storedCredentialSource("myidp", store, { now: () => clock, signIn: "login" });
    assert.deepEqual(await callProvider(source, double.baseUrl), {
      status: 200,
      models: ["gpt-test"],
    });
    assert.deepEqual(idp.grants, ["authorization_code"], "a fresh token is not refreshed");
    // 30 s before expiry: inside the refresh margin.
    clock = first.expires_at! - 30_000;
    assert.deepEqual(await callProvider(source, double.baseUrl), {
      status: 200,
      models: ["gpt-test"],
    });
    assert.deepEqual(idp.grants, ["authorization_code", "refresh_token"]);
    assert.deepEqual(
      double.authorizations,
      [`Bearer ${first.access_token}`, `Bearer ${idp.latestAccessToken()}`],
      "the second request carried the new token, never the expiring one",
    );
    const saved = await store.read("myidp") as OAuthCredential;
    assert.equal(saved.access_token, idp.latestAccessToken());
    assert.notEqual(
      saved.refresh_token,
      first.refresh_token,
      "the rotated refresh token is stored",
    );
    // A second process reading the store now gets the new tokens.
    const other = openStore({
      home,
      env: (name) => name === "RUNE_PASSPHRASE" ? "correct horse battery staple" : undefined,
      keys: { keyring: false },
    });
    assert.deepEqual(await other.read("myidp"), saved);
  } finally {
    await double.close();
    await idp.close();
  }
});

Deno.test("after a 401 the token is refreshed once and the request retried", async () => {
  const idp = await startIdentityProvider();
  let revokedAtProvider = "";
  const double = startProviderDouble(async (token) =>
    token !== revokedAtProvider && token === idp.latestAccessToken() &&
    await idp.accessTokenValid(token)
  );
  const { store } = await tempStore();
  try {
    const first = await signInThroughBrowser(idp);
    await store.update("myidp", () => Promise.resolve({ next: first, result: undefined }));
    const source = storedCredentialSource("myidp", store, { signIn: "login" });
    // The provider stops honouring the (unexpired) token, as after a key rotation upstream.
    revokedAtProvider = first.access_token;
    assert.deepEqual(await callProvider(source, double.baseUrl), {
      status: 200,
      models: ["gpt-test"],
    });
    assert.deepEqual(idp.grants, ["authorization_code", "refresh_token"]);
    assert.equal(double.authorizations.length, 2);
    assert.equal(double.authorizations[0], `Bearer ${first.access_token}`);
    assert.equal(double.authorizations[1], `Bearer ${idp.latestAccessToken()}`);
    assert.notEqual(double.authorizations[1], double.authorizations[0]);
  } finally {
    await double.close();
    await idp.close();
  }
});

Deno.test("concurrent calls with an expiring token share one refresh", async () => {
  const idp = await startIdentityProvider();
  const double = startProviderDouble(async (token) =>
    token === idp.latestAccessToken() && await idp.accessTokenValid(token)
  );
  const { store } = await tempStore();
  try {
    const first = await signInThroughBrowser(idp);
    await store.update("myidp", () => Promise.resolve({ next: first, result: undefined }));
    const clock = first.expires_at! - 1_000;
    const source = storedCredentialSource("myidp", store, { now: () => clock, signIn: "login" });
    const results = await Promise.all(
      Array.from({ length: 8 }, () => callProvider(source, double.baseUrl)),
    );
    assert.deepEqual(results.map((r) => r.status), Array(8).fill(200));
    assert.deepEqual(idp.grants, ["authorization_code", "refresh_token"], "exactly one refresh");
    assert.deepEqual(
      new Set(double.authorizations),
      new Set([`Bearer ${idp.latestAccessToken()}`]),
    );
  } finally {
    await double.close();
    await idp.close();
  }
});

Deno.test("two processes with the same expiring token refresh it once: the second uses the first's tokens", async () => {
  const idp = await startIdentityProvider();
  const { store, home } = await tempStore();
  try {
    const first = await signInThroughBrowser(idp);
    await store.update("myidp", () => Promise.resolve({ next: first, result: undefined }));
    const clock = first.expires_at! - 1_000;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        `--allow-write=${home}`,
        "--allow-net=127.0.0.1",
        "--allow-env",
        new URL("./refresh_child.ts", import.meta.url).pathname,
        home,
        "myidp",
        String(clock),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const source = storedCredentialSource("myidp", store, { now: () => clock, signIn: "login" });
    const stdin = child.stdin.getWriter();
    await stdin.write(new Uint8Array([1]));
    await stdin.close();
    const [mine, output] = await Promise.all([source.get(), child.output()]);
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const theirs = new TextDecoder().decode(output.stdout).trim();
    assert.deepEqual(idp.grants, ["authorization_code", "refresh_token"], "one refresh in all");
    assert.equal(mine, idp.latestAccessToken());
    assert.equal(theirs, idp.latestAccessToken());
    assert.equal(await idp.accessTokenValid(mine), true);
  } finally {
    await idp.close();
  }
});

Deno.test("a refused refresh is a tool error that says to sign in again, and the store keeps the tokens", async () => {
  const idp = await startIdentityProvider();
  const { store } = await tempStore();
  try {
    const first = await signInThroughBrowser(idp);
    await store.update("myidp", () => Promise.resolve({ next: first, result: undefined }));
    const source = storedCredentialSource("myidp", store, {
      now: () => first.expires_at! + 1,
      signIn: "login",
    });
    idp.failRefreshes(1);
    await assert.rejects(source.get(), (error: Error) => {
      assert.ok(error instanceof SignInRequiredError);
      assert.equal(
        error.message,
        'The sign-in of "myidp" has ended: its server refused the refresh token ' +
          '(invalid_grant: grant revoked). Run "rune auth login myidp" to sign in again.',
      );
      assert.ok(!error.message.includes(first.refresh_token!));
      return true;
    });
    assert.deepEqual(await store.read("myidp"), first, "nothing is overwritten by a failure");
  } finally {
    await idp.close();
  }
});

Deno.test("a provider with nothing stored (signed out) says to run rune auth login", async () => {
  const { store } = await tempStore();
  const source = storedCredentialSource("myidp", store, { signIn: "login" });
  await assert.rejects(
    source.get(),
    (error: Error) =>
      error instanceof SignInRequiredError &&
      error.message === 'Provider "myidp" is not signed in: run "rune auth login myidp".',
  );
});

Deno.test("logout revokes the refresh and access tokens at the revocation endpoint", async () => {
  const idp = await startIdentityProvider();
  try {
    const credential = await signInThroughBrowser(idp);
    assert.equal(await idp.accessTokenValid(credential.access_token), true);
    assert.equal(await revokeTokens("myidp", credential), true);
    assert.deepEqual(idp.revocations, ["refresh_token", "access_token"]);
    assert.equal(await idp.accessTokenValid(credential.access_token), false);
    const { revocation_endpoint: _, ...without } = credential;
    assert.equal(await revokeTokens("myidp", without), false, "no endpoint: nothing to revoke");
  } finally {
    await idp.close();
  }
});
