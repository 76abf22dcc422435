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
export class TokenRejectedError extends RuneError {}

/**
 * The token could not be checked: its issuer's metadata, keys or
 * introspection endpoint did not answer, or answered nonsense.
 */
export class IssuerUnavailableError extends RuneError {}
