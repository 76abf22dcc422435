/**
 * Unit tests of OLLAMA_HOST parsing, following the official clients' rules.
 *
 * @module
 */

import assert from "node:assert/strict";
import { UsageError } from "../../src/errors.ts";
import { displayAddress, parseOllamaHost } from "../../src/providers/ollama_host.ts";

const cases: [string | undefined, string][] = [
  [undefined, "http://127.0.0.1:11434"],
  ["", "http://127.0.0.1:11434"],
  ["  ", "http://127.0.0.1:11434"],
  ["example.com", "http://example.com:11434"],
  ["example.com:56789", "http://example.com:56789"],
  [":56789", "http://127.0.0.1:56789"],
  ["0.0.0.0", "http://127.0.0.1:11434"],
  ["0.0.0.0:11500", "http://127.0.0.1:11500"],
  ["[::]:11500", "http://[::1]:11500"],
  ["[::1]", "http://[::1]:11434"],
  ["http://example.com", "http://example.com:80"],
  ["https://example.com", "https://example.com:443"],
  ["https://example.com:8443", "https://example.com:8443"],
  ["http://example.com:11434/", "http://example.com:11434"],
  ["http://example.com/ollama/", "http://example.com:80/ollama"],
  ["http://user:pw@example.com:1234", "http://user:pw@example.com:1234"],
];

for (const [input, expected] of cases) {
  Deno.test(`parseOllamaHost(${JSON.stringify(input)}) is ${expected}`, () => {
    assert.equal(parseOllamaHost(input), expected);
  });
}

Deno.test("parseOllamaHost() refuses other schemes and garbage with a usage error", () => {
  assert.throws(() => parseOllamaHost("ftp://example.com"), UsageError);
  assert.throws(() => parseOllamaHost("http://exa mple.com"), UsageError);
});

Deno.test("displayAddress() shows host and port without credentials", () => {
  assert.equal(displayAddress("http://user:pw@example.com:1234"), "example.com:1234");
  assert.equal(displayAddress("http://127.0.0.1:11434"), "127.0.0.1:11434");
});
