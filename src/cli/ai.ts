/**
 * `rune ai list|show|generate|chat|embed|providers|pull|ps|rm`: every configured
 * provider from a terminal or a script. Models are named
 * `provider/model` (a bare name means Ollama). Text streams to stdout as
 * tokens arrive; `--json` prints one JSON document (per turn, for chat) for
 * scripts instead.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { RuneError, UsageError } from "../errors.ts";
import { chatContent, embedContent, generateContent, modelContent } from "../mcp/tools/mapping.ts";
import { toImage } from "../providers/images.ts";
import { splitLines } from "../providers/ndjson.ts";
import { resolveModel, type Route } from "../providers/route.ts";
import type {
  Chunk,
  FinalResult,
  Message,
  ModelInfo,
  ModelOptions,
  Provider,
} from "../providers/types.ts";
import { type Io, startSpinner, style } from "./output.ts";
import { loadProviders, parseFlags, PROVIDER_FLAGS_HELP, providerFlags } from "./options.ts";

/** Help for `rune ai`. */
export const AI_HELP = `Usage: rune ai <command> [options]

Commands:
  list [--provider ID]       list the models of every provider (or of one)
  providers                  each provider: type, address, key set or not, reachable
  show MODEL                 details and capabilities of a model
  generate PROMPT --model M  complete a prompt (PROMPT from stdin when omitted)
  chat --model M             chat; interactive on a terminal (/exit to quit),
                             otherwise one user turn per stdin line
  embed TEXT... --model M    print one embedding vector per TEXT
  compare PROMPT -m A -m B   one prompt to 2 to 8 models at once, side by side,
                             with timings ("rune ai compare --help")
  pull MODEL                 download an Ollama model, with a progress bar on a terminal
  ps                         the Ollama models loaded in memory, with VRAM and expiry
  rm MODEL...                delete Ollama models (asks first; --yes to skip)

Models are named "provider/model" (e.g. anthropic/claude-sonnet-4-6, openai/gpt-4.1);
a bare name means Ollama (e.g. llama3.2).

Options:
  -m, --model NAME      model to use (default: $RUNE_MODEL)
  -p, --provider ID     only this provider (list)
  -s, --system TEXT     system prompt (generate, chat)
  -i, --image FILE      attach an image, repeatable (generate)
      --format json     ask for JSON output (generate, chat)
      --think           show the model's reasoning on stderr (thinking models)
      --temperature N   sampling temperature
      --max-tokens N    stop after N tokens
      --seed N          seed for reproducible output
  -y, --yes             delete without asking (rm)
      --json            machine-readable output
${PROVIDER_FLAGS_HELP}`;

const aiFlags = {
  ...providerFlags,
  model: { type: "string", short: "m" },
  provider: { type: "string", short: "p" },
  system: { type: "string", short: "s" },
  image: { type: "string", short: "i", multiple: true },
  format: { type: "string" },
  think: { type: "boolean" },
  temperature: { type: "string" },
  "max-tokens": { type: "string" },
  seed: { type: "string" },
  json: { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = Record<string, string | boolean | string[] | undefined>;

/** What every `rune ai` subcommand works with. */
export interface Command {
  /** Every configured provider, Ollama first. */
  providers: Provider[];
  positionals: string[];
  values: Values;
  io: Io;
  /** Aborted by Ctrl-C. */
  signal: AbortSignal;
}

/** Runs `rune ai ...`; resolves to the exit code. */
export async function runAi(args: string[], io: Io): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined) {
    io.err(AI_HELP + "\n");
    return 2;
  }
  if (command === "--help" || command === "-h" || command === "help") {
    await io.out(AI_HELP + "\n");
    return 0;
  }
  // Its own flags (--model repeats) and its own Ctrl-C handling.
  if (command === "compare") return await (await import("./compare.ts")).runCompare(rest, io);
  const { values, positionals } = parseFlags(rest, aiFlags);
  if (values.help) {
    await io.out(AI_HELP + "\n");
    return 0;
  }
  const { providers } = loadProviders(values);
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort(new DOMException("Interrupted", "AbortError"));
  // Interactive chat handles Ctrl-C itself (it stops one reply, not the session).
  const ownInterrupt = command === "chat" && io.isTerminal.stdin;
  if (!ownInterrupt) Deno.addSignalListener("SIGINT", onSignal);
  try {
    const cmd: Command = { providers, positionals, values, io, signal: interrupt.signal };
    switch (command) {
      case "list":
        return await list(cmd);
      case "providers":
        return await (await import("./providers.ts")).providersCommand(cmd);
      case "show":
        return await show(cmd);
      case "generate":
        return await generate(cmd);
      case "chat":
        return await chat(cmd);
      case "embed":
        return await embed(cmd);
      case "pull":
        return await (await import("./manage.ts")).pullCommand(cmd);
      case "ps":
        return await (await import("./manage.ts")).psCommand(cmd);
      case "rm":
        return await (await import("./manage.ts")).rmCommand(cmd);
      default:
        throw new UsageError(`Unknown command "rune ai ${command}": see "rune ai --help".`);
    }
  } catch (error) {
    if (interrupt.signal.aborted) {
      io.err("\nInterrupted.\n");
      return 130;
    }
    throw error;
  } finally {
    if (!ownInterrupt) Deno.removeSignalListener("SIGINT", onSignal);
  }
}

