/**
 * `rune ai pull|ps|rm`: managing the models of a provider that stores them
 * (Ollama) from a terminal or a script.
 *
 * `pull` shows its progress on stderr: a progress bar redrawn in place on a
 * terminal (at most every {@linkcode REDRAW_MS}, and at each new status),
 * plain lines otherwise (one per new status and per tenth of the bytes), or
 * with `--json` one JSON object per step on stdout. `rm` asks before
 * deleting when stdin is a terminal, and without a terminal it needs
 * `--yes` (`--json`: one `{"model","deleted"}` line per model). Ctrl-C
 * stops a pull (the next pull resumes it).
 *
 * A name is `provider/model` when the prefix is a configured provider, and
 * otherwise a whole Ollama name (`namespace/model:tag`, `hf.co/...`), which
 * goes to the `ollama` provider; `--provider ID` picks the provider.
 *
 * @module
 */

import { RuneError, UsageError } from "../errors.ts";
import {
  humanBytes,
  managementOf,
  processorOf,
  runningContent,
} from "../mcp/tools/manage_tools.ts";
import { DEFAULT_PROVIDER_ID } from "../providers/route.ts";
import type { ModelManagement, Provider, PullProgress } from "../providers/types.ts";
import { splitLines } from "../providers/ndjson.ts";
import type { Command } from "./ai.ts";
import { type Io, style } from "./output.ts";

/** Least time between two redraws of the progress bar, in milliseconds. */
export const REDRAW_MS = 100;
/** Characters of the progress bar. */
export const BAR_WIDTH = 25;
/** The span over which the download speed is measured, in milliseconds. */
export const SPEED_WINDOW_MS = 5_000;
/** Longest answer read at the confirmation prompt. */
const MAX_ANSWER_LENGTH = 1024;

/** A model named on the command line, resolved to the provider that manages it. */
interface Managed {
  provider: Provider;
  models: ModelManagement;
  model: string;
}

/** Resolves `name` (see the module doc) to a provider with model management. */
function resolveManaged(name: string, providers: readonly Provider[], only?: string): Managed {
  if (only !== undefined) {
    const provider = providers.find((p) => p.id === only);
    if (!provider) {
      throw new UsageError(
        `No provider "${only}": the configured providers are ${
          providers.map((p) => p.id).join(", ")
        }.`,
      );
    }
    return { provider, models: managementOf(provider), model: name };
  }
  const slash = name.indexOf("/");
  const prefixed = slash < 0 ? undefined : providers.find((p) => p.id === name.slice(0, slash));
  const provider = prefixed ?? providers.find((p) => p.id === DEFAULT_PROVIDER_ID);
  if (!provider) {
    throw new RuneError(
      `No "${DEFAULT_PROVIDER_ID}" provider is configured: name the model as "<provider>/<model>" or pass --provider.`,
    );
  }
  const model = prefixed ? name.slice(slash + 1) : name;
  if (model === "") throw new UsageError(`"${name}" names no model.`);
  return { provider, models: managementOf(provider), model };
}

/** `rune ai pull MODEL`. */
export async function pullCommand(
  { providers, positionals, values, io, signal }: Command,
): Promise<number> {
  if (positionals.length !== 1) throw new UsageError("Usage: rune ai pull MODEL [--json]");
  const { provider, models, model } = resolveManaged(
    positionals[0],
    providers,
    values.provider as string | undefined,
  );
  const json = Boolean(values.json);
  const view = json ? jsonView(io, model) : io.isTerminal.stderr ? barView(io) : lineView(io);
  const started = performance.now();
  let last: PullProgress | undefined;
  try {
    for await (const step of models.pull(model, { signal })) {
      last = step;
      if (step.done) break;
      await view.step(step);
    }
  } catch (error) {
    view.abandon();
    throw error;
  }
  if (!last?.done) {
    view.abandon();
    throw new RuneError(
      `${provider.label} ended the pull of "${model}" without reporting success: pull it again.`,
    );
  }
  await view.done(last, performance.now() - started, model);
  return 0;
}

