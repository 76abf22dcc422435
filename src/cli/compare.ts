/**
 * `rune ai compare "PROMPT" --model A --model B [...] [--json]`: one prompt
 * to 2 to 8 models at once, in this process (the provider layer, not MCP),
 * so a user can pick the best model for it.
 *
 * The models run concurrently. How the answers stream depends on where
 * stdout goes:
 *
 * - a terminal wide enough for a column of {@linkcode MIN_COLUMN_WIDTH}
 *   characters per model (and {@linkcode MIN_ROWS} lines high): side by side, each column showing the tail of
 *   its answer as it grows (redrawn in place at most every
 *   {@linkcode DRAW_INTERVAL_MS}), then every answer in full, in columns;
 * - a smaller terminal, a pipe or a file: stacked sections in the order
 *   asked; the first streams live, each next one follows (with what it has
 *   written meanwhile) as soon as the one before it is done.
 *
 * Then a summary table: model, time to first token, total time, tokens per
 * second, tokens, error. `--json` prints `{ "results": [...] }`, the shape of
 * the `ai_compare` tool's `structuredContent`, instead. A model that fails
 * gets an error while the others still answer; the command fails (exit 1)
 * only when every model failed. Ctrl-C aborts every upstream call (exit 130).
 * The answers held for drawing (and for sections not yet shown) are bounded
 * by each provider's `--max-stream-bytes`.
 *
 * @module
 */

import { isAbortError, RuneError, UsageError } from "../errors.ts";
import {
  COMPARE_MODELS,
  type CompareEntry,
  compareEntry,
  roundMs,
} from "../providers/compare_entry.ts";
import { resolveModel } from "../providers/route.ts";
import type { Chunk, FinalResult, GenerateRequest, Provider } from "../providers/types.ts";
import { modelOptions } from "./ai.ts";
import { type Io, style } from "./output.ts";
import { loadProviders, parseFlags, PROVIDER_FLAGS_HELP, providerFlags } from "./options.ts";

/**
 * Fewest and most models one comparison takes (as the `ai_compare` tool;
 * kept here so the CLI does not load the MCP schemas to read two numbers).
 */

/** Narrowest column of the side-by-side view; narrower terminals get stacked sections. */
export const MIN_COLUMN_WIDTH = 28;

/** Fewest terminal lines for the side-by-side view (its header, a rule, lines of text). */
export const MIN_ROWS = 6;

/** Most often the side-by-side view is redrawn while answers stream, in milliseconds. */
export const DRAW_INTERVAL_MS = 50;

/** Between two columns. */
const GAP = " │ ";

/** Help for `rune ai compare`. */
export const COMPARE_HELP =
  `Usage: rune ai compare PROMPT --model A --model B [--model C ...] [options]

Sends one prompt to ${COMPARE_MODELS.min} to ${COMPARE_MODELS.max} models at once and shows the answers
as they stream (side by side on a wide terminal, one after another otherwise),
then a table of timings. PROMPT is read from stdin when omitted.

Options:
  -m, --model NAME      a model to compare, as provider/model (repeat ${COMPARE_MODELS.min} to ${COMPARE_MODELS.max} times;
                        a bare name means Ollama)
  -s, --system TEXT     system prompt for every model
      --temperature N   sampling temperature
      --max-tokens N    stop each answer after N tokens
      --seed N          seed for reproducible output
      --json            print {"results": [...]} (the ai_compare tool's shape) instead
${PROVIDER_FLAGS_HELP}`;

