/**
 * The loopback redirect receiver of a native app's sign-in (RFC 8252
 * section 7.3): an HTTP server on `127.0.0.1` and a free port chosen by the
 * system, which waits for the browser's redirect to `/callback`, hands its
 * URL to the caller's check, answers the browser with a short page, and
 * settles once. Other paths get 404; requests after the first callback get
 * 410. The server binds loopback only, so nothing off the machine can
 * reach it.
 *
 * @module
 */

/** What the caller's check decides about a redirect. */
export type CallbackVerdict<T> = { value: T } | { error: Error };

/** Options of {@linkcode startLoopback}. */
export interface LoopbackOptions<T> {
  /** Checks the redirect's URL (state, error parameters); runs once, on the first callback. */
  check(url: URL): CallbackVerdict<T>;
  /**
   * The host name in the redirect URI: `127.0.0.1` (RFC 8252's advice), or
   * `localhost` for services that accept only that (OpenRouter); then
   * `[::1]` is bound too when it can be, on the same port. @default "127.0.0.1"
   */
  redirectHost?: "127.0.0.1" | "localhost";
}

/** A running receiver. */
export interface Loopback<T> {
  /** The redirect URI to register in the authorization request. */
  redirectUri: string;
  /** Settles with the first callback's verdict. */
  result: Promise<T>;
  /** Stops listening (idempotent). */
  close(): Promise<void>;
}

/** The callback path. */
export const CALLBACK_PATH = "/callback";

/** Starts the receiver. */
export function startLoopback<T>(options: LoopbackOptions<T>): Loopback<T> {
  let settle!: (verdict: CallbackVerdict<T>) => void;
  const result = new Promise<T>((resolve, reject) => {
    settle = (verdict) => "value" in verdict ? resolve(verdict.value) : reject(verdict.error);
  });
  // Nobody may be awaiting yet; an unhandled rejection must not end the process.
  result.catch(() => {});
  let done = false;
  const handler = (request: Request): Response => {
    const url = new URL(request.url);
    if (url.pathname !== CALLBACK_PATH || request.method !== "GET") {
      return page(404, "Not found", "This address only receives Rune's sign-in redirect.");
    }
    if (done) {
      return page(410, "Already done", "This sign-in has finished; you can close this tab.");
    }
    done = true;
    let verdict: CallbackVerdict<T>;
    try {
      verdict = options.check(url);
    } catch (error) {
      verdict = { error: error as Error };
    }
    settle(verdict);
    return "value" in verdict
      ? page(
        200,
        "Signed in",
        "Rune is signed in. You can close this tab and return to the terminal.",
      )
      : page(400, "Sign-in failed", `${verdict.error.message} See the terminal for details.`);
  };
  const servers: Deno.HttpServer[] = [
    Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler),
  ];
  const port = (servers[0].addr as Deno.NetAddr).port;
  const host = options.redirectHost ?? "127.0.0.1";
  if (host === "localhost") {
    // Browsers may resolve localhost to ::1 first; listen there too when the system lets us.
    try {
      servers.push(Deno.serve({ hostname: "::1", port, onListen() {} }, handler));
    } catch {
      // No IPv6 loopback, or the port is taken there: 127.0.0.1 alone.
    }
  }
  let closed: Promise<void> | undefined;
  return {
    redirectUri: `http://${host}:${port}${CALLBACK_PATH}`,
    result,
    close() {
      closed ??= Promise.all(servers.map((server) => server.shutdown())).then(() => {});
      return closed;
    },
  };
}

function page(status: number, title: string, text: string): Response {
  const escape = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const html = `<!doctype html><meta charset="utf-8"><title>Rune: ${escape(title)}</title>` +
    `<body style="font-family:sans-serif;margin:3em"><h1>${escape(title)}</h1>` +
    `<p>${escape(text)}</p></body>`;
  return new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "referrer-policy": "no-referrer",
    },
  });
}

/** Waits for `promise` (the callback), a deadline and an abort signal, whichever comes first. */
export function waitFor<T>(
  promise: Promise<T>,
  ms: number,
  signal: AbortSignal | undefined,
  timedOut: () => Error,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => finish(() => reject(timedOut())), ms);
    const aborted = () => finish(() => reject(signal?.reason));
    signal?.addEventListener("abort", aborted, { once: true });
    function finish(then: () => void) {
      clearTimeout(timer);
      signal?.removeEventListener("abort", aborted);
      then();
    }
    promise.then((value) => finish(() => resolve(value)), (error) => finish(() => reject(error)));
  });
}