/** How a pull's progress is shown. */
interface PullView {
  /** Shows one step. */
  step(step: PullProgress): Promise<void>;
  /** Shows the end of a successful pull. */
  done(step: PullProgress, ms: number, model: string): Promise<void>;
  /** Leaves the output tidy before an error message. */
  abandon(): void;
}

function percent(step: PullProgress): number {
  return step.total > 0 ? Math.floor((step.completed * 100) / step.total) : 0;
}

function doneLine(step: PullProgress, ms: number, model: string): string {
  return `success: pulled ${model} (${humanBytes(step.total)}) in ${(ms / 1000).toFixed(1)}s`;
}

/** `--json`: one object per step that says something new, on stdout. */
function jsonView(io: Io, model: string): PullView {
  let previous = "";
  return {
    async step(step) {
      const line = JSON.stringify({
        model,
        status: step.status,
        completed: step.completed,
        total: step.total,
        done: false,
      });
      if (line === previous) return;
      previous = line;
      await io.out(line + "\n");
    },
    async done(step, ms) {
      await io.out(
        JSON.stringify({
          model,
          status: step.status,
          completed: step.completed,
          total: step.total,
          done: true,
          duration_ms: Math.round(ms),
        }) + "\n",
      );
    },
    abandon() {},
  };
}

/** Not a terminal: a line per new status and per new tenth of the bytes, on stderr. */
function lineView(io: Io): PullView {
  let status: string | undefined;
  let tenth = -1;
  return {
    step(step) {
      const now = Math.floor(percent(step) / 10);
      if (step.status !== status || now > tenth) {
        status = step.status;
        tenth = now;
        io.err(
          step.total > 0
            ? `${step.status} ${percent(step)}% (${humanBytes(step.completed)}/${
              humanBytes(step.total)
            })\n`
            : `${step.status}\n`,
        );
      }
      return Promise.resolve();
    },
    done(step, ms, model) {
      io.err(doneLine(step, ms, model) + "\n");
      return Promise.resolve();
    },
    abandon() {},
  };
}

/** A terminal: one line redrawn in place, with a bar, the bytes and the speed. */
function barView(io: Io): PullView {
  let status: string | undefined;
  let drawnAt = -Infinity;
  let drawn = false;
  const samples: { at: number; bytes: number }[] = [];
  return {
    step(step) {
      const now = performance.now();
      samples.push({ at: now, bytes: step.completed });
      while (samples.length > 2 && now - samples[0].at > SPEED_WINDOW_MS) samples.shift();
      if (step.status === status && now - drawnAt < REDRAW_MS) return Promise.resolve();
      status = step.status;
      drawnAt = now;
      drawn = true;
      io.err(`\r\x1b[2K${frame(io, step, speed(samples))}`);
      return Promise.resolve();
    },
    done(step, ms, model) {
      io.err(`\r\x1b[2K${style(io, "green", doneLine(step, ms, model))}\n`);
      return Promise.resolve();
    },
    abandon() {
      if (drawn) io.err("\n");
    },
  };
}

/** Bytes per second over the samples, once they span a second. */
function speed(samples: { at: number; bytes: number }[]): number | undefined {
  const first = samples[0];
  const last = samples.at(-1)!;
  const span = last.at - first.at;
  if (span < 1000) return undefined;
  return ((last.bytes - first.bytes) * 1000) / span;
}

/** `pulling 20231ac07b4c  45% ▕███████████             ▏ 122 MB/271 MB  35 MB/s`. */
export function frame(io: Io, step: PullProgress, bytesPerSecond?: number): string {
  if (step.total <= 0) return step.status;
  const filled = Math.round((BAR_WIDTH * step.completed) / step.total);
  const bar = "█".repeat(filled) + " ".repeat(BAR_WIDTH - filled);
  const rate = bytesPerSecond === undefined ? "" : `  ${humanBytes(bytesPerSecond)}/s`;
  return `${step.status} ${String(percent(step)).padStart(3)}% ▕${style(io, "bold", bar)}▏ ${
    humanBytes(step.completed)
  }/${humanBytes(step.total)}${rate}`;
}

