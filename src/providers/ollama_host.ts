/**
 * Resolves Ollama's base URL from `OLLAMA_HOST` the way the official
 * Ollama clients do.
 *
 * Accepted forms: empty (default `http://127.0.0.1:11434`), `host`,
 * `host:port`, `:port`, `[v6]:port`, each with or without `http://` or
 * `https://`, optionally followed by a path. Without a scheme the default
 * port is 11434; with an explicit scheme and no port it is 80 or 443. The
 * wildcard addresses `0.0.0.0` and `::` (how a server is told to listen on
 * every interface) mean "this machine" to a client.
 *
 * @module
 */

import { UsageError } from "../errors.ts";

/** Ollama's default port. */
export const DEFAULT_OLLAMA_PORT = 11434;

/** Ollama's default base URL. */
export const DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434";

/**
 * Turns an `OLLAMA_HOST`-style value into a base URL without a trailing
 * slash, e.g. `"0.0.0.0"` → `"http://127.0.0.1:11434"`.
 *
 * @throws {UsageError} when the value cannot be a host address.
 */
export function parseOllamaHost(value: string | undefined): string {
  let text = (value ?? "").trim();
  if (text === "") return DEFAULT_OLLAMA_URL;
  let explicitScheme = text.includes("://");
  if (text.startsWith(":")) {
    text = `http://127.0.0.1${text}`;
    explicitScheme = true;
  }
  if (!explicitScheme) text = `http://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw new UsageError(
      `OLLAMA_HOST ${
        JSON.stringify(value)
      } is not a host address: use a form like "127.0.0.1:11434" or "http://host:11434".`,
      { cause },
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(
      `OLLAMA_HOST ${
        JSON.stringify(value)
      } uses scheme "${url.protocol}": only http and https are supported.`,
    );
  }
  let port = url.port;
  if (port === "") {
    port = explicitScheme
      ? (url.protocol === "https:" ? "443" : "80")
      : String(DEFAULT_OLLAMA_PORT);
  }
  let hostname = url.hostname;
  if (hostname === "0.0.0.0") hostname = "127.0.0.1";
  if (hostname === "[::]") hostname = "[::1]";
  const auth = url.username ? `${url.username}${url.password ? `:${url.password}` : ""}@` : "";
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${auth}${hostname}:${port}${path}`;
}

/** The `host:port` part of a base URL, for messages (credentials left out). */
export function displayAddress(baseUrl: string): string {
  const url = new URL(baseUrl);
  return url.host + url.pathname.replace(/\/+$/, "");
}
