/**
 * Placeholder for the playground page; replaced by the full page.
 *
 * @module
 */

/** The self-contained playground page served at `GET /`. */
export const PLAYGROUND_HTML = "<!doctype html><title>Rune</title>";
