/**
 * An in-process fake `Provider` for testing the MCP layer apart from any
 * wire format: it streams scripted chunks, records every call with its
 * signal, can fail on demand, and counts how many chunks a consumer pulled
 * (to observe backpressure). With `management`, it also manages models
 * (`modelManagement`): scripted pull progress, a list of loaded models, deletes.
 *
 * @module
 */

import type {
  CallOptions,
  Capabilities,
  ChatRequest,
  Chunk,
  EmbedRequest,
  EmbedResult,
  FinalResult,
  GenerateRequest,
  ModelCard,
  ModelDetails,
  ModelInfo,
  ModelManagement,
  Provider,
  PullProgress,
  RunningModel,
  ToolCall,
} from "../src/providers/types.ts";
import { ModelNotFoundError } from "../src/providers/errors.ts";

/** A recorded call. */
export interface FakeCall {
  /** Which method. */
  method:
    | "generate"
    | "chat"
    | "embed"
    | "listModels"
    | "showModel"
    | "pull"
    | "delete"
    | "running"
    | "inspect";
  /** The request as the provider received it. */
  request: unknown;
  /** The call's signal. */
  signal?: AbortSignal;
}

/** Options of {@linkcode createFakeProvider}. */
export interface FakeProviderOptions {
  /**
   * Provider id (tool names are `ai_<id>_*`).
   * @default "fake"
   */
  id?: string;
  /**
   * Models it lists.
   * @default [{ name: "m1" }]
   */
  models?: ModelInfo[];
  /**
   * Whether it has embeddings (its embed tool is registered).
   * @default true
   */
  embeddings?: boolean;
  /** A log of `start:<id>` and `end:<id>` to share between fakes (to observe concurrency). */
  events?: string[];
  /**
   * Whether it manages models (has `modelManagement`: pull, delete, running, inspect).
   * @default false
   */
  management?: boolean;
}

/** The fake and its controls. */
export interface FakeProvider extends Provider {
  /** Every call so far. */
  calls: FakeCall[];
  /** Text chunks the next completion streams (then its final result). Default: the prompt's words. */
  script?: string[];
  /** Thinking chunks streamed before the text. */
  thinking?: string[];
  /** Tool calls the next chat returns. */
  toolCalls?: ToolCall[];
  /** Makes the next call throw this error (once). */
  failNext?: Error;
  /**
   * Streams {@linkcode ENDLESS_CHUNK} forever (until aborted), yielding to the
   * event loop between chunks as a network read does: for cancel and
   * backpressure tests.
   */
  endless?: boolean;
  /** Chunks handed to consumers so far, across calls. */
  pulled: number;
  /** `start` and `end` of each completion, in order, shared with other fakes (see `events` option). */
  events: string[];
  /** Resolves when a completion has handed out `n` chunks in total. */
  waitForPulled(n: number): Promise<void>;
  /**
   * Steps the next pull yields (then it ends). Default: {@linkcode DEFAULT_PULL_STEPS}.
   * With {@linkcode FakeProvider.endlessPull}, the pull keeps going after them.
   */
  pullScript?: PullProgress[];
  /** The pull never ends on its own: a step every turn of the event loop until aborted. */
  endlessPull?: boolean;
  /** The next pull fails with this error after its scripted steps (once). */
  pullError?: Error;
  /** Models it reports as loaded. */
  loaded: RunningModel[];
  /** Models it has installed (delete removes them; deleting another fails). */
  installed: Set<string>;
  /** Resolves once a pull is running (its first step handed out). */
  waitForPull(): Promise<void>;
  /** Resolves when the pull running (or the next one) has ended, however it ended. */
  waitForPullEnd(): Promise<void>;
}

/** What a pull yields when no script is set: a manifest, one layer, success. */
export const DEFAULT_PULL_STEPS: readonly PullProgress[] = [
  { status: "pulling manifest", completed: 0, total: 0, done: false },
  { status: "pulling 0123456789ab", completed: 500, total: 1000, done: false },
  { status: "pulling 0123456789ab", completed: 1000, total: 1000, done: false },
  { status: "success", completed: 1000, total: 1000, done: true },
];

/** What an endless stream sends per chunk: 600 characters. */
export const ENDLESS_CHUNK = " token".repeat(100);

const ALL: Capabilities = {
  completion: true,
  streaming: true,
  vision: true,
  tools: true,
  embeddings: true,
  thinking: true,
};

