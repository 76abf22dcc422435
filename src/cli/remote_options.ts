/**
 * `rune serve` flags for remote access: OAuth (`--oauth-issuer`,
 * `--public-url`, `--oauth-introspection-url`) and TLS (`--tls-cert`,
 * `--tls-key`), checked and turned into the resource server and the TLS
 * files the listener needs.
 *
 * The introspection endpoint's client credentials come from the credential
 * store, entry `oauth-introspection`, stored as `CLIENT_ID:CLIENT_SECRET`
 * with `rune auth set-key oauth-introspection` (the client id is what comes
 * before the first `:`).
 *
 * @module
 */

import { type CredentialStore, openStore, runeHome } from "../credentials/store.ts";
import { UsageError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ResourceServer } from "../transports/oauth_resource.ts";
import { isLoopback, isSecureOrLoopback } from "../transports/security.ts";
import { readTlsFiles, type TlsFiles } from "../transports/tls.ts";

/** The credential store entry holding the introspection client's `CLIENT_ID:CLIENT_SECRET`. */
export const INTROSPECTION_CREDENTIAL = "oauth-introspection";

/** The flags. */
export const remoteFlags = {
  "oauth-issuer": { type: "string", multiple: true },
  "public-url": { type: "string" },
  "oauth-introspection-url": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
} as const;

/** Help text for {@linkcode remoteFlags}. */
export const REMOTE_FLAGS_HELP = `Remote access (see "Remote access" in README.md):
  --oauth-issuer URL        accept OAuth access tokens from this issuer, repeatable; every
                            /mcp and /ws request then needs a token (RUNE_TOKEN still works)
  --public-url URL          the origin clients reach Rune at, e.g. https://rune.example.com
                            (tokens must name it or URL/mcp as audience; default from
                            --host and --port)
  --oauth-introspection-url URL
                            check opaque tokens here (RFC 7662); Rune's client credentials
                            are read from the credential store: printf 'ID:SECRET' |
                            rune auth set-key ${INTROSPECTION_CREDENTIAL}
  --tls-cert FILE           serve HTTPS and WSS with this certificate chain (PEM)
  --tls-key FILE            and this private key (PEM)`;

/** What the flags set up. */
export interface RemoteSetup {
  /** The resource server, when `--oauth-issuer` is given. */
  oauth?: ResourceServer;
  /** Certificate and key, when `--tls-cert` and `--tls-key` are given. */
  tls?: TlsFiles;
}

/** Options of {@linkcode remoteSetup}. */
export interface RemoteSetupOptions {
  /** The bind address (`--host`). */
  hostname: string;
  /** Reads an environment variable (for the credential store). */
  env: (name: string) => string | undefined;
  /** Diagnostics sink. */
  log: Logger;
  /** Aborts reading files and the store. */
  signal?: AbortSignal;
  /** The credential store (tests). @default the store in `$RUNE_HOME` */
  store?: CredentialStore;
}

const WILDCARDS = new Set(["0.0.0.0", "::", "[::]"]);

function urlFlag(value: string, flag: string): string {
  if (!isSecureOrLoopback(value)) {
    throw new UsageError(
      `--${flag} ${JSON.stringify(value)} must be an https:// URL (http:// only on this machine).`,
    );
  }
  const url = new URL(value);
  if (url.search || url.hash) {
    throw new UsageError(`--${flag} ${value} must have no query or fragment.`);
  }
  return value;
}

/** Checks the remote-access flags and builds what they ask for. */
export async function remoteSetup(
  values: Record<string, unknown>,
  options: RemoteSetupOptions,
): Promise<RemoteSetup> {
  const certFile = values["tls-cert"] as string | undefined;
  const keyFile = values["tls-key"] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together: give both, or neither.");
  }
  const tls = certFile !== undefined
    ? await readTlsFiles(certFile, keyFile!, { signal: options.signal })
    : undefined;
  const issuers = ((values["oauth-issuer"] as string[] | undefined) ?? [])
    .map((issuer) => urlFlag(issuer, "oauth-issuer"));
  const publicFlag = values["public-url"] as string | undefined;
  const introspectionUrl = values["oauth-introspection-url"] as string | undefined;
  if (issuers.length === 0) {
    if (publicFlag !== undefined || introspectionUrl !== undefined) {
      throw new UsageError(
        "--public-url and --oauth-introspection-url need --oauth-issuer: name the identity " +
          "provider whose tokens Rune accepts.",
      );
    }
    return tls ? { tls } : {};
  }
  // Loaded only when OAuth is on (with jose and oauth4webapi): a daemon without it stays small.
  const { createResourceServer, parsePublicUrl } = await import(
    "../transports/oauth_resource.ts"
  );
  let publicUrl: string | undefined;
  if (publicFlag !== undefined) {
    try {
      publicUrl = parsePublicUrl(publicFlag);
    } catch (error) {
      throw new UsageError(`--public-url: ${(error as Error).message}.`, { cause: error });
    }
  } else if (WILDCARDS.has(options.hostname)) {
    throw new UsageError(
      `With --host ${options.hostname}, Rune cannot tell the address clients use: give it ` +
        "with --public-url (e.g. https://rune.example.com).",
    );
  } else if (!tls && !isLoopback(options.hostname)) {
    throw new UsageError(
      `OAuth on ${options.hostname} over plain http would send bearer tokens in clear: add ` +
        "--tls-cert and --tls-key, or put Rune behind a TLS proxy and give --public-url https://...",
    );
  }
  const introspection = introspectionUrl === undefined ? undefined : {
    endpoint: urlFlag(introspectionUrl, "oauth-introspection-url"),
    ...await introspectionClient(options),
  };
  const oauth = createResourceServer({
    ...(publicUrl !== undefined && { publicUrl }),
    issuers,
    ...(introspection && { introspection }),
    log: options.log,
  });
  return { oauth, ...(tls && { tls }) };
}

/** Reads the introspection client's credentials from the store. */
async function introspectionClient(
  options: RemoteSetupOptions,
): Promise<{ clientId: string; clientSecret: string }> {
  const help = `store them with: printf '%s' 'CLIENT_ID:CLIENT_SECRET' | rune auth set-key ` +
    INTROSPECTION_CREDENTIAL;
  const store = options.store ?? openStore({ home: runeHome(options.env), env: options.env });
  const stored = await store.read(INTROSPECTION_CREDENTIAL, options.signal);
  if (stored?.kind !== "api-key") {
    throw new UsageError(
      `--oauth-introspection-url needs Rune's client credentials in ${store.path}: ${help}`,
    );
  }
  const colon = stored.key.indexOf(":");
  if (colon <= 0 || colon === stored.key.length - 1) {
    throw new UsageError(
      `The stored "${INTROSPECTION_CREDENTIAL}" credential is not CLIENT_ID:CLIENT_SECRET: ${help}`,
    );
  }
  return { clientId: stored.key.slice(0, colon), clientSecret: stored.key.slice(colon + 1) };
}

/** The origin a listener on `hostname` (as given to `--host`) and `port` is reached at. */
export function listenerOrigin(hostname: string, port: number, tls: boolean): string {
  const host = hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
  return `${tls ? "https" : "http"}://${host}:${port}`;
}
