/**
 * The Ollama double against something it did not write: the request and
 * reply examples of Ollama's API documentation
 * (`tests/fixtures/ollama/api_docs_examples.json`). Each documented
 * request is sent to the double, and its reply must have the documented
 * field names, in the documented order, with the documented value types;
 * the few places where the examples and Ollama's Go structs disagree are
 * listed in the fixture with the reason, and each must be observed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type OllamaDouble, startOllamaDouble } from "./ollama_double.ts";

interface Deviations {
  /** Paths the double writes and the example leaves out. */
  extra?: Record<string, string>;
  /** Paths the example writes and the double (as Go) leaves out. */
  missing?: Record<string, string>;
  /** Objects whose key order in the example differs from Go's struct order. */
  order?: Record<string, string>;
}

interface Example {
  section: string;
  method: "GET" | "POST";
  path: string;
  request?: Record<string, unknown>;
  reply?: unknown;
  lines?: unknown[];
  deviations?: Deviations;
}

const fixture = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/ollama/api_docs_examples.json", import.meta.url)),
) as { examples: Example[] };

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/**
 * Compares `actual` with the documented `doc` at `path`; returns the
 * deviations seen and throws on any other difference.
 */
function compare(
  doc: unknown,
  actual: unknown,
  path: string,
  allowed: Deviations,
  seen: Set<string>,
) {
  assert.equal(kind(actual), kind(doc), `${path}: a ${kind(doc)} as documented`);
  if (Array.isArray(doc) && Array.isArray(actual)) {
    if (doc.length === 0) return;
    assert.ok(actual.length > 0, `${path}: not empty, as documented`);
    for (const item of actual) compare(doc[0], item, `${path}[]`, allowed, seen);
    return;
  }
  if (kind(doc) !== "object") return;
  const docKeys = Object.keys(doc as object);
  const actualKeys = Object.keys(actual as object);
  for (const key of docKeys.filter((k) => !actualKeys.includes(k))) {
    const at = `${path}.${key}`;
    assert.ok(allowed.missing?.[at], `${at}: documented but not written by the double`);
    seen.add(at);
  }
  for (const key of actualKeys.filter((k) => !docKeys.includes(k))) {
    const at = `${path}.${key}`;
    assert.ok(allowed.extra?.[at], `${at}: written by the double but not documented`);
    seen.add(at);
  }
  const common = docKeys.filter((k) => actualKeys.includes(k));
  const order = actualKeys.filter((k) => docKeys.includes(k));
  if (allowed.order?.[path]) {
    assert.notDeepEqual(order, common, `${path}: the documented order differs from Go's`);
    seen.add(path);
  } else {
    assert.deepEqual(order, common, `${path}: fields in the documented order`);
  }
  for (const key of common) {
    compare(
      (doc as Record<string, unknown>)[key],
      (actual as Record<string, unknown>)[key],
      `${path}.${key}`,
      allowed,
      seen,
    );
  }
}

async function send(double: OllamaDouble, example: Example): Promise<Response> {
  return await fetch(`${double.url}${example.path}`, {
    method: example.method,
    ...(example.request && { body: JSON.stringify(example.request) }),
  });
}

for (const example of fixture.examples) {
  Deno.test(`double matches Ollama's documented example "${example.section}"`, async () => {
    const double = await startOllamaDouble();
    try {
      // The documented /api/ps lists a loaded model: load one first.
      if (example.path === "/api/ps") {
        await (await fetch(`${double.url}/api/generate`, {
          method: "POST",
          body: JSON.stringify({ model: "llama3.2", prompt: "x", stream: false }),
        })).body?.cancel();
      }
      const response = await send(double, example);
      assert.equal(response.status, 200);
      const allowed = example.deviations ?? {};
      const seen = new Set<string>();
      if (example.lines) {
        assert.equal(response.headers.get("content-type"), "application/x-ndjson");
        const lines = (await response.text()).trimEnd().split("\n").map((l) => JSON.parse(l));
        // The examples show the first line and the final one.
        compare(example.lines[0], lines[0], "lines[0]", allowed, seen);
        compare(example.lines[1], lines.at(-1), "lines[1]", allowed, seen);
        assert.equal(lines.at(-1).done, true);
      } else {
        assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
        compare(example.reply, await response.json(), "reply", allowed, seen);
      }
      const listed = [
        ...Object.keys(allowed.extra ?? {}),
        ...Object.keys(allowed.missing ?? {}),
        ...Object.keys(allowed.order ?? {}),
      ];
      assert.deepEqual(listed.filter((path) => !seen.has(path)), [], "every listed deviation seen");
    } finally {
      await double.close();
    }
  });
}

Deno.test("double's tool call for the documented weather question names the documented tool and argument", async () => {
  const example = fixture.examples.find((e) =>
    e.section === "Chat request (No streaming, with tools)"
  )!;
  const double = await startOllamaDouble();
  try {
    const body = await (await send(double, example)).json();
    const documented = (example.reply as { message: { tool_calls: unknown[] } }).message.tool_calls;
    assert.deepEqual(
      body.message.tool_calls.map((c: { function: { name: string; arguments: unknown } }) => ({
        function: { name: c.function.name, arguments: c.function.arguments },
      })),
      // The double echoes the city as written ("tokyo"); the documented model capitalised it.
      JSON.parse(JSON.stringify(documented).replace("Tokyo", "tokyo")),
    );
  } finally {
    await double.close();
  }
});