/** Creates a fake provider. */
export function createFakeProvider(options: FakeProviderOptions = {}): FakeProvider {
  const waiters = new Set<{ n: number; resolve: () => void }>();

  function takeFailure(): void {
    const error = fake.failNext;
    if (error) {
      fake.failNext = undefined;
      throw error;
    }
  }

  function pulledOne(): void {
    fake.pulled++;
    for (const waiter of waiters) {
      if (fake.pulled >= waiter.n) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  async function* complete(
    model: string,
    prompt: string,
    call: CallOptions,
    toolCalls: ToolCall[],
  ): AsyncGenerator<Chunk> {
    fake.events.push(`start:${fake.id}`);
    try {
      takeFailure();
    } catch (error) {
      fake.events.push(`end:${fake.id}`);
      throw error;
    }
    const words = fake.script ?? prompt.split(/(?=\s)/);
    let text = "";
    let thinking = "";
    for (const thought of fake.thinking ?? []) {
      call.signal?.throwIfAborted();
      thinking += thought;
      pulledOne();
      yield { type: "thinking", text: thought };
    }
    for (let i = 0; fake.endless || i < words.length; i++) {
      // Lets aborts and other tasks run between chunks, as a network read would.
      if (fake.endless) await new Promise((resolve) => setTimeout(resolve, 0));
      else await Promise.resolve();
      call.signal?.throwIfAborted();
      const delta = fake.endless ? ENDLESS_CHUNK : words[i];
      text += delta;
      pulledOne();
      yield { type: "text", text: delta };
    }
    if (toolCalls.length) yield { type: "tool_calls", toolCalls };
    fake.events.push(`end:${fake.id}`);
    const result: FinalResult = {
      model,
      text,
      ...(thinking && { thinking }),
      toolCalls,
      doneReason: toolCalls.length ? "tool_calls" : "stop",
      usage: { promptTokens: 3, completionTokens: words.length, totalMs: 1 },
    };
    yield { type: "done", result };
  }

  const pullWaiters = new Set<() => void>();
  let pulling = false;
  const pullEndWaiters = new Set<() => void>();

  async function* pull(model: string, call: CallOptions = {}): AsyncGenerator<PullProgress> {
    fake.calls.push({ method: "pull", request: model, signal: call.signal });
    takeFailure();
    const steps = fake.pullScript ?? DEFAULT_PULL_STEPS;
    fake.pullScript = undefined;
    try {
      for (const step of steps) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        call.signal?.throwIfAborted();
        if (!pulling) {
          pulling = true;
          for (const wake of pullWaiters) wake();
          pullWaiters.clear();
        }
        if (step.done) fake.installed.add(model);
        yield step;
      }
      let completed = steps.at(-1)?.completed ?? 0;
      while (fake.endlessPull) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        call.signal?.throwIfAborted();
        completed++;
        yield { status: "pulling forever", completed, total: completed * 2, done: false };
      }
      const error = fake.pullError;
      if (error) {
        fake.pullError = undefined;
        throw error;
      }
    } finally {
      pulling = false;
      for (const wake of pullEndWaiters) wake();
      pullEndWaiters.clear();
    }
  }

  const models: ModelManagement = {
    pull,
    delete(model, call = {}) {
      fake.calls.push({ method: "delete", request: model, signal: call.signal });
      if (!fake.installed.delete(model)) {
        return Promise.reject(
          new ModelNotFoundError(model, `Model "${model}" is not installed on ${fake.label}.`),
        );
      }
      return Promise.resolve();
    },
    running(call = {}) {
      fake.calls.push({ method: "running", request: undefined, signal: call.signal });
      return Promise.resolve(fake.loaded);
    },
    inspect(model, call = {}) {
      fake.calls.push({ method: "inspect", request: model, signal: call.signal });
      if (!fake.installed.has(model)) {
        return Promise.reject(
          new ModelNotFoundError(model, `Model "${model}" is not installed on ${fake.label}.`),
        );
      }
      const card: ModelCard = {
        name: model,
        family: "llama",
        parameterSize: "3.2B",
        quantization: "Q4_K_M",
        contextLength: 131072,
        capabilities: { ...ALL, vision: false, embeddings: false, thinking: false },
        capabilitiesKnown: true,
        extra: {},
        parameters: { stop: ["<|eot_id|>"], temperature: 0.6 },
        template: "{{ .Prompt }}",
        license:
          "\nLLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLlama 3.2 Version Release Date: September 25, 2024\n\nMore terms.",
      };
      return Promise.resolve(card);
    },
  };

  const fake: FakeProvider = {
    id: options.id ?? "fake",
    type: "fake",
    label: `Fake ${options.id ?? "fake"}`,
    address: "fake://in-process",
    calls: [],
    pulled: 0,
    events: options.events ?? [],
    capabilities: () => ({ ...ALL, embeddings: options.embeddings ?? true }),
    listModels(call = {}) {
      fake.calls.push({ method: "listModels", request: undefined, signal: call.signal });
      try {
        takeFailure();
      } catch (error) {
        return Promise.reject(error);
      }
      return Promise.resolve(options.models ?? [{ name: "m1" }]);
    },
    showModel(model, call = {}) {
      fake.calls.push({ method: "showModel", request: model, signal: call.signal });
      const details: ModelDetails = {
        name: model,
        capabilities: ALL,
        capabilitiesKnown: true,
        extra: {},
      };
      return Promise.resolve(details);
    },
    generate(request: GenerateRequest, call = {}) {
      fake.calls.push({ method: "generate", request, signal: call.signal });
      return complete(request.model, request.prompt, call, []);
    },
    chat(request: ChatRequest, call = {}) {
      fake.calls.push({ method: "chat", request, signal: call.signal });
      const last = request.messages.at(-1)?.content ?? "";
      const calls = fake.toolCalls ?? [];
      fake.toolCalls = undefined;
      return complete(request.model, last, call, calls);
    },
    embed(request: EmbedRequest, call = {}): Promise<EmbedResult> {
      fake.calls.push({ method: "embed", request, signal: call.signal });
      try {
        takeFailure();
      } catch (error) {
        return Promise.reject(error);
      }
      const inputs = Array.isArray(request.input) ? request.input : [request.input];
      return Promise.resolve({
        model: request.model,
        embeddings: inputs.map((text) => [text.length, 0.5, -1]),
        usage: { promptTokens: inputs.length },
      });
    },
    ping: () => Promise.resolve("fake 1.0"),
    ...(options.management && { modelManagement: models }),
    loaded: [],
    installed: new Set(["m1"]),
    waitForPull() {
      if (pulling) return Promise.resolve();
      return new Promise((resolve) => pullWaiters.add(resolve));
    },
    waitForPullEnd() {
      return new Promise((resolve) => pullEndWaiters.add(resolve));
    },
    waitForPulled(n) {
      if (fake.pulled >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.add({ n, resolve }));
    },
  };
  return fake;
}
