/**
 * Error classes shared by every layer of Rune.
 *
 * A {@linkcode RuneError} is a failure a person can fix (a stopped server,
 * a missing model, a bad flag): the CLI prints its message and exits 1
 * without a stack trace, and the MCP layer turns it into an `isError` tool
 * result. Anything else is a bug and is rethrown.
 *
 * @module
 */

/** A failure the user can act on; its message says what failed and what to do. */
export class RuneError extends Error {
  /** Create an error with an actionable message and an optional cause. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad command-line usage: the CLI exits 2. */
export class UsageError extends RuneError {}

/** Returns true when `error` is an abort caused by an `AbortSignal`. */
export function isAbortError(error: unknown): boolean {
  return error instanceof DOMException &&
    (error.name === "AbortError" || error.name === "TimeoutError");
}
