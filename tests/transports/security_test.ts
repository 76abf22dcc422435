/**
 * Request checks in isolation: `Sec-WebSocket-Protocol` parsed as the
 * RFC 6455 token list in every spelling, malformed and foreign `Host`
 * values, and authentication against several tokens.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ANONYMOUS,
  authenticate,
  checkHost,
  offeredProtocols,
  presentedToken,
  sameSecret,
} from "../../src/transports/security.ts";

function withHeaders(headers: [string, string][]): Request {
  return new Request("http://127.0.0.1:8484/ws", { headers: new Headers(headers) });
}

function protocols(value: string): string[] {
  return offeredProtocols(withHeaders([["sec-websocket-protocol", value]]));
}

Deno.test("offeredProtocols splits the subprotocol list at commas with any spacing", () => {
  assert.deepEqual(protocols("mcp,bearer.T"), ["mcp", "bearer.T"]);
  assert.deepEqual(protocols("x,mcp"), ["x", "mcp"]);
  assert.deepEqual(protocols("mcp , x"), ["mcp", "x"]);
  assert.deepEqual(protocols("bearer.T, mcp"), ["bearer.T", "mcp"]);
  assert.deepEqual(protocols("\tmcp\t,,  ,x "), ["mcp", "x"], "empty entries are dropped");
  assert.deepEqual(protocols("mcp"), ["mcp"]);
  assert.deepEqual(offeredProtocols(withHeaders([])), [], "no header, no protocols");
});

Deno.test("repeated Sec-WebSocket-Protocol headers are one list", () => {
  const request = withHeaders([
    ["sec-websocket-protocol", "x,bearer.T"],
    ["sec-websocket-protocol", "mcp"],
  ]);
  assert.deepEqual(offeredProtocols(request), ["x", "bearer.T", "mcp"]);
  assert.equal(presentedToken(request), "T");
});

Deno.test("the token is read from Authorization first, else from a bearer. subprotocol", () => {
  assert.equal(presentedToken(withHeaders([["authorization", "Bearer  abc "]])), "abc");
  assert.equal(presentedToken(withHeaders([["authorization", "bearer abc"]])), "abc");
  assert.equal(
    presentedToken(withHeaders([
      ["authorization", "Bearer from-header"],
      ["sec-websocket-protocol", "mcp,bearer.from-protocol"],
    ])),
    "from-header",
  );
  assert.equal(presentedToken(withHeaders([["sec-websocket-protocol", "mcp,bearer.xyz"]])), "xyz");
  assert.equal(presentedToken(withHeaders([["authorization", "Basic dXNlcg=="]])), undefined);
});

const LOOPBACK = { hostname: "127.0.0.1" };

function hostCheck(host: string | undefined, options: { hostname: string } = LOOPBACK) {
  const headers: [string, string][] = host === undefined ? [] : [["host", host]];
  return checkHost(withHeaders(headers), options);
}

const MALFORMED = {
  status: 400,
  message: "Bad Request: the Host header is not a valid host[:port].",
};

Deno.test("a malformed Host is refused with 400 on any bind address", () => {
  for (
    const host of ["a b:1", "127.0.0.1 :8484", "", "[::1", "localhost:99999", "host:port", "%%%"]
  ) {
    assert.deepEqual(hostCheck(host), MALFORMED, JSON.stringify(host));
    assert.deepEqual(hostCheck(host, { hostname: "0.0.0.0" }), MALFORMED, JSON.stringify(host));
  }
});

Deno.test("on loopback, a foreign Host is refused with 403 and local ones pass", () => {
  for (const host of ["127.0.0.1:8484", "localhost", "[::1]:1", "127.1.2.3"]) {
    assert.equal(hostCheck(host), undefined, host);
  }
  for (const host of ["evil.example", "127.0.0.1@evil.example", "evil.example#@127.0.0.1"]) {
    assert.deepEqual(hostCheck(host), {
      status: 403,
      message: `Host ${
        JSON.stringify(host)
      } is not this machine: refused to prevent DNS rebinding.`,
    });
  }
  // Without a Host header (HTTP/2 sends :authority instead), the request URL's host is checked.
  assert.equal(hostCheck(undefined), undefined, "no Host, a loopback :authority");
  const foreign = new Request("http://evil.example/ws");
  assert.equal(checkHost(foreign, LOOPBACK)?.status, 403, "no Host, a foreign :authority");
  assert.equal(hostCheck("evil.example", { hostname: "0.0.0.0" }), undefined);
});

const TOKENS = ["alpha-token", "beta-token", "gamma-token"];

Deno.test("authenticate names the configured token presented: token:N", () => {
  const security = { hostname: "127.0.0.1", tokens: TOKENS };
  const bearer = (token: string) => withHeaders([["authorization", `Bearer ${token}`]]);
  assert.deepEqual(authenticate(bearer("alpha-token"), security), { id: "token:1" });
  assert.deepEqual(authenticate(bearer("beta-token"), security), { id: "token:2" });
  assert.deepEqual(
    authenticate(
      withHeaders([["sec-websocket-protocol", "mcp,bearer.gamma-token"]]),
      security,
    ),
    { id: "token:3" },
  );
  assert.deepEqual(authenticate(bearer("delta-token"), security), {
    status: 401,
    message: "The bearer token is wrong.",
  });
  assert.deepEqual(authenticate(bearer("alpha-toke"), security), {
    status: 401,
    message: "The bearer token is wrong.",
  });
  assert.deepEqual(authenticate(withHeaders([]), security), {
    status: 401,
    message:
      "A bearer token is required: send Authorization: Bearer TOKEN (browsers: subprotocol bearer.TOKEN).",
  });
});

Deno.test("without configured tokens every request is anonymous", () => {
  assert.equal(authenticate(withHeaders([]), { hostname: "127.0.0.1" }), ANONYMOUS);
  assert.equal(
    authenticate(withHeaders([["authorization", "Bearer x"]]), {
      hostname: "127.0.0.1",
      tokens: [],
    }),
    ANONYMOUS,
  );
});

Deno.test("sameSecret compares whole secrets, synchronously", () => {
  assert.equal(sameSecret("abc", "abc"), true);
  assert.equal(sameSecret("abc", "abd"), false);
  assert.equal(sameSecret("abc", "abcd"), false, "a prefix of the secret");
  assert.equal(sameSecret("abcd", "abc"), false, "the secret plus more");
  assert.equal(sameSecret("", "abc"), false);
  assert.equal(sameSecret("", ""), true);
  // Lengths that differ by a multiple of 256 must not cancel out.
  assert.equal(sameSecret("a".repeat(300), "a".repeat(44)), false);
  assert.equal(sameSecret("é", "é"), true, "compared as UTF-8 bytes");
  assert.equal(sameSecret("é", "e"), false);
});
