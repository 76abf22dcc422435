/**
 * The registry's `storedCredential` hook: a key stored with `rune auth
 * set-key` enables a zero-config provider and reaches it (proved by a
 * provider double that accepts only that key), a key variable wins over the
 * store, providers with an `auth` block get a source before anyone signs
 * in, keyless providers get none, and a damaged store only affects the
 * providers that use it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SignInRequiredError, StoreUnreadableError } from "../../src/credentials/errors.ts";
import { storedCredentials } from "../../src/credentials/sources.ts";
import { openStore, STORE_FILE } from "../../src/credentials/store.ts";
import type { Config } from "../../src/config/schema.ts";
import type { CredentialSource } from "../../src/providers/credential.ts";
import { buildProviders, REGISTRY, type RegistryEntry } from "../../src/providers/registry.ts";
import { createFakeProvider } from "../fake_provider.ts";
import { callProvider, startProviderDouble } from "./provider_double.ts";

const KEY = "sk-stored-key-for-the-registry-test-0123456789";

/**
 * Registers a stand-in "openai" type for the duration of `fn` (this branch
 * has no OpenAI provider yet): it lists models through the double with its
 * credential, as the real provider does.
 */
async function withOpenAiType(
  baseUrl: string,
  fn: (created: Map<string, CredentialSource | undefined>) => Promise<void>,
): Promise<void> {
  const created = new Map<string, CredentialSource | undefined>();
  const saved = REGISTRY.openai;
  const entry: RegistryEntry = {
    type: "openai",
    label: "OpenAI-compatible",
    defaultBaseUrl: baseUrl,
    keyEnv: "OPENAI_API_KEY",
    needsKey: false,
    create(resolved) {
      created.set(resolved.id, resolved.credential);
      return {
        ...createFakeProvider({ id: resolved.id }),
        type: "openai",
        listModels: async () => {
          const reply = await callProvider(resolved.credential!, resolved.baseUrl);
          if (reply.status !== 200) throw new Error(`HTTP ${reply.status}`);
          return reply.models.map((name) => ({ name }));
        },
      };
    },
  };
  REGISTRY.openai = entry;
  try {
    await fn(created);
  } finally {
    if (saved) REGISTRY.openai = saved;
    else delete REGISTRY.openai;
  }
}

async function homeWithKey(): Promise<string> {
  const home = await Deno.makeTempDir({ prefix: "rune-hook-" });
  await openStore({ home, env: () => undefined, keys: { keyring: false } }).update(
    "openai",
    () =>
      Promise.resolve({
        next: { kind: "api-key", key: KEY, via: "set-key", saved_at: "2026-01-01T00:00:00Z" },
        result: undefined,
      }),
  );
  return home;
}

function build(config: Config, vars: Record<string, string>) {
  const env = (name: string) => vars[name];
  return buildProviders({
    config,
    env,
    storedCredential: storedCredentials({ config, env, store: { keys: { keyring: false } } }),
  });
}

Deno.test("a key stored with rune auth set-key enables the zero-config provider and reaches it", async () => {
  const double = startProviderDouble((token) => token === KEY);
  try {
    const home = await homeWithKey();
    await withOpenAiType(double.baseUrl, async () => {
      const providers = build({}, { RUNE_HOME: home });
      assert.deepEqual(providers.map((p) => [p.id, p.credentialSource]), [
        ["ollama", undefined],
        ["openai", 'the credential store ("openai")'],
      ]);
      assert.deepEqual(await providers[1].listModels(), [{ name: "gpt-test" }]);
      assert.deepEqual(double.authorizations, [`Bearer ${KEY}`]);
    });
  } finally {
    await double.close();
  }
});

Deno.test("a key in the provider's variable wins over the stored one", async () => {
  const double = startProviderDouble((token) => token === "sk-from-env");
  try {
    const home = await homeWithKey();
    await withOpenAiType(double.baseUrl, async () => {
      const providers = build({}, { RUNE_HOME: home, OPENAI_API_KEY: "sk-from-env" });
      assert.equal(providers[1].credentialSource, "OPENAI_API_KEY");
      assert.deepEqual(await providers[1].listModels(), [{ name: "gpt-test" }]);
    });
  } finally {
    await double.close();
  }
});

Deno.test("providers that sign in get a store source before sign-in; keyless ones get none", async () => {
  const home = await Deno.makeTempDir({ prefix: "rune-hook-" });
  await withOpenAiType("http://127.0.0.1:9/v1", async (created) => {
    build({
      providers: [
        {
          id: "myidp",
          type: "openai",
          auth: { type: "oauth", issuer: "http://127.0.0.1:9", client_id: "rune" },
        },
        { id: "lmstudio", type: "openai", base_url: "http://127.0.0.1:1234/v1" },
      ],
    }, { RUNE_HOME: home });
    assert.equal(created.get("lmstudio"), undefined);
    await assert.rejects(
      created.get("myidp")!.get(),
      (e: Error) =>
        e instanceof SignInRequiredError &&
        e.message === 'Provider "myidp" is not signed in: run "rune auth login myidp".',
    );
  });
});

Deno.test("a damaged store stops only the providers that use it, with the store's own message", async () => {
  const home = await homeWithKey();
  await Deno.writeTextFile(`${home}/${STORE_FILE}`, "{ damaged");
  await withOpenAiType("http://127.0.0.1:9/v1", async (created) => {
    const providers = build({
      providers: [
        {
          id: "myidp",
          type: "openai",
          auth: { type: "oauth", issuer: "http://127.0.0.1:9", client_id: "rune" },
        },
      ],
    }, { RUNE_HOME: home });
    assert.deepEqual(providers.map((p) => p.id), ["ollama", "myidp"]);
    await assert.rejects(
      created.get("myidp")!.get(),
      (e: Error) => e instanceof StoreUnreadableError && e.problem === "corrupt",
    );
  });
});
