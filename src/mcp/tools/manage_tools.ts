/**
 * Model management tools, for providers that store models themselves
 * (Ollama): `ai_<id>_show` and `ai_<id>_ps` always, and, only when the
 * daemon runs with `--allow-model-management`, `ai_<id>_pull` and
 * `ai_<id>_delete` (a client could otherwise fill the disk or remove a
 * user's models).
 *
 * `ai_<id>_pull` streams the download as `notifications/progress` in bytes:
 * `progress` the bytes so far, `total` the size of the layers announced so
 * far, `message` the provider's status text. `progress` strictly increases
 * (a step that does not move it is not sent) and the last notification of
 * a successful pull is at `total`. Notifications are coalesced: while one
 * is being written, newer steps replace the waiting one, so a slow client
 * never holds back the download or Rune's memory, and on HTTP each waits
 * for the response stream to drain (`flow.ts`).
 *
 * @module
 */

import type { ProgressToken, ServerContext } from "@modelcontextprotocol/server";
import { z } from "zod";
import { RuneError } from "../../errors.ts";
import type {
  ModelCard,
  ModelManagement,
  Provider,
  PullProgress,
  RunningModel,
} from "../../providers/types.ts";
import { flowOf } from "../flow.ts";
import type { Register } from "./register.ts";

/** Options of {@linkcode registerManageTools}. */
export interface ManageToolOptions {
  /**
   * Register the tools that change what is installed (`pull`, `delete`).
   * @default false
   */
  allowManagement?: boolean;
}

/** Characters of a license kept in its summary. */
export const LICENSE_SUMMARY_CHARS = 200;

const modelInput: z.ZodRawShape = {
  model: z.string().min(1).describe('Model name, e.g. "llama3.2" or "qwen3:8b".'),
};

const parameterValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);

const showOutput: z.ZodRawShape = {
  name: z.string(),
  family: z.string().optional(),
  parameter_size: z.string().optional(),
  quantization: z.string().optional(),
  context_length: z.number().optional().describe("Context length the model was trained with."),
  modified_at: z.string().optional(),
  capabilities: z.array(z.string()).describe("What it can do: completion, tools, vision, ..."),
  parameters: z.record(z.string(), parameterValue).describe(
    "Default parameters the model ships with (temperature, stop, ...).",
  ),
  template: z.string().optional().describe("The prompt template."),
  license_summary: z.string().optional().describe("The start of the license text."),
  license_length: z.number().optional().describe("Characters in the whole license."),
};

const runningSchema = z.object({
  name: z.string(),
  size: z.number().optional().describe("Bytes in memory."),
  size_vram: z.number().optional().describe("Bytes of it in GPU memory."),
  expires_at: z.string().optional().describe("When it will be unloaded (ISO 8601)."),
  context_length: z.number().optional().describe("Context window it was loaded with."),
  family: z.string().optional(),
  parameter_size: z.string().optional(),
  quantization: z.string().optional(),
});

const psOutput: z.ZodRawShape = { models: z.array(runningSchema) };

const pullOutput: z.ZodRawShape = {
  model: z.string(),
  status: z.string().describe('The last status, "success".'),
  total: z.number().describe("Bytes of the model."),
  duration_ms: z.number(),
};

const deleteOutput: z.ZodRawShape = {
  model: z.string(),
  deleted: z.boolean(),
};

