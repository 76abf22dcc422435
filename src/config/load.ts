/**
 * Finds, reads and validates the configuration file: `--config FILE`, else
 * `$RUNE_CONFIG`, else `~/.config/rune/config.json` when it exists (no file
 * there is fine: zero-config). JSON with comments and trailing commas is
 * accepted (npm `jsonc-parser`), and every problem is reported once with the
 * file, the line and column, the key, and what is expected.
 *
 * @module
 */

import { findNodeAtLocation, type ParseError, parseTree, printParseErrorCode } from "jsonc-parser";
import { UsageError } from "../errors.ts";
import { type Config, configSchema } from "./schema.ts";

/** The configuration file is missing, unreadable or invalid: exit 2. */
export class ConfigError extends UsageError {}

/** Where the configuration came from. */
export interface LoadedConfig {
  /** The validated configuration (empty when there is no file). */
  config: Config;
  /** The file it was read from, if any. */
  path?: string;
}

/** Largest configuration file read (a config is a few KiB; anything bigger is a mistake). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Options of {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** `--config FILE`, if given. */
  file?: string;
  /** Reads an environment variable (tests). Default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
}

/** The default file: `$XDG_CONFIG_HOME/rune/config.json`, else `~/.config/rune/config.json`. */
export function defaultConfigPath(env: (name: string) => string | undefined): string | undefined {
  const xdg = env("XDG_CONFIG_HOME");
  if (xdg) return `${xdg}/rune/config.json`;
  const home = env("HOME");
  return home ? `${home}/.config/rune/config.json` : undefined;
}

/**
 * Finds and loads the configuration; no file at the default place means an
 * empty one. Synchronous: it runs once at start, before anything is served.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? safeEnv;
  const explicit = options.file ?? env("RUNE_CONFIG");
  const path = explicit ?? defaultConfigPath(env);
  if (path === undefined) return { config: {} };
  let text: string;
  try {
    const info = Deno.statSync(path);
    if (info.size > MAX_CONFIG_BYTES) {
      throw new ConfigError(
        `${path}: the configuration file is ${info.size} bytes; at most ${MAX_CONFIG_BYTES} are read.`,
      );
    }
    text = Deno.readTextFileSync(path);
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    // The default file is optional; a file the user named is not.
    if (explicit === undefined && cause instanceof Deno.errors.NotFound) return { config: {} };
    const how = options.file !== undefined
      ? "--config"
      : explicit !== undefined
      ? "RUNE_CONFIG"
      : "";
    throw new ConfigError(
      `Cannot read the configuration file ${path}${how ? ` (from ${how})` : ""}: ${
        (cause as Error).message
      }`,
      { cause },
    );
  }
  return { config: parseConfig(text, path), path };
}

/** Parses and validates configuration text; `path` names it in errors. */
export function parseConfig(text: string, path = "config.json"): Config {
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0 || tree === undefined) {
    const first = errors[0];
    const at = first ? position(text, first.offset) : "1:1";
    const what = first ? printParseErrorCode(first.error) : "the file is empty";
    throw new ConfigError(`${path}:${at}: not valid JSON (${what}).`);
  }
  const value = nodeValue(tree);
  const parsed = configSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  // Point at the key an unknown-key issue names, else at the value that failed.
  const keys = issue.code === "unrecognized_keys" ? issue.keys : [];
  const location = [...issue.path, ...keys.slice(0, 1)] as (string | number)[];
  const node = findNodeAtLocation(tree, location) ??
    findNodeAtLocation(tree, issue.path as (string | number)[]);
  const at = position(
    text,
    node?.parent?.type === "property" ? node.parent.offset : node?.offset ?? 0,
  );
  const key = location.length
    ? location.map((p) => typeof p === "number" ? `[${p}]` : `.${p}`).join("").slice(1)
    : "(top level)";
  const message = issue.code === "unrecognized_keys"
    ? `unknown key "${keys[0]}"${
      keys.length > 1 ? ` (and ${keys.slice(1).map((k) => `"${k}"`).join(", ")})` : ""
    }: check the spelling against the schema (schema/config.schema.json)`
    : issue.message;
  throw new ConfigError(`${path}:${at}: ${key.replace(/^\.?/, "")}: ${message}.`);
}

/** The plain value of a jsonc-parser node (no prototype tricks: `__proto__` stays a key). */
function nodeValue(node: NonNullable<ReturnType<typeof parseTree>>): unknown {
  switch (node.type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const property of node.children ?? []) {
        const [key, value] = property.children ?? [];
        if (key && value) {
          Object.defineProperty(out, String(key.value), {
            value: nodeValue(value),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
      }
      return out;
    }
    case "array":
      return (node.children ?? []).map(nodeValue);
    default:
      return node.value;
  }
}

/** `line:column` (1-based) of `offset` in `text`. */
function position(text: string, offset: number): string {
  let line = 1;
  let column = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      column = 1;
    } else column++;
  }
  return `${line}:${column}`;
}

/** Reads a variable, treating one the permissions do not allow as unset. */
function safeEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    throw error;
  }
}
