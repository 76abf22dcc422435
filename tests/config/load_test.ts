/**
 * The configuration file: where it is found, JSON with comments, and one
 * clear error per mistake naming the file, line, key and what is expected;
 * and the published JSON Schema kept in step with the zod schema.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseConfig } from "../../src/config/load.ts";
import { UsageError } from "../../src/errors.ts";
import { SCHEMA_PATH, schemaText } from "../../scripts/config_schema.ts";

const GOOD = `{
  // Providers beyond the zero-config ones.
  "$schema": "https://example.test/config.schema.json",
  "providers": [
    { "id": "openrouter", "type": "openai", "base_url": "https://openrouter.ai/api/v1",
      "api_key_env": "OPENROUTER_API_KEY", "headers": { "X-Title": "Rune" }, },
    { "id": "lmstudio", "type": "openai", "base_url": "http://127.0.0.1:1234/v1",
      "models": ["qwen2.5-7b-instruct"] },
  ],
  "tools": "router",
}`;

function configError(text: string): string {
  try {
    parseConfig(text, "/etc/rune.json");
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.ok(error instanceof UsageError, "a bad config is a usage error (exit 2)");
    return error.message;
  }
  assert.fail("no error");
}

Deno.test("a config with comments and trailing commas is read as JSON", () => {
  assert.deepEqual(parseConfig(GOOD), {
    $schema: "https://example.test/config.schema.json",
    providers: [
      {
        id: "openrouter",
        type: "openai",
        base_url: "https://openrouter.ai/api/v1",
        api_key_env: "OPENROUTER_API_KEY",
        headers: { "X-Title": "Rune" },
      },
      {
        id: "lmstudio",
        type: "openai",
        base_url: "http://127.0.0.1:1234/v1",
        models: ["qwen2.5-7b-instruct"],
      },
    ],
    tools: "router",
  });
});

Deno.test("an unknown key is an error naming the file, line, column and key", () => {
  assert.equal(
    configError(
      `{\n  "providers": [\n    { "id": "x", "type": "openai", "api_key": "sk-secret" }\n  ]\n}`,
    ),
    '/etc/rune.json:3:36: providers[0].api_key: unknown key "api_key": check the spelling against the schema (schema/config.schema.json).',
  );
});

Deno.test("a wrong value is an error saying what is expected, without echoing values", () => {
  const message = configError(`{ "providers": [{ "id": "Open Router", "type": "openai" }] }`);
  assert.match(
    message,
    /^\/etc\/rune\.json:1:19: providers\[0\]\.id: expected a short lower-case id/,
  );
  assert.match(
    configError(`{ "providers": [{ "id": "a", "type": "gemini" }] }`),
    /^\/etc\/rune\.json:1:\d+: providers\[0\]\.type: Invalid option: expected one of "ollama"\|"anthropic"\|"openai"\.$/,
  );
  assert.match(
    configError(`{ "providers": [{ "id": "a", "type": "openai", "base_url": "ftp://x" }] }`),
    /providers\[0\]\.base_url: expected an http:\/\/ or https:\/\/ URL\.$/,
  );
});

Deno.test("malformed JSON is an error with its position", () => {
  assert.equal(
    configError(`{\n  "providers": [\n    { "id": "x" "type": "openai" }\n  ]\n}`),
    "/etc/rune.json:3:17: not valid JSON (CommaExpected).",
  );
});

Deno.test("the file is found through --config, RUNE_CONFIG, then the default path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rune-config-" });
  try {
    await Deno.mkdir(`${dir}/rune`);
    await Deno.writeTextFile(`${dir}/rune/config.json`, `{ "tools": "all" }`);
    await Deno.writeTextFile(`${dir}/other.json`, `{ "tools": "router" }`);
    const env = (vars: Record<string, string>) => (name: string) => vars[name];
    assert.deepEqual(loadConfig({ env: env({ XDG_CONFIG_HOME: dir }) }), {
      config: { tools: "all" },
      path: `${dir}/rune/config.json`,
    });
    assert.deepEqual(
      loadConfig({ env: env({ XDG_CONFIG_HOME: dir, RUNE_CONFIG: `${dir}/other.json` }) }),
      { config: { tools: "router" }, path: `${dir}/other.json` },
    );
    assert.deepEqual(
      loadConfig({
        file: `${dir}/rune/config.json`,
        env: env({ RUNE_CONFIG: `${dir}/other.json` }),
      }),
      { config: { tools: "all" }, path: `${dir}/rune/config.json` },
    );
    // No file at the default place is fine; a named file that is missing is not.
    assert.deepEqual(loadConfig({ env: env({ HOME: `${dir}/nobody` }) }), { config: {} });
    assert.throws(
      () => loadConfig({ file: `${dir}/missing.json`, env: env({}) }),
      (e: Error) =>
        e instanceof ConfigError &&
        e.message.startsWith(
          `Cannot read the configuration file ${dir}/missing.json (from --config): `,
        ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("schema/config.schema.json is the schema generated from src/config/schema.ts", async () => {
  assert.equal(
    await Deno.readTextFile(SCHEMA_PATH),
    schemaText(),
    'the published schema is out of date: run "deno task schema"',
  );
});
