/**
 * Errors of the credential store and of signing in. Each is a
 * {@linkcode RuneError}: the CLI prints its message (exit 1) and the MCP
 * layer returns it as a tool error. No message ever contains a secret.
 *
 * @module
 */

import { RuneError } from "../errors.ts";

/** Base class of every credential failure. */
export class CredentialError extends RuneError {}

/** Why the store cannot be used; see {@linkcode StoreUnreadableError}. */
export type StoreProblem = "corrupt" | "wrong-key" | "tampered" | "too-large" | "unsupported";

/**
 * The store file is corrupted, tampered with, or encrypted with another key.
 * Rune never overwrites such a file; the message says how to recover.
 */
export class StoreUnreadableError extends CredentialError {
  /** Create the error; `problem` says which check failed. */
  constructor(readonly problem: StoreProblem, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The key that encrypts the store cannot be had (no passphrase, keyring refused, ...). */
export class StoreKeyError extends CredentialError {}

/** Another process held the store's lock for longer than the wait allows. */
export class StoreLockedError extends CredentialError {}

/**
 * The provider has no usable credential: never signed in, signed out, or
 * its refresh token was refused. The message says to run `rune auth login ID`.
 */
export class SignInRequiredError extends CredentialError {
  /** Create the error for provider `id`. */
  constructor(readonly id: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Signing in failed (refused, timed out, a forged redirect, a bad server reply). */
export class SignInError extends CredentialError {}