/** The model to use, resolved to its provider (`--model provider/model`, else `$RUNE_MODEL`). */
function requireModel(values: Values, providers: Provider[]): Route {
  const model = (values.model as string | undefined) ?? Deno.env.get("RUNE_MODEL");
  if (!model) throw new UsageError('No model given: pass --model NAME (see "rune ai list").');
  return resolveModel(model, providers);
}

function numberFlag(values: Values, flag: string, integer = false): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new UsageError(
      `--${flag} needs ${integer ? "an integer" : "a number"}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** Sampling options from `--temperature`, `--max-tokens` and `--seed`; undefined when none. */
export function modelOptions(values: Values): ModelOptions | undefined {
  const options: ModelOptions = {
    temperature: numberFlag(values, "temperature"),
    maxTokens: numberFlag(values, "max-tokens", true),
    seed: numberFlag(values, "seed", true),
  };
  return Object.values(options).some((v) => v !== undefined) ? options : undefined;
}

function formatFlag(values: Values): "json" | undefined {
  const format = values.format;
  if (format === undefined) return undefined;
  if (format !== "json") {
    throw new UsageError(`--format takes "json", got ${JSON.stringify(format)}`);
  }
  return "json";
}

function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value >= 10 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd()).join(
    "\n",
  ) + "\n";
}

async function list({ providers, values, io, signal }: Command): Promise<number> {
  const only = values.provider as string | undefined;
  const chosen = only === undefined ? providers : providers.filter((p) => p.id === only);
  if (chosen.length === 0) {
    throw new UsageError(
      `No provider "${only}": the configured providers are ${
        providers.map((p) => p.id).join(", ")
      }.`,
    );
  }
  // Every provider at once; one that fails is reported on stderr beside the others' models.
  const listed = await Promise.allSettled(chosen.map((p) => p.listModels({ signal })));
  // Names carry their provider when more than one is listed.
  const prefix = chosen.length > 1;
  const models: { provider: Provider; model: ModelInfo }[] = [];
  let failed = 0;
  for (const [i, outcome] of listed.entries()) {
    if (outcome.status === "fulfilled") {
      for (const model of outcome.value) models.push({ provider: chosen[i], model });
      continue;
    }
    if (!(outcome.reason instanceof RuneError) || chosen.length === 1) throw outcome.reason;
    failed++;
    io.err(`${style(io, "red", "error")}: ${chosen[i].id}: ${outcome.reason.message}\n`);
  }
  if (values.json) {
    await io.out(
      JSON.stringify(
        models.map(({ provider, model }) => modelContent(model, prefix ? provider.id : undefined)),
        null,
        2,
      ) + "\n",
    );
    return failed === chosen.length ? 1 : 0;
  }
  if (models.length === 0) {
    if (failed === 0) {
      io.err(
        chosen.length === 1 && chosen[0].type === "ollama"
          ? `No models are installed on ${chosen[0].address}: run "ollama pull llama3.2".\n`
          : "No models.\n",
      );
    }
    return failed === chosen.length ? 1 : 0;
  }
  const rows = [["NAME", "SIZE", "PARAMS", "QUANT", "FAMILY", "MODIFIED", "LOADED"]];
  for (const { provider, model: m } of models) {
    rows.push([
      prefix ? `${provider.id}/${m.name}` : m.name,
      formatBytes(m.size),
      m.parameterSize ?? "",
      m.quantization ?? "",
      m.family ?? "",
      m.modifiedAt?.slice(0, 10) ?? "",
      m.loaded ? "yes" : "",
    ]);
  }
  await io.out(table(rows));
  return 0;
}

async function show({ providers, positionals, values, io, signal }: Command): Promise<number> {
  const name = positionals[0] ?? (values.model as string | undefined);
  if (!name || positionals.length > 1) throw new UsageError("Usage: rune ai show MODEL");
  const { provider, model } = resolveModel(name, providers);
  const details = await provider.showModel(model, { signal });
  if (values.json) {
    await io.out(JSON.stringify(details, null, 2) + "\n");
    return 0;
  }
  const capabilities = Object.entries(details.capabilities).filter(([, on]) => on).map(([name]) =>
    name
  );
  const rows: [string, string | undefined][] = [
    ["name", details.name],
    ["family", details.family],
    ["parameters", details.parameterSize],
    ["quantization", details.quantization],
    ["context length", details.contextLength?.toString()],
    ["capabilities", capabilities.join(", ")],
  ];
  await io.out(table(rows.filter(([, v]) => v).map(([k, v]) => [k, v as string])));
  return 0;
}

async function readStdin(): Promise<string> {
  return (await new Response(Deno.stdin.readable).text()).trim();
}

async function readImages(values: Values): Promise<string[] | undefined> {
  const files = values.image as string[] | undefined;
  if (!files?.length) return undefined;
  return await Promise.all(files.map(async (file) => {
    try {
      return Buffer.from(await Deno.readFile(file)).toString("base64");
    } catch (cause) {
      throw new RuneError(
        `Cannot read image ${JSON.stringify(file)}: ${(cause as Error).message}`,
        { cause },
      );
    }
  }));
}

/** Prints a chunk stream as it arrives; returns the final result. */
async function printStream(
  chunks: AsyncIterable<Chunk>,
  io: Io,
  options: { json: boolean; thinking: boolean },
): Promise<FinalResult> {
  const spinner = options.json ? { stop() {} } : startSpinner(io, "waiting for the model…");
  let endsWithNewline = true;
  let thinkingOpen = false;
  try {
    for await (const chunk of chunks) {
      spinner.stop();
      if (chunk.type === "done") {
        if (thinkingOpen) io.err("\n");
        if (!options.json && !endsWithNewline) await io.out("\n");
        return chunk.result;
      }
      if (options.json) continue;
      if (chunk.type === "thinking") {
        if (options.thinking) {
          io.err(style(io, "dim", chunk.text));
          thinkingOpen = true;
        }
      } else if (chunk.type === "text") {
        if (thinkingOpen) {
          io.err("\n");
          thinkingOpen = false;
        }
        await io.out(chunk.text);
        endsWithNewline = chunk.text.endsWith("\n");
      } else {
        for (const call of chunk.toolCalls) {
          await io.out(`Tool call: ${call.name}(${JSON.stringify(call.arguments)})\n`);
        }
        endsWithNewline = true;
      }
    }
  } catch (error) {
    // A failure mid-reply goes on its own line of stderr, not glued to the partial text.
    if (thinkingOpen) io.err("\n");
    if (!options.json && !endsWithNewline) await io.out("\n").catch(() => {});
    throw error;
  } finally {
    spinner.stop();
  }
  throw new Error("provider stream ended without a final result");
}

async function generate({ providers, positionals, values, io, signal }: Command): Promise<number> {
  const { provider, model } = requireModel(values, providers);
  let prompt = positionals.join(" ");
  if (prompt === "") {
    if (io.isTerminal.stdin) {
      throw new UsageError('No prompt given: rune ai generate "PROMPT" --model M');
    }
    prompt = await readStdin();
  }
  const result = await printStream(
    provider.generate({
      model,
      prompt,
      system: values.system as string | undefined,
      images: (await readImages(values))?.map(toImage),
      format: formatFlag(values),
      options: modelOptions(values),
      think: values.think as boolean | undefined,
    }, { signal }),
    io,
    { json: Boolean(values.json), thinking: Boolean(values.think) },
  );
  if (values.json) await io.out(JSON.stringify(generateContent(result)) + "\n");
  return 0;
}

async function chat({ providers, values, io, signal }: Command): Promise<number> {
  const { provider, model } = requireModel(values, providers);
  const interactive = io.isTerminal.stdin;
  const history: Message[] = [];
  if (values.system) history.push({ role: "system", content: values.system as string });
  const json = Boolean(values.json);
  if (interactive) {
    io.err(style(io, "dim", `Chatting with ${model}. Ctrl-C stops a reply; /exit quits.\n`));
  }
  const prompt = () => interactive && io.err(style(io, "bold", "> "));
  // On a terminal, Ctrl-C stops the reply being written, not the session.
  let turn: AbortController | undefined;
  const onInterrupt = () => {
    if (turn) turn.abort(new DOMException("Reply stopped", "AbortError"));
    else io.err(style(io, "dim", "\n(type /exit or press Ctrl-D to quit)\n> "));
  };
  if (interactive) Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    prompt();
    const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
      splitLines(),
    );
    for await (const line of lines) {
      const text = line.trim();
      if (text === "/exit" || text === "/quit") break;
      if (text === "") {
        prompt();
        continue;
      }
      history.push({ role: "user", content: text });
      turn = new AbortController();
      try {
        const result = await printStream(
          provider.chat({
            model,
            messages: history,
            format: formatFlag(values),
            options: modelOptions(values),
            think: values.think as boolean | undefined,
          }, { signal: AbortSignal.any([signal, turn.signal]) }),
          io,
          { json, thinking: Boolean(values.think) },
        );
        history.push({ role: "assistant", content: result.text, toolCalls: result.toolCalls });
        if (json) await io.out(JSON.stringify(chatContent(result)) + "\n");
      } catch (error) {
        // Piped input is a script: a failed turn ends it (exit 1). On a terminal, keep chatting.
        if (!interactive || signal.aborted) throw error;
        history.pop();
        if (turn.signal.aborted) io.err(style(io, "dim", "\n(reply stopped)\n"));
        else if (error instanceof RuneError) {
          io.err(`${style(io, "red", "error")}: ${error.message}\n`);
        } else throw error;
      } finally {
        turn = undefined;
      }
      prompt();
    }
    return 0;
  } finally {
    if (interactive) Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

async function embed({ providers, positionals, values, io, signal }: Command): Promise<number> {
  const { provider, model } = requireModel(values, providers);
  if (!provider.capabilities().embeddings) {
    throw new RuneError(`${provider.label} (provider "${provider.id}") has no embeddings API.`);
  }
  let inputs = positionals;
  if (inputs.length === 0) {
    if (io.isTerminal.stdin) throw new UsageError('No text given: rune ai embed "TEXT" --model M');
    inputs = (await readStdin()).split("\n").filter((line) => line.trim() !== "");
  }
  const result = await provider.embed({ model, input: inputs.length === 1 ? inputs[0] : inputs }, {
    signal,
  });
  if (values.json) {
    await io.out(JSON.stringify(embedContent(result)) + "\n");
    return 0;
  }
  for (const vector of result.embeddings) await io.out(JSON.stringify(vector) + "\n");
  return 0;
}
