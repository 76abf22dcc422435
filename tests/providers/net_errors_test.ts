/**
 * Each way of not reaching a provider gets its own message: a refused
 * connection, a DNS failure, a TLS failure, a connection reset, a redirect
 * loop (see hostile_upstream_test.ts), and a missing Deno permission,
 * which must never read like a dead server.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ProviderPermissionError, ProviderUnreachableError } from "../../src/providers/errors.ts";
import { createOllamaProvider } from "../../src/providers/ollama/mod.ts";
import { childEnv, MAIN, SERVE_PERMISSIONS } from "../stdio_client.ts";

/** A port nothing listens on. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("a refused connection says nothing listens and suggests ollama serve", async () => {
  const port = freePort();
  const ollama = createOllamaProvider({ baseUrl: `http://127.0.0.1:${port}` });
  await assert.rejects(ollama.listModels(), (error: Error) => {
    assert.ok(error instanceof ProviderUnreachableError);
    assert.equal(error.reason, "refused");
    assert.equal(
      error.message,
      `Cannot reach Ollama at 127.0.0.1:${port}: the connection was refused (tcp connect error: Connection refused (os error 111)): is "ollama serve" running? Set OLLAMA_HOST or --ollama-host if it listens elsewhere.`,
    );
    return true;
  });
});

Deno.test("a host name that does not resolve is a DNS failure", async () => {
  const ollama = createOllamaProvider({ baseUrl: "http://rune-test-host.invalid:11434" });
  await assert.rejects(ollama.listModels(), (error: Error) => {
    assert.ok(error instanceof ProviderUnreachableError);
    assert.equal(error.reason, "dns");
    assert.match(
      error.message,
      /^Cannot reach Ollama at rune-test-host\.invalid:11434: the host name does not resolve \(DNS lookup failed: dns error: .+\): check the spelling in OLLAMA_HOST or --ollama-host, and that this machine's DNS works\.$/,
    );
    return true;
  });
});

Deno.test("https to a plain HTTP server is a TLS failure", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("plain"),
  );
  try {
    const ollama = createOllamaProvider({ baseUrl: `https://127.0.0.1:${server.addr.port}` });
    await assert.rejects(ollama.listModels(), (error: Error) => {
      assert.ok(error instanceof ProviderUnreachableError);
      assert.equal(error.reason, "tls");
      assert.match(error.message, /the TLS handshake failed \(received corrupt message/);
      assert.match(error.message, /use http:\/\/ in OLLAMA_HOST or --ollama-host/);
      return true;
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("a server that closes the connection without replying is a reset", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const conn of listener) conn.close();
  })();
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    const ollama = createOllamaProvider({ baseUrl: `http://127.0.0.1:${port}` });
    await assert.rejects(ollama.listModels(), (error: Error) => {
      assert.ok(error instanceof ProviderUnreachableError);
      assert.equal(error.reason, "reset");
      assert.equal(
        error.message,
        `Ollama at 127.0.0.1:${port} closed the connection before replying (connection closed before message completed): it may have crashed or restarted, or a proxy dropped the request; check its log and retry.`,
      );
      return true;
    });
  } finally {
    listener.close();
    await accepting.catch(() => {});
  }
});

Deno.test("a missing --allow-net permission names the host and how to grant it", async () => {
  const ollama = createOllamaProvider({
    baseUrl: "http://127.0.0.2:11434",
    fetch: () => {
      throw new Deno.errors.NotCapable(
        'Requires net access to "127.0.0.2:11434", run again with the --allow-net flag',
      );
    },
  });
  await assert.rejects(ollama.listModels(), (error: Error) => {
    assert.ok(error instanceof ProviderPermissionError);
    assert.ok(!(error instanceof ProviderUnreachableError));
    assert.equal(error.host, "127.0.0.2:11434");
    assert.equal(
      error.message,
      'Rune is not allowed to connect to 127.0.0.2:11434 (Deno\'s --allow-net permission does not include it), so Ollama at 127.0.0.2:11434 was not contacted: add the host to --allow-net, e.g. "deno run --allow-net=127.0.0.1,localhost,127.0.0.2:11434 ...", or reinstall rune with that host in its --allow-net.',
    );
    return true;
  });
});

Deno.test("rune ai list run with the task's permissions reports a missing permission, not a dead Ollama", async () => {
  // 127.0.0.2 is loopback too, but outside the --allow-net list the tasks grant.
  const port = freePort();
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...SERVE_PERMISSIONS, MAIN, "ai", "list", "--ollama-host", `127.0.0.2:${port}`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv(),
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 1, stderr);
  assert.match(stderr, new RegExp(`Rune is not allowed to connect to 127\\.0\\.0\\.2:${port}`));
  assert.match(stderr, /--allow-net/);
  assert.doesNotMatch(stderr, /ollama serve/);
});
