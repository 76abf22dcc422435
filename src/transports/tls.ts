/**
 * TLS without a proxy: the certificate chain and private key for
 * `Deno.serve`, which then serves HTTPS and WSS on the same port. The
 * files are read once at start (a renewed certificate takes a restart).
 *
 * @module
 */

import { RuneError } from "../errors.ts";

/** PEM texts for `Deno.serve`'s `cert` and `key`. */
export interface TlsFiles {
  /** The certificate chain, leaf first (PEM). */
  cert: string;
  /** The private key (PEM). */
  key: string;
}

/** Options of {@linkcode readTlsFiles}. */
export interface ReadTlsOptions {
  /**
   * Largest file accepted, in bytes.
   * @default 1048576
   */
  maxBytes?: number;
  /** Aborts the reads. */
  signal?: AbortSignal;
}

async function readPem(
  file: string,
  flag: string,
  marker: RegExp,
  options: ReadTlsOptions,
): Promise<string> {
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  let text: string;
  try {
    const info = await Deno.stat(file);
    if (info.size > maxBytes) {
      throw new RuneError(`--${flag} ${file} is larger than ${maxBytes} bytes: is it a PEM file?`);
    }
    text = await Deno.readTextFile(file, { signal: options.signal });
  } catch (cause) {
    if (cause instanceof RuneError) throw cause;
    throw new RuneError(`Cannot read --${flag} ${file}: ${(cause as Error).message}`, { cause });
  }
  if (!marker.test(text)) {
    throw new RuneError(
      `--${flag} ${file} holds no PEM ${flag === "tls-cert" ? "certificate" : "private key"}.`,
    );
  }
  return text;
}

/** Reads and checks the certificate and key files given with `--tls-cert` and `--tls-key`. */
export async function readTlsFiles(
  certFile: string,
  keyFile: string,
  options: ReadTlsOptions = {},
): Promise<TlsFiles> {
  const [cert, key] = await Promise.allSettled([
    readPem(certFile, "tls-cert", /-----BEGIN CERTIFICATE-----/, options),
    readPem(keyFile, "tls-key", /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/, options),
  ]);
  // Both are read at once, but a problem is reported in flag order, whichever read ended first.
  if (cert.status === "rejected") throw cert.reason;
  if (key.status === "rejected") throw key.reason;
  return { cert: cert.value, key: key.value };
}