/** `rune ai ps`: the models loaded in memory. */
export async function psCommand(
  { providers, positionals, values, io, signal }: Command,
): Promise<number> {
  if (positionals.length > 0) throw new UsageError("Usage: rune ai ps [--provider ID] [--json]");
  const only = values.provider as string | undefined;
  const provider = providers.find((p) => p.id === (only ?? DEFAULT_PROVIDER_ID));
  if (!provider) {
    throw new UsageError(
      `No provider "${only ?? DEFAULT_PROVIDER_ID}": the configured providers are ${
        providers.map((p) => p.id).join(", ")
      }.`,
    );
  }
  const loaded = await managementOf(provider).running({ signal });
  if (values.json) {
    await io.out(JSON.stringify({ models: loaded.map(runningContent) }, null, 2) + "\n");
    return 0;
  }
  if (loaded.length === 0) {
    io.err(`No model is loaded in ${provider.label} at ${provider.address} right now.\n`);
    return 0;
  }
  const rows = [["NAME", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]];
  const now = Date.now();
  for (const m of loaded) {
    rows.push([
      m.name,
      m.size === undefined ? "" : humanBytes(m.size),
      processorOf(m.size, m.sizeVram),
      m.contextLength?.toString() ?? "",
      until(m.expiresAt, now),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  await io.out(
    rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd())
      .join("\n") + "\n",
  );
  return 0;
}

/** When a model will be unloaded, from now: `in 4 minutes`, `forever` (years away). */
export function until(expiresAt: string | undefined, now: number): string {
  if (expiresAt === undefined) return "";
  const at = Date.parse(expiresAt);
  if (!Number.isFinite(at)) return expiresAt;
  const seconds = Math.round((at - now) / 1000);
  if (seconds <= 0) return "now";
  // A negative keep_alive keeps a model loaded "forever": Ollama sets a date centuries ahead.
  if (seconds > 10 * 365 * 86_400) return "forever";
  const say = (n: number, unit: string) => `in ${n} ${unit}${n === 1 ? "" : "s"}`;
  if (seconds < 60) return say(seconds, "second");
  // Rounded first, so 59.5 minutes reads "in 1 hour", not "in 60 minutes".
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return say(minutes, "minute");
  const hours = Math.round(seconds / 3600);
  if (hours < 24) return say(hours, "hour");
  return say(Math.round(seconds / 86_400), "day");
}

/** `rune ai rm MODEL...`: asks first on a terminal unless `--yes`. */
export async function rmCommand(
  { providers, positionals, values, io, signal }: Command,
): Promise<number> {
  if (positionals.length === 0) throw new UsageError("Usage: rune ai rm MODEL... [--yes]");
  const targets = positionals.map((name) =>
    resolveManaged(name, providers, values.provider as string | undefined)
  );
  if (!values.yes) {
    if (!io.isTerminal.stdin) {
      throw new UsageError(
        "rune ai rm deletes models for good: pass --yes to delete without a terminal to ask on.",
      );
    }
    const where = [...new Set(targets.map((t) => `${t.provider.label} at ${t.provider.address}`))]
      .join(", ");
    io.err(
      `Delete ${targets.map((t) => t.model).join(", ")} from ${where}? ` +
        `This cannot be undone. [y/N] `,
    );
    const answer = await readAnswer(signal);
    if (!/^y(es)?$/i.test(answer.trim())) {
      io.err("Nothing deleted.\n");
      return 1;
    }
  }
  for (const { provider, models, model } of targets) {
    await models.delete(model, { signal });
    await io.out(
      values.json
        ? JSON.stringify({ model, deleted: true }) + "\n"
        : `Deleted ${model} from ${provider.label}.\n`,
    );
  }
  return 0;
}

/** One line from stdin (the answer to a question), or "" at its end or on abort. */
async function readAnswer(signal: AbortSignal): Promise<string> {
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
    splitLines({ maxLineLength: MAX_ANSWER_LENGTH, onTooLong: () => {} }),
  );
  const reader = lines.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const { value } = await reader.read();
    signal.throwIfAborted();
    return value ?? "";
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
}
