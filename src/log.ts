/**
 * A small leveled logger that writes to stderr, never stdout (stdout is
 * reserved for protocol messages and command output).
 *
 * @module
 */

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warning" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };

/** Writes one message at a level. */
export type Logger = (level: LogLevel, message: string) => void;

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Messages below this level are dropped. Default `info`. */
  level?: LogLevel | "silent";
  /** Where lines go. Default: stderr. */
  write?: (line: string) => void;
}

const encoder = new TextEncoder();

/** Creates a logger; lines look like `rune info: listening on ...`. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const write = options.write ?? ((line: string) => {
    try {
      Deno.stderr.writeSync(encoder.encode(line));
    } catch {
      // stderr is gone (the parent closed it): nothing useful to do.
    }
  });
  return (messageLevel, message) => {
    if (level === "silent" || RANK[messageLevel] < RANK[level]) return;
    write(`rune ${messageLevel}: ${message}\n`);
  };
}

/** True when `value` names a log level (or `silent`). */
export function isLogLevel(value: string): value is LogLevel | "silent" {
  return value === "silent" || value in RANK;
}