/** Registers `provider`'s management tools; nothing for a provider without management. */
export function registerManageTools(
  provider: Provider,
  register: Register,
  options: ManageToolOptions = {},
): void {
  const models = provider.modelManagement;
  if (!models) return;
  const { id, label } = provider;

  register(`ai_${id}_show`, {
    title: `Show a ${label} model`,
    description:
      `Shows an installed ${label} model: family, size, quantization, context length, capabilities, default parameters, prompt template and the start of its license.`,
    input: modelInput,
    output: showOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async (args, ctx) => {
    const card = await models.inspect(args.model as string, { signal: ctx.mcpReq.signal });
    const structured = cardContent(card);
    return {
      content: [{ type: "text", text: cardText(structured) }],
      structuredContent: structured,
    };
  });

  register(`ai_${id}_ps`, {
    title: `Loaded ${label} models`,
    description:
      `Lists the ${label} models loaded in memory right now, with their size, the part in GPU memory (VRAM), context length and when they will be unloaded.`,
    input: {},
    output: psOutput,
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async (_args, ctx) => {
    const loaded = (await models.running({ signal: ctx.mcpReq.signal })).map(runningContent);
    return {
      content: [{
        type: "text",
        text: loaded.length
          ? loaded.map(runningLine).join("\n")
          : `No model is loaded in ${label} right now.`,
      }],
      structuredContent: { models: loaded },
    };
  });

  if (!options.allowManagement) return;

  register(`ai_${id}_pull`, {
    title: `Pull a ${label} model`,
    description:
      `Downloads a model into ${label} (or updates it). With a progress token, progress notifications carry the bytes downloaded (progress) of the bytes announced so far (total), with ${label}'s status as the message. Large models take a long time.`,
    input: modelInput,
    output: pullOutput,
    annotations: {
      readOnlyHint: false,
      destructiveHint: false,
      idempotentHint: true,
      openWorldHint: true,
    },
    long: true,
  }, async (args, ctx) => {
    const model = args.model as string;
    const started = performance.now();
    const reporter = progressReporter(ctx);
    let last: PullProgress | undefined;
    try {
      for await (const step of models.pull(model, { signal: ctx.mcpReq.signal })) {
        reporter?.report(step);
        last = step;
        if (step.done) break;
      }
    } catch (error) {
      reporter?.stop();
      throw error;
    }
    if (!last?.done) {
      reporter?.stop();
      throw new RuneError(
        `${label} ended the pull of "${model}" without reporting success: pull it again.`,
      );
    }
    await reporter?.flush();
    const structured = {
      model,
      status: last.status,
      total: last.total,
      duration_ms: Math.round(performance.now() - started),
    };
    return {
      content: [{
        type: "text",
        text: `Pulled ${model} into ${label} (${humanBytes(last.total)}) in ${
          (structured.duration_ms / 1000).toFixed(1)
        } s.`,
      }],
      structuredContent: structured,
    };
  });

  register(`ai_${id}_delete`, {
    title: `Delete a ${label} model`,
    description:
      `Deletes an installed model from ${label}, freeing its disk space. It cannot be undone (the model must be pulled again).`,
    input: modelInput,
    output: deleteOutput,
    annotations: {
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
      openWorldHint: false,
    },
  }, async (args, ctx) => {
    const model = args.model as string;
    await models.delete(model, { signal: ctx.mcpReq.signal });
    return {
      content: [{ type: "text", text: `Deleted ${model} from ${label}.` }],
      structuredContent: { model, deleted: true },
    };
  });
}

/** Sends pull steps as progress notifications, coalesced; see the module doc. */
interface ProgressReporter {
  /** Queues `step` when it moves `progress` forward (replacing a queued one). */
  report(step: PullProgress): void;
  /** Resolves once every queued step has been sent. */
  flush(): Promise<void>;
  /** Drops what is queued (the call failed or was cancelled). */
  stop(): void;
}

type ProgressParams = {
  progressToken: ProgressToken;
  progress: number;
  total?: number;
  message: string;
};

/** A reporter for the call of `ctx`, or undefined when the request has no progress token. */
function progressReporter(ctx: ServerContext): ProgressReporter | undefined {
  const token = ctx.mcpReq._meta?.progressToken;
  if (token === undefined) return undefined;
  const flow = flowOf(ctx.http?.req);
  let sent = -1;
  let queued: ProgressParams | undefined;
  let sending: Promise<void> | undefined;

  async function drain(): Promise<void> {
    while (queued) {
      const params = queued;
      queued = undefined;
      try {
        await ctx.mcpReq.notify({ method: "notifications/progress", params });
        await flow?.ready();
      } catch {
        // The client is gone: its cancel (or the closed connection) ends the pull.
      }
    }
    sending = undefined;
  }

  return {
    report(step) {
      // MCP requires progress to increase with every notification.
      if (!(step.completed > sent)) return;
      sent = step.completed;
      const total = Math.max(step.total, step.completed);
      queued = {
        progressToken: token,
        progress: step.completed,
        ...(total > 0 && { total }),
        message: step.status,
      };
      sending ??= drain();
    },
    async flush() {
      while (sending) await sending;
    },
    stop() {
      queued = undefined;
    },
  };
}

/** Drops undefined members (structured content is JSON). */
function defined<T extends Record<string, unknown>>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The start of a license: its first non-empty lines, joined, until they
 * say enough (40 characters, or 3 lines), at most
 * {@linkcode LICENSE_SUMMARY_CHARS}.
 */
export function licenseSummary(license: string): string {
  const lines = license.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  let summary = "";
  for (const line of lines.slice(0, 3)) {
    summary = summary ? `${summary} ${line}` : line;
    if (summary.length >= 40) break;
  }
  return summary.length > LICENSE_SUMMARY_CHARS
    ? `${summary.slice(0, LICENSE_SUMMARY_CHARS - 1)}…`
    : summary;
}

/** Structured content of `ai_<id>_show`. */
export function cardContent(card: ModelCard): Record<string, unknown> {
  return defined({
    name: card.name,
    family: card.family,
    parameter_size: card.parameterSize,
    quantization: card.quantization,
    context_length: card.contextLength,
    modified_at: card.modifiedAt,
    capabilities: Object.entries(card.capabilities).filter(([, on]) => on).map(([name]) => name),
    parameters: card.parameters,
    template: card.template,
    license_summary: card.license === undefined ? undefined : licenseSummary(card.license),
    license_length: card.license?.length,
  });
}

function cardText(card: Record<string, unknown>): string {
  const lines = [String(card.name)];
  const field = (label: string, value: unknown) => {
    if (value !== undefined && value !== "") lines.push(`${label}: ${value}`);
  };
  field("family", card.family);
  field("parameters", card.parameter_size);
  field("quantization", card.quantization);
  field("context length", card.context_length);
  field("capabilities", (card.capabilities as string[]).join(", "));
  const parameters = Object.entries(card.parameters as Record<string, unknown>);
  if (parameters.length) {
    lines.push("default parameters:");
    for (const [name, value] of parameters) lines.push(`  ${name} ${JSON.stringify(value)}`);
  }
  if (card.license_summary !== undefined) {
    lines.push(`license: ${card.license_summary} (${card.license_length} characters)`);
  }
  if (card.template !== undefined) lines.push(`template:\n${card.template}`);
  return lines.join("\n");
}

/** Structured content of one loaded model. */
export function runningContent(model: RunningModel): Record<string, unknown> {
  return defined({
    name: model.name,
    size: model.size,
    size_vram: model.sizeVram,
    expires_at: model.expiresAt,
    context_length: model.contextLength,
    family: model.family,
    parameter_size: model.parameterSize,
    quantization: model.quantization,
  });
}

/**
 * Where a loaded model runs, as `ollama ps` says it: `100% GPU`,
 * `100% CPU`, or the split (`48%/52% CPU/GPU`).
 */
export function processorOf(size: number | undefined, vram: number | undefined): string {
  if (!size || vram === undefined) return "";
  if (vram <= 0) return "100% CPU";
  if (vram >= size) return "100% GPU";
  const gpu = Math.round((vram / size) * 100);
  return `${100 - gpu}%/${gpu}% CPU/GPU`;
}

function runningLine(model: Record<string, unknown>): string {
  const size = model.size as number | undefined;
  return [
    model.name,
    size !== undefined && humanBytes(size),
    processorOf(size, model.size_vram as number | undefined),
    model.context_length !== undefined && `context ${model.context_length}`,
    model.expires_at !== undefined && `until ${model.expires_at}`,
  ].filter(Boolean).join("  ");
}

/** Bytes in decimal units as Ollama prints them: `2.0 GB`, `45 MB`, `512 B`. */
export function humanBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(value >= 10 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** The management of `provider`, or a clear error when it has none. */
export function managementOf(provider: Provider): ModelManagement {
  if (provider.modelManagement) return provider.modelManagement;
  throw new RuneError(
    `${provider.label} (provider "${provider.id}") does not manage models: only Ollama pulls, lists loaded and deletes models.`,
  );
}