const compareFlags = {
  ...providerFlags,
  model: { type: "string", short: "m", multiple: true },
  system: { type: "string", short: "s" },
  temperature: { type: "string" },
  "max-tokens": { type: "string" },
  seed: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** What a comparison reports while it runs. */
export interface CompareEvents {
  /** Model `index` wrote `text`. */
  text?(index: number, text: string): void;
  /** Model `index` is done (answered or failed). */
  done?(index: number, entry: CompareEntry): void;
}

/** Options of {@linkcode compareModels}. */
export interface CompareOptions extends CompareEvents {
  /** Aborts every model's call. */
  signal?: AbortSignal;
}

/**
 * Sends `request` to every model in `names` at once and resolves to one
 * entry per model, in the order asked. A model's failure (a
 * {@linkcode RuneError}: unknown provider or model, upstream error) is its
 * entry's `error`; an abort or a bug rejects the whole comparison.
 */
export async function compareModels(
  providers: readonly Provider[],
  names: readonly string[],
  { request, ...options }: CompareOptions & { request: Omit<GenerateRequest, "model"> },
): Promise<CompareEntry[]> {
  const started = performance.now();
  return await Promise.all(names.map(async (name, index): Promise<CompareEntry> => {
    let firstAt: number | undefined;
    let result: CompareEntry;
    try {
      const { provider, model } = resolveModel(name, providers);
      const chunks = provider.generate({ ...request, model }, { signal: options.signal });
      const final = await consume(chunks, (chunk) => {
        firstAt ??= performance.now();
        if (chunk.type === "text") options.text?.(index, chunk.text);
      });
      result = compareEntry(name, final, { started, firstAt, ended: performance.now() });
    } catch (error) {
      // A cancel ends the whole comparison; a bug is not one model's failure.
      if (isAbortError(error) || options.signal?.aborted || !(error instanceof RuneError)) {
        throw error;
      }
      result = {
        model: name,
        response: "",
        total_ms: roundMs(performance.now() - started),
        usage: {},
        error: error.message,
      };
    }
    options.done?.(index, result);
    return result;
  }));
}

/** Reads a chunk stream to its final result, handing text and thinking to `onToken`. */
async function consume(
  chunks: AsyncIterable<Chunk>,
  onToken: (chunk: Chunk & { type: "text" | "thinking" }) => void,
): Promise<FinalResult> {
  for await (const chunk of chunks) {
    if (chunk.type === "done") return chunk.result;
    if ((chunk.type === "text" || chunk.type === "thinking") && chunk.text !== "") onToken(chunk);
  }
  throw new Error("provider stream ended without a final result");
}

// ---------------------------------------------------------------------------
// Views

/** Where a comparison is shown while it runs. */
export interface CompareView extends Required<CompareEvents> {
  /** Writes what remains (the full columns, the summary) once every model is done. */
  finish(entries: readonly CompareEntry[]): Promise<void>;
  /** Stops drawing (interrupted) and waits for what was written. */
  abort(): Promise<void>;
}

/** Writes to stdout in order, without waiting at each call; `flushed()` waits. */
function orderedOutput(io: Io): { write(text: string): void; flushed(): Promise<void> } {
  let chain = Promise.resolve();
  return {
    write(text) {
      chain = chain.then(() => io.out(text));
      // Seen by `flushed()`; without this a failed write would be reported as unhandled first.
      chain.catch(() => {});
    },
    flushed: () => chain,
  };
}

function formatMs(ms: number | undefined): string {
  return ms === undefined ? "-" : `${Math.round(ms)} ms`;
}

/** The summary table: one row per model. */
export function summaryTable(entries: readonly CompareEntry[]): string {
  const rows = [["MODEL", "TTFT", "TOTAL", "TOKENS/S", "TOKENS", "ERROR"]];
  for (const e of entries) {
    rows.push([
      e.model,
      formatMs(e.ttft_ms),
      formatMs(e.total_ms),
      e.tokens_per_second === undefined ? "-" : e.tokens_per_second.toFixed(1),
      e.usage.completion_tokens === undefined ? "-" : String(e.usage.completion_tokens),
      e.error ?? "",
    ]);
  }
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => width(row[column]))));
  return rows.map((row) => row.map((cell, i) => pad(cell, widths[i])).join("  ").trimEnd())
    .join("\n") + "\n";
}

/**
 * Stacked sections in the order asked: `## MODEL`, the answer, a blank
 * line. The first section streams live; the others are held until the one
 * before is done, then written at once and streamed on.
 */
