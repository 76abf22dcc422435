/**
 * Legal and malformed headers against the real daemon, on raw TCP so every
 * byte is the test's: each RFC 6455 spelling of `Sec-WebSocket-Protocol`
 * opens a working MCP session (101, answered `mcp`), malformed `Host`
 * values get 400 on every endpoint, and none of it leaves a 500, a stack
 * trace or a "request failed" line in the daemon's log.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startOllamaDouble } from "../ollama_double.ts";
import { maskedTextFrame, readHead, writeAll } from "../transports/raw_http.ts";
import { initializeRequest, spawnDaemon, within } from "./support.ts";
import { tokenFile } from "./token_file.ts";

const TOKEN = "spelling-token-1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const STEP_MS = 30_000;

/** Reads one unmasked server frame's text (RFC 6455 §5.2). */
async function readFrame(conn: Deno.Conn): Promise<string> {
  const exactly = async (n: number) => {
    const bytes = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const read = await conn.read(bytes.subarray(got));
      if (read === null) throw new Error("connection closed mid-frame");
      got += read;
    }
    return bytes;
  };
  const [, second] = await exactly(2);
  let length = second & 0x7f;
  if (length === 126) {
    const ext = await exactly(2);
    length = (ext[0] << 8) | ext[1];
  } else if (length === 127) {
    const ext = await exactly(8);
    length = new DataView(ext.buffer).getUint32(4);
  }
  return decoder.decode(await exactly(length));
}

/** Sends a raw upgrade to `/ws` offering `protocols` (as one header line) and returns the head. */
async function upgrade(
  port: number,
  protocols: string,
  extra: string[] = [],
): Promise<{ conn: Deno.Conn; status: number; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await writeAll(
    conn,
    encoder.encode(
      [
        "GET /ws HTTP/1.1",
        `Host: 127.0.0.1:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${key}`,
        "Sec-WebSocket-Version: 13",
        `Sec-WebSocket-Protocol: ${protocols}`,
        ...extra,
      ].join("\r\n") + "\r\n\r\n",
    ),
  );
  return { conn, ...(await readHead(conn)) };
}

/** Sends a raw request with the exact `Host` header line given (or none). */
async function withHost(
  port: number,
  path: string,
  hostLine: string | undefined,
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const lines = [`GET ${path} HTTP/1.1`, ...(hostLine === undefined ? [] : [hostLine])];
    await writeAll(conn, encoder.encode(lines.join("\r\n") + "\r\nConnection: close\r\n\r\n"));
    return (await readHead(conn)).status;
  } finally {
    conn.close();
  }
}

Deno.test("every spelling of the subprotocol list opens an MCP session; malformed Host values get 400; nothing is logged as a failure", async () => {
  const double = await startOllamaDouble();
  const tokens = await tokenFile([TOKEN, "spelling-token-2"]);
  const daemon = await spawnDaemon(double.host, {
    args: ["--token-file", tokens, "--log-level", "debug"],
  });
  try {
    for (
      const [protocols, extra] of [
        [`mcp,bearer.${TOKEN}`, []],
        [`bearer.${TOKEN}, mcp`, []],
        [`bearer.${TOKEN},mcp`, []],
        ["x,mcp", [`Authorization: Bearer ${TOKEN}`]],
        ["mcp , x", [`Authorization: Bearer ${TOKEN}`]],
        [`  mcp\t,\tbearer.${TOKEN}  `, []],
      ] as const
    ) {
      const { conn, status, head } = await upgrade(daemon.port, protocols, [...extra]);
      try {
        assert.equal(status, 101, `${JSON.stringify(protocols)}: ${head}`);
        assert.match(head, /\r\nsec-websocket-protocol: mcp\r\n/i, JSON.stringify(protocols));
        // The session works: an initialize gets its reply.
        await writeAll(conn, maskedTextFrame(JSON.stringify(initializeRequest("init"))));
        const reply = JSON.parse(await within(STEP_MS, "the initialize reply", readFrame(conn)));
        assert.equal(reply.id, "init", JSON.stringify(protocols));
        assert.equal(reply.result.serverInfo.name, "rune");
      } finally {
        conn.close();
      }
    }

    // Refusals are refusals, never 500s.
    for (
      const [protocols, extra, expected] of [
        ["x, y", [`Authorization: Bearer ${TOKEN}`], 400],
        [`bearer.${TOKEN}`, [], 400],
        ["mcp", [], 401],
        ["mcp,bearer.wrong", [], 401],
        [",,,", [`Authorization: Bearer ${TOKEN}`], 400],
      ] as const
    ) {
      const { conn, status } = await upgrade(daemon.port, protocols, [...extra]);
      conn.close();
      assert.equal(status, expected, JSON.stringify(protocols));
    }

    for (const path of ["/ws", "/mcp", "/healthz", "/"]) {
      for (
        const hostLine of [
          "Host: a b:1",
          "Host: a b",
          "Host:",
          "Host: %%%",
          "Host: [::1",
          "Host: localhost:99999",
          "Host: local host",
        ]
      ) {
        assert.equal(await withHost(daemon.port, path, hostLine), 400, `${path} ${hostLine}`);
      }
      // No Host at all: HTTP/1.1 requires one (RFC 9112 §3.2), the header guard answers 400.
      assert.equal(await withHost(daemon.port, path, undefined), 400, `${path} without Host`);
    }
  } finally {
    const status = await daemon.stop();
    await double.close();
    await Deno.remove(tokens);
    assert.equal(status.code, 0);
  }
  const log = daemon.stderr();
  assert.doesNotMatch(log, /request failed/);
  assert.doesNotMatch(log, /^\s+at /m, "no stack trace in the log");
  assert.doesNotMatch(log, /^rune error:/m);
});
