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
