/**
 * The registry turns the configuration, the environment and the flags into
 * providers: Ollama always (OLLAMA_HOST, --ollama-host), zero-config cloud
 * providers from their key variables, the file's providers, unique ids, and
 * keys that never show up in messages.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError } from "../../src/config/load.ts";
import { buildProviders } from "../../src/providers/registry.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("with no configuration there is one provider: Ollama where OLLAMA_HOST says", () => {
  const providers = buildProviders({ config: {}, env: env({ OLLAMA_HOST: "gpu-box:11500" }) });
  assert.deepEqual(providers.map((p) => [p.id, p.type, p.address]), [
    ["ollama", "ollama", "gpu-box:11500"],
  ]);
  const flagged = buildProviders({
    config: {},
    env: env({ OLLAMA_HOST: "gpu-box:11500" }),
    ollamaHost: ":9999",
  });
  assert.equal(flagged[0].address, "127.0.0.1:9999", "--ollama-host wins over OLLAMA_HOST");
});

Deno.test("the file adds providers after Ollama and may redefine the ollama id", () => {
  const providers = buildProviders({
    config: {
      providers: [
        { id: "gpu2", type: "ollama", base_url: "http://10.0.0.2:11434" },
        { id: "ollama", type: "ollama", base_url: "http://10.0.0.1:11434" },
      ],
    },
    env: env({ OLLAMA_HOST: "ignored:1" }),
  });
  assert.deepEqual(providers.map((p) => [p.id, p.address]), [
    ["gpu2", "10.0.0.2:11434"],
    ["ollama", "10.0.0.1:11434"],
  ]);
});

Deno.test("a provider id declared twice is a configuration error naming it", () => {
  assert.throws(
    () =>
      buildProviders({
        config: {
          providers: [{ id: "a", type: "ollama" }, { id: "a", type: "ollama" }],
        },
        configPath: "/etc/rune.json",
        env: env({}),
      }),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message === '/etc/rune.json: provider id "a" is declared twice: ids must be unique.',
  );
});

Deno.test("key variables add Anthropic and OpenAI; keys show only as where they come from", () => {
  const providers = buildProviders({
    config: {
      providers: [
        {
          id: "openrouter",
          type: "openai",
          base_url: "https://openrouter.ai/api/v1",
          api_key_env: "OPENROUTER_API_KEY",
        },
        { id: "lmstudio", type: "openai", base_url: "http://127.0.0.1:1234/v1" },
      ],
    },
    env: env({
      ANTHROPIC_API_KEY: "sk-ant-secret",
      ANTHROPIC_BASE_URL: "http://127.0.0.1:9/",
      OPENAI_API_KEY: "sk-secret",
      OPENROUTER_API_KEY: "sk-or-secret",
    }),
  });
  assert.deepEqual(
    providers.map((p) => [p.id, p.type, p.label, p.credentialSource]),
    [
      ["ollama", "ollama", "Ollama", undefined],
      ["anthropic", "anthropic", "Anthropic", "ANTHROPIC_API_KEY"],
      ["openai", "openai", "OpenAI", "OPENAI_API_KEY"],
      [
        "openrouter",
        "openai",
        "openrouter",
        'config entry "openrouter" (api_key_env OPENROUTER_API_KEY)',
      ],
      ["lmstudio", "openai", "lmstudio", undefined],
    ],
  );
  assert.equal(providers[1].capabilities().embeddings, false, "Anthropic has no embeddings");
  assert.equal(providers[2].capabilities().embeddings, true);
  const text = JSON.stringify(providers.map((p) => ({ ...p })));
  for (const secret of ["sk-ant-secret", "sk-secret", "sk-or-secret"]) {
    assert.equal(text.includes(secret), false, "no key in the providers' own fields");
  }
});

Deno.test("a configured api_key_env that is unset fails calls with advice, not silently keyless", async () => {
  const [, openrouter] = buildProviders({
    config: {
      providers: [{
        id: "openrouter",
        type: "openai",
        base_url: "https://openrouter.ai/api/v1",
        api_key_env: "OPENROUTER_API_KEY",
      }],
    },
    env: env({}),
  });
  await assert.rejects(
    openrouter.listModels(),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message ===
        'Provider "openrouter" has no API key: set OPENROUTER_API_KEY (and allow it with --allow-env=OPENROUTER_API_KEY), or store one with "rune auth set-key openrouter".',
  );
});
