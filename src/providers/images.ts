/**
 * Images as providers need them: base64 bytes with a media type. Clients
 * send plain base64 (Ollama's convention) or `data:` URLs; the media type is
 * taken from the URL or recognised from the first bytes, since Anthropic and
 * OpenAI must be told it.
 *
 * @module
 */

import type { Image } from "./types.ts";

/** Base64 prefixes of the image formats vision models take. */
const SIGNATURES: [prefix: string, mediaType: string][] = [
  ["iVBORw0KGgo", "image/png"],
  ["/9j/", "image/jpeg"],
  ["R0lGOD", "image/gif"],
  ["UklGR", "image/webp"],
];

const DATA_URL = /^data:([\w.+-]+\/[\w.+-]+);base64,/;

/** An image from base64 text or a `data:` URL, with its media type when recognisable. */
export function toImage(text: string): Image {
  const url = DATA_URL.exec(text);
  if (url) return { data: text.slice(url[0].length), mediaType: url[1] };
  const signature = SIGNATURES.find(([prefix]) => text.startsWith(prefix));
  return signature ? { data: text, mediaType: signature[1] } : { data: text };
}
