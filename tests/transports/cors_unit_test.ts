/**
 * Unit tests of `src/transports/cors.ts`: the exact preflight answer, which
 * requested headers it grants, and the headers added to `/mcp` responses.
 * (The browser's view of the same is `cors_test.ts`.)
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  MCP_EXPOSED_HEADERS,
  MCP_REQUEST_HEADERS,
  preflight,
  withCors,
} from "../../src/transports/cors.ts";

const ORIGIN = "http://127.0.0.1:5173";

const STANDARD =
  "Content-Type, Authorization, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID";

/** A preflight as a browser sends it, asking for `headers` (lowercase, as Chromium does). */
function preflightRequest(headers?: string): Request {
  return new Request("http://127.0.0.1:8484/mcp", {
    method: "OPTIONS",
    headers: {
      origin: ORIGIN,
      "access-control-request-method": "POST",
      ...(headers !== undefined && { "access-control-request-headers": headers }),
    },
  });
}

Deno.test("CORS grants the headers MCP clients send and exposes the ones they read", () => {
  assert.equal(MCP_REQUEST_HEADERS.join(", "), STANDARD);
  assert.deepEqual(MCP_EXPOSED_HEADERS, [
    "Mcp-Session-Id",
    "Mcp-Protocol-Version",
    "WWW-Authenticate",
  ]);
});

Deno.test("a preflight is answered 204 with exactly the CORS headers for the origin", async () => {
  const response = preflight(
    preflightRequest("content-type,mcp-method,mcp-name,mcp-protocol-version"),
    ORIGIN,
  );
  assert.equal(response.status, 204);
  assert.equal(await response.text(), "");
  assert.deepEqual([...response.headers], [
    ["access-control-allow-headers", STANDARD],
    ["access-control-allow-methods", "GET, POST, DELETE, OPTIONS"],
    ["access-control-allow-origin", ORIGIN],
    ["access-control-max-age", "600"],
    ["vary", "Origin, Access-Control-Request-Headers"],
  ]);
  // Rune never asks browsers to send cookies.
  assert.equal(response.headers.has("access-control-allow-credentials"), false);
});

Deno.test("a preflight without requested headers still grants the standard set", () => {
  const response = preflight(preflightRequest(), ORIGIN);
  assert.equal(response.headers.get("access-control-allow-headers"), STANDARD);
});

Deno.test("a preflight grants requested Mcp-Param-* headers and no others", () => {
  const response = preflight(
    preflightRequest(
      " mcp-param-region , X-Custom, Mcp-Param-Tenant-Id,cookie, mcp-session-id, x-mcp-param-a",
    ),
    ORIGIN,
  );
  assert.equal(
    response.headers.get("access-control-allow-headers"),
    `${STANDARD}, mcp-param-region, Mcp-Param-Tenant-Id`,
  );
});

Deno.test("withCors adds the origin, the exposed headers and Vary to a response", async () => {
  const original = new Response('{"ok":true}', {
    status: 202,
    headers: { "content-type": "application/json", vary: "Accept", "mcp-session-id": "s-1" },
  });
  const response = withCors(original, ORIGIN);
  assert.equal(response, original, "a mutable response is changed in place");
  assert.equal(response.status, 202);
  assert.deepEqual([...response.headers], [
    ["access-control-allow-origin", ORIGIN],
    ["access-control-expose-headers", "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate"],
    ["content-type", "application/json"],
    ["mcp-session-id", "s-1"],
    ["vary", "Accept, Origin"],
  ]);
  assert.equal(await response.text(), '{"ok":true}');
});

Deno.test("withCors leaves a response to a request without Origin untouched", () => {
  const original = new Response("x", { headers: { "content-type": "text/plain" } });
  const response = withCors(original, null);
  assert.equal(response, original);
  assert.deepEqual([...response.headers], [["content-type", "text/plain"]]);
});

Deno.test("withCors copies a response whose headers are immutable", () => {
  const original = Response.redirect("http://127.0.0.1:8484/elsewhere", 307);
  assert.throws(() => original.headers.set("x", "y"), TypeError);
  const response = withCors(original, ORIGIN);
  assert.notEqual(response, original);
  assert.equal(response.status, 307);
  assert.deepEqual([...response.headers], [
    ["access-control-allow-origin", ORIGIN],
    ["access-control-expose-headers", "Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate"],
    ["location", "http://127.0.0.1:8484/elsewhere"],
    ["vary", "Origin"],
  ]);
});
