/**
 * OpenRouter's PKCE sign-in against a double of its two endpoints as its
 * documentation describes them: `/auth` redirects to the `callback_url`
 * with a `code`; `POST /api/v1/auth/keys` with `{ code, code_verifier,
 * code_challenge_method }` answers `{ key }` only when the verifier hashes
 * to the challenge (403 otherwise).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { SignInError } from "../../src/credentials/errors.ts";
import { signInOpenRouter } from "../../src/credentials/openrouter.ts";

const ISSUED_KEY = "sk-or-v1-issued-by-the-double-0123456789";

interface OpenRouterDouble {
  origin: string;
  exchanges: Record<string, unknown>[];
  close(): Promise<void>;
}

function startOpenRouterDouble(options: { refuse?: boolean } = {}): OpenRouterDouble {
  const challenges = new Map<string, string>();
  const exchanges: Record<string, unknown>[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    if (request.method === "GET" && url.pathname === "/auth") {
      // The user signs in and authorises; OpenRouter sends the browser back with a code.
      const code = crypto.randomUUID();
      challenges.set(code, url.searchParams.get("code_challenge") ?? "");
      const callback = new URL(url.searchParams.get("callback_url")!);
      callback.searchParams.set("code", code);
      return new Response(null, { status: 302, headers: { location: callback.href } });
    }
    if (request.method === "POST" && url.pathname === "/api/v1/auth/keys") {
      const body = await request.json();
      exchanges.push(body);
      const digest = await crypto.subtle.digest(
        "SHA-256",
        new TextEncoder().encode(body.code_verifier),
      );
      const expected = Buffer.from(digest).toString("base64url");
      if (
        options.refuse || body.code_challenge_method !== "S256" ||
        challenges.get(body.code) !== expected
      ) {
        return Response.json({ error: { message: "Invalid code or code_verifier", code: 403 } }, {
          status: 403,
        });
      }
      challenges.delete(body.code);
      return Response.json({ key: ISSUED_KEY, user_id: "user_123" });
    }
    return new Response("not found", { status: 404 });
  });
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    exchanges,
    close: () => server.shutdown(),
  };
}

/** Follows redirects like a browser: the double's /auth, then the loopback callback. */
async function browse(url: string): Promise<Response> {
  let next = url;
  for (let hop = 0; hop < 5; hop++) {
    const response = await fetch(next, { redirect: "manual" });
    const location = response.headers.get("location");
    if (!location) return response;
    await response.body?.cancel();
    // "localhost" as OpenRouter's documentation shows; the test resolves it to the IPv4 loopback.
    next = location.replace("://localhost:", "://127.0.0.1:");
  }
  throw new Error("too many redirects");
}

Deno.test("OpenRouter's PKCE sign-in hands back a key that is stored as an API key", async () => {
  const double = startOpenRouterDouble();
  try {
    let shown = "";
    let page: Promise<Response> | undefined;
    const credential = await signInOpenRouter("openrouter", {
      type: "openrouter-pkce",
      authorization_endpoint: `${double.origin}/auth`,
      token_endpoint: `${double.origin}/api/v1/auth/keys`,
    }, {
      show(url) {
        shown = url;
        page = browse(url);
      },
    });
    const response = await page!;
    assert.equal(response.status, 200);
    assert.match(await response.text(), /Rune is signed in/);
    const url = new URL(shown);
    assert.equal(url.origin + url.pathname, `${double.origin}/auth`);
    assert.match(url.searchParams.get("callback_url")!, /^http:\/\/localhost:\d+\/callback$/);
    assert.equal(url.searchParams.get("code_challenge_method"), "S256");
    assert.equal(credential.kind, "api-key");
    assert.equal(credential.key, ISSUED_KEY);
    assert.equal(credential.via, "openrouter-pkce");
    assert.equal(double.exchanges.length, 1);
    assert.deepEqual(Object.keys(double.exchanges[0]), [
      "code",
      "code_verifier",
      "code_challenge_method",
    ]);
  } finally {
    await double.close();
  }
});

Deno.test("a refused OpenRouter exchange says what went wrong and what to run", async () => {
  const double = startOpenRouterDouble({ refuse: true });
  try {
    let page: Promise<Response> | undefined;
    await assert.rejects(
      signInOpenRouter("openrouter", {
        type: "openrouter-pkce",
        authorization_endpoint: `${double.origin}/auth`,
        token_endpoint: `${double.origin}/api/v1/auth/keys`,
      }, {
        show(url) {
          page = browse(url);
        },
      }),
      (error: Error) =>
        error instanceof SignInError &&
        error.message ===
          'OpenRouter refused the key exchange for "openrouter": the code or code verifier was ' +
            'refused (expired, or used already). Run "rune auth login openrouter" again.',
    );
    await (await page!).body?.cancel();
  } finally {
    await double.close();
  }
});

Deno.test("OpenRouter endpoints must be https unless on loopback", async () => {
  await assert.rejects(
    signInOpenRouter("openrouter", {
      type: "openrouter-pkce",
      authorization_endpoint: "http://openrouter.example/auth",
    }, { show() {} }),
    (error: Error) =>
      error.message ===
        'Provider "openrouter": http://openrouter.example/auth is not https:// (plain http:// ' +
          "only on loopback addresses).",
  );
});