export function stackedView(io: Io, names: readonly string[]): CompareView {
  const output = orderedOutput(io);
  const held = names.map(() => "");
  const ended: (CompareEntry | undefined)[] = names.map(() => undefined);
  let current = 0;
  let endsWithNewline = true;
  const write = (text: string) => {
    if (text === "") return;
    output.write(text);
    endsWithNewline = text.endsWith("\n");
  };
  const open = (index: number) => {
    write(`## ${names[index]}\n`);
    write(held[index]);
    held[index] = "";
  };
  open(0);
  return {
    text(index, text) {
      if (index === current) write(text);
      else held[index] += text;
    },
    done(index, entry) {
      ended[index] = entry;
      while (current < names.length && ended[current]) {
        if (!endsWithNewline) write("\n");
        const error = ended[current]!.error;
        if (error !== undefined) write(`error: ${error}\n`);
        write("\n");
        current++;
        if (current < names.length) open(current);
      }
    },
    async finish(entries) {
      write(summaryTable(entries));
      await output.flushed();
    },
    async abort() {
      if (!endsWithNewline) write("\n");
      await output.flushed().catch(() => {});
    },
  };
}

/** Whether `count` columns fit a terminal of `size`. */
export function fitsColumns(count: number, size: TerminalSize): boolean {
  return columnWidth(count, size.columns) >= MIN_COLUMN_WIDTH && size.rows >= MIN_ROWS;
}

function columnWidth(count: number, columns: number): number {
  return Math.floor((columns - GAP.length * (count - 1)) / count);
}

/** Terminal cells of `text` (one per code point: wide characters are not measured). */
function width(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function pad(text: string, to: number): string {
  return text + " ".repeat(Math.max(0, to - width(text)));
}

/** Model output made safe for a grid: tabs as spaces, no control characters or escapes. */
function sanitize(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\t/g, "    ").replace(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/g, "");
}

/**
 * Wraps `text` to `columns` cells per line at spaces (greedily; a word
 * longer than a line is cut). Lines already complete never change when text
 * is appended, so a growing answer can be redrawn from its tail.
 */
export function wrap(text: string, columns: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split("\n")) {
    const chars = [...paragraph];
    let start = 0;
    while (chars.length - start > columns) {
      let cut = -1;
      for (let i = start + columns; i > start; i--) {
        if (chars[i] === " ") {
          cut = i;
          break;
        }
      }
      if (cut < 0) {
        lines.push(chars.slice(start, start + columns).join(""));
        start += columns;
      } else {
        lines.push(chars.slice(start, cut).join("").trimEnd());
        start = cut + 1;
      }
    }
    lines.push(chars.slice(start).join(""));
  }
  return lines;
}

/** Rows of a grid: each column's lines side by side, `GAP` between them. */
function grid(columns: readonly string[][], cellWidth: number, rows: number): string[] {
  const out: string[] = [];
  for (let row = 0; row < rows; row++) {
    out.push(columns.map((lines) => pad(lines[row] ?? "", cellWidth)).join(GAP).trimEnd());
  }
  return out;
}

/** Size of the terminal the side-by-side view draws on. */
export interface TerminalSize {
  /** Cells per line. */
  columns: number;
  /** Lines. */
  rows: number;
}

/**
 * Side by side on a terminal: a live region, redrawn in place, shows the
 * last lines of every answer while they stream; once all are done it is
 * replaced by every answer in full, in columns, and the summary.
 */
