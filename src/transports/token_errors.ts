/**
 * Why an access token was not accepted: the token itself is wrong (401
 * `invalid_token`), or the authorization server that could vouch for it
 * did not answer (503: the client's token may be fine, so it is not told
 * to sign in again).
 *
 * @module
 */

import { RuneError } from "../errors.ts";

/**
 * A presented access token Rune does not accept (expired, for another
 * resource, badly signed, revoked...). The message is safe to send to the
 * client: it never contains the token.
 */
export class TokenRejectedError extends RuneError {
  /**
   * True when the token is authentic (its issuer vouches for it) but
   * unusable, e.g. expired: no guess, so the failed-auth limiter ignores it.
   */
  readonly genuine: boolean;

  /** Creates the error; `options.genuine` defaults to false. */
  constructor(message: string, options: ErrorOptions & { genuine?: boolean } = {}) {
    super(message, options);
    this.genuine = options.genuine ?? false;
  }
}

/**
 * The token could not be checked: its issuer's metadata, keys or
 * introspection endpoint did not answer, or answered nonsense.
 */
export class IssuerUnavailableError extends RuneError {}
