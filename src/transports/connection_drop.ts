/**
 * The error a response body ends with when Rune wants Deno to drop the
 * connection: a handler cannot close one, but a response body that errors
 * makes Deno abort it. Used for slow request bodies (408, see
 * `request_body.ts`) and for clients cut off for not reading their response
 * (see `metered_body.ts`). Deno reports the error to `Deno.serve`'s
 * `onError`, which must recognise it with {@linkcode isConnectionDropped}
 * and log nothing: it is no failure.
 *
 * @module
 */

/** Ends a response body on purpose so that Deno drops its connection. */
export class ConnectionDropped extends Error {
  /** `reason` says why, for anyone who reads the error. */
  constructor(reason: string) {
    super(`connection dropped: ${reason}`);
    this.name = "ConnectionDropped";
  }
}

/** True for the error of a deliberate drop (see {@linkcode ConnectionDropped}). */
export function isConnectionDropped(error: unknown): boolean {
  return error instanceof ConnectionDropped;
}