export function columnsView(io: Io, names: readonly string[], size: TerminalSize): CompareView {
  const output = orderedOutput(io);
  const cell = columnWidth(names.length, size.columns);
  // Header and rule above, the cursor's line below: the region never scrolls out of reach.
  const liveRows = Math.max(1, size.rows - 3);
  const texts = names.map(() => "");
  const states: ("waiting" | "streaming" | "done" | "failed")[] = names.map(() => "waiting");
  let drawn = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const header = () => {
    const marks = { waiting: " …", streaming: "", done: " ✓", failed: " ✗" };
    const cells = names.map((name, i) => {
      const label = [...(name + marks[states[i]])].slice(0, cell).join("");
      return style(io, "bold", pad(label, cell));
    });
    return [cells.join(GAP).trimEnd(), names.map(() => "─".repeat(cell)).join("─┼─")];
  };
  const erase = () => {
    if (drawn > 0) output.write(`\r\x1b[${drawn}A\x1b[J`);
    drawn = 0;
  };
  const draw = () => {
    timer = undefined;
    if (stopped) return;
    const tails = texts.map((text) => text === "" ? [] : wrap(text, cell).slice(-liveRows));
    const rows = [...header(), ...grid(tails, cell, Math.max(...tails.map((t) => t.length)))];
    erase();
    output.write(rows.join("\n") + "\n");
    drawn = rows.length;
  };
  const schedule = () => {
    if (timer === undefined && !stopped) timer = setTimeout(draw, DRAW_INTERVAL_MS);
  };
  const stop = () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };

  output.write("\x1b[?25l"); // no cursor flicker while redrawing
  draw();
  return {
    text(index, text) {
      texts[index] += sanitize(text);
      states[index] = "streaming";
      schedule();
    },
    done(index, entry) {
      states[index] = entry.error === undefined ? "done" : "failed";
      if (entry.error !== undefined) {
        texts[index] += `${texts[index] === "" ? "" : "\n"}error: ${sanitize(entry.error)}`;
      }
      schedule();
    },
    async finish(entries) {
      stop();
      erase();
      const full = texts.map((text) => wrap(text, cell));
      const rows = [...header(), ...grid(full, cell, Math.max(...full.map((t) => t.length)))];
      output.write(rows.join("\n") + "\n\n" + summaryTable(entries) + "\x1b[?25h");
      await output.flushed();
    },
    async abort() {
      stop();
      output.write("\x1b[?25h");
      await output.flushed().catch(() => {});
    },
  };
}

/** Prints only the result, `{ "results": [...] }`, at the end. */
function jsonView(io: Io): CompareView {
  return {
    text() {},
    done() {},
    async finish(entries) {
      await io.out(JSON.stringify({ results: entries }, null, 2) + "\n");
    },
    abort: () => Promise.resolve(),
  };
}

/** Options of {@linkcode runCompare}. */
export interface RunCompareOptions {
  /**
   * The terminal's size, asked only when stdout is a terminal.
   * @default Deno.consoleSize
   */
  consoleSize?: () => TerminalSize;
  /** Aborts the comparison as Ctrl-C does (tests). Ctrl-C itself always does. */
  signal?: AbortSignal;
}

/** Runs `rune ai compare ARGS`; resolves to the exit code. */
export async function runCompare(
  args: string[],
  io: Io,
  options: RunCompareOptions = {},
): Promise<number> {
  const { values, positionals } = parseFlags(args, compareFlags);
  if (values.help) {
    await io.out(COMPARE_HELP + "\n");
    return 0;
  }
  const names = (values.model as string[] | undefined) ?? [];
  if (names.length < COMPARE_MODELS.min || names.length > COMPARE_MODELS.max) {
    throw new UsageError(
      `Compare takes ${COMPARE_MODELS.min} to ${COMPARE_MODELS.max} models, got ${names.length}: ` +
        'rune ai compare "PROMPT" --model A --model B',
    );
  }
  let prompt = positionals.join(" ");
  if (prompt === "") {
    if (io.isTerminal.stdin) {
      throw new UsageError('No prompt given: rune ai compare "PROMPT" --model A --model B');
    }
    prompt = (await new Response(Deno.stdin.readable).text()).trim();
  }
  const request = {
    prompt,
    system: values.system as string | undefined,
    options: modelOptions(values),
  };
  const { providers } = loadProviders(values);

  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort(new DOMException("Interrupted", "AbortError"));
  Deno.addSignalListener("SIGINT", onSignal);
  const signal = options.signal ? AbortSignal.any([options.signal, interrupt.signal]) : interrupt
    .signal;
  const size = io.isTerminal.stdout && !values.json
    ? (options.consoleSize ?? Deno.consoleSize)()
    : undefined;
  const view = values.json
    ? jsonView(io)
    : size && fitsColumns(names.length, size)
    ? columnsView(io, names, size)
    : stackedView(io, names);
  try {
    const entries = await compareModels(providers, names, {
      request,
      signal,
      text: view.text,
      done: view.done,
    });
    await view.finish(entries);
    if (entries.every((e) => e.error !== undefined)) {
      io.err(
        `${style(io, "red", "error")}: every model failed${
          values.json ? "" : " (see the table above)"
        }.\n`,
      );
      return 1;
    }
    return 0;
  } catch (error) {
    await view.abort();
    if (signal.aborted) {
      io.err("\nInterrupted.\n");
      return 130;
    }
    throw error;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}
