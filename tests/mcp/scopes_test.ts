/**
 * OAuth scopes per tool: the suffix table, the scope claim, the scopes a
 * batch of calls lacks, and that every tool Rune registers falls in a
 * scope (an unmapped tool would silently vanish for OAuth clients).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/client";
import { InMemoryTransport } from "@modelcontextprotocol/server";
import { serveConnection } from "../../src/mcp/connection.ts";
import {
  missingScopes,
  parseScopeClaim,
  scopesOf,
  toolAllowed,
  toolScope,
} from "../../src/mcp/scopes.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import { createFakeProvider } from "../fake_provider.ts";

Deno.test("tools fall in scopes by the end of their name", () => {
  const table: [string, string | undefined][] = [
    ["ai_ollama_list_models", "rune:models"],
    ["ai_list_models", "rune:models"],
    ["ai_ollama_show", "rune:models"],
    ["ai_ollama_ps", "rune:models"],
    ["ai_ollama_generate", "rune:generate"],
    ["ai_chat", "rune:generate"],
    ["ai_openrouter_embed", "rune:generate"],
    ["ai_compare", "rune:generate"],
    ["ai_ollama_pull", "rune:manage"],
    ["ai_ollama_delete", "rune:manage"],
    // A provider id that looks like an action does not change the tool's action.
    ["ai_show_generate", "rune:generate"],
    ["ai_pull_list_models", "rune:models"],
    ["ai_ollama_unknown", undefined],
  ];
  for (const [name, scope] of table) assert.equal(toolScope(name), scope, name);
  assert.equal(toolAllowed("ai_ollama_pull", ["rune:models", "rune:generate"]), false);
  assert.equal(toolAllowed("ai_ollama_pull", ["rune:manage"]), true);
  assert.equal(
    toolAllowed("ai_ollama_unknown", ["rune:models", "rune:generate", "rune:manage"]),
    false,
  );
  assert.equal(toolAllowed("ai_ollama_unknown", undefined), true, "unrestricted serves everything");
});

Deno.test("the scope claim is a space-separated string or an array", () => {
  assert.deepEqual(parseScopeClaim("openid  rune:models rune:generate"), [
    "openid",
    "rune:models",
    "rune:generate",
  ]);
  assert.deepEqual(parseScopeClaim(["rune:models", 7, "rune:manage"]), [
    "rune:models",
    "rune:manage",
  ]);
  assert.deepEqual(parseScopeClaim(undefined), []);
  assert.deepEqual(parseScopeClaim({ scope: "rune:models" }), []);
});

Deno.test("a batch's missing scopes come all at once, in a fixed order", () => {
  const call = (name: string, id: number) => ({
    jsonrpc: "2.0",
    id,
    method: "tools/call",
    params: { name, arguments: {} },
  });
  assert.deepEqual(
    missingScopes(
      [call("ai_ollama_pull", 1), call("ai_chat", 2), call("ai_ollama_delete", 3)],
      ["rune:models"],
    ),
    ["rune:generate", "rune:manage"],
  );
  assert.deepEqual(missingScopes(call("ai_chat", 1), ["rune:generate"]), []);
  assert.deepEqual(missingScopes(call("no_such_tool", 1), []), [], "left to the server");
  assert.deepEqual(
    missingScopes({ jsonrpc: "2.0", id: 1, method: "tools/list" }, []),
    [],
    "listing needs no scope",
  );
  assert.deepEqual(missingScopes("garbage", []), []);
});

Deno.test("only OAuth identities restrict an instance's tools", () => {
  assert.equal(scopesOf({}), undefined);
  assert.equal(
    scopesOf({ authInfo: { scopes: ["rune:models"], extra: { scoped: false } } }),
    undefined,
  );
  assert.deepEqual(
    scopesOf({ authInfo: { scopes: ["rune:models"], extra: { scoped: true } } }),
    ["rune:models"],
  );
});

Deno.test("every tool Rune registers falls in a scope", async () => {
  const providers = [createFakeProvider({ id: "ollama" }), createFakeProvider({ id: "cloud" })];
  const server = createMcpServer({ providers, tools: "all" });
  const [clientEnd, serverEnd] = InMemoryTransport.createLinkedPair();
  const connection = serveConnection(serverEnd, () => server);
  const client = new Client({ name: "scopes-test", version: "1" });
  try {
    await client.connect(clientEnd);
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(names.length >= 9, names.join(", "));
    for (const name of names) assert.notEqual(toolScope(name), undefined, name);
  } finally {
    await client.close();
    await connection.close();
  }
});
