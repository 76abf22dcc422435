/**
 * Terminal output helpers: colour that respects `NO_COLOR`, a spinner on
 * stderr while waiting for the first token, and streaming writes.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Where the CLI writes; replaced in tests. */
export interface Io {
  /** Writes text to stdout, resolving once it is accepted. */
  out(text: string): Promise<void>;
  /** Writes text to stderr. */
  err(text: string): void;
  /** Whether stdin, stdout and stderr are terminals. */
  isTerminal: { stdin: boolean; stdout: boolean; stderr: boolean };
  /** Whether colour may be used on stderr. */
  color: boolean;
}

/** The process's real stdio. */
export function processIo(): Io {
  // Taken on first use: `rune serve --stdio` hands stdout to the transport instead.
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  const noColor = (Deno.env.get("NO_COLOR") ?? "") !== "";
  const stderrTerminal = Deno.stderr.isTerminal();
  return {
    async out(text) {
      writer ??= Deno.stdout.writable.getWriter();
      await writer.ready;
      await writer.write(encoder.encode(text));
    },
    err(text) {
      try {
        Deno.stderr.writeSync(encoder.encode(text));
      } catch {
        // stderr closed: nothing to report to.
      }
    },
    isTerminal: {
      stdin: Deno.stdin.isTerminal(),
      stdout: Deno.stdout.isTerminal(),
      stderr: stderrTerminal,
    },
    color: stderrTerminal && !noColor,
  };
}

/** Wraps `text` in an ANSI style when colour is on. */
export function style(io: Io, code: "dim" | "red" | "green" | "bold", text: string): string {
  if (!io.color) return text;
  const open = { dim: "\x1b[2m", red: "\x1b[31m", green: "\x1b[32m", bold: "\x1b[1m" }[code];
  return `${open}${text}\x1b[0m`;
}

/** A spinner shown on stderr; `stop()` erases it. No-op when stderr is not a terminal. */
export interface Spinner {
  /** Stops and erases the spinner (idempotent). */
  stop(): void;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** Starts a spinner with `label` when stderr is a terminal. */
export function startSpinner(io: Io, label: string): Spinner {
  if (!io.isTerminal.stderr) return { stop() {} };
  let frame = 0;
  const draw = () => io.err(`\r${FRAMES[frame++ % FRAMES.length]} ${style(io, "dim", label)}`);
  draw();
  const timer = setInterval(draw, 80);
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      io.err("\r\x1b[2K");
    },
  };
}
