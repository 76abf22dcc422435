/**
 * Test helper: a real `redis-server` (Debian's package, which `.ci/run`
 * installs) on a free loopback port, without persistence, stopped or killed
 * by the test. Tests that need it are skipped, with the reason printed,
 * only when the binary is missing.
 *
 * @module
 */

/** Where `redis-server` is, or undefined when it is not installed. */
export const REDIS_SERVER: string | undefined = (() => {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      const path = `${dir}/redis-server`;
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not there.
    }
  }
  return undefined;
})();

/** Why Redis tests are skipped, when they are. */
export const REDIS_SKIP_REASON = REDIS_SERVER === undefined
  ? "redis-server is not installed (apt-get install redis-server; .ci/run does it)"
  : undefined;

if (REDIS_SKIP_REASON) console.warn(`skipping the Redis tests: ${REDIS_SKIP_REASON}`);

/** A running Redis. */
export interface RedisServer {
  /** `redis://127.0.0.1:PORT`. */
  url: string;
  /** The port. */
  port: number;
  /** Kills it at once (SIGKILL), as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port (after `kill`). */
  restart(): Promise<void>;
  /** Stops it (idempotent). */
  stop(): Promise<void>;
}

/** A free loopback port (the listener is closed before Redis takes it). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function spawn(port: number): Promise<Deno.ChildProcess | undefined> {
  const child = new Deno.Command(REDIS_SERVER!, {
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  void child.stderr.cancel();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    if (text.includes("Ready to accept connections")) {
      // Keep draining so the pipe never fills.
      void (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      return child;
    }
  }
  await child.status;
  return undefined;
}

/** Starts `redis-server` on a free port and resolves once it accepts connections. */
export async function startRedis(): Promise<RedisServer> {
  let port = 0;
  let child: Deno.ChildProcess | undefined;
  // Another process may take the free port first: try a few.
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = freePort();
    child = await spawn(port);
  }
  if (!child) throw new Error("redis-server did not start");
  const end = async (signal: Deno.Signal) => {
    if (!child) return;
    const c = child;
    child = undefined;
    try {
      c.kill(signal);
    } catch {
      // Already gone.
    }
    await c.status;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill: () => end("SIGKILL"),
    async restart() {
      await end("SIGKILL");
      child = await spawn(port);
      if (!child) throw new Error(`redis-server did not start again on port ${port}`);
    },
    stop: () => end("SIGTERM"),
  };
}
