/**
 * Ollama's model management behind the provider-neutral
 * {@linkcode ModelManagement}: `/api/pull` (streamed, see `pull.ts`),
 * `DELETE /api/delete`, `/api/ps` and `/api/show`.
 *
 * @module
 */

import { ModelNotFoundError } from "../errors.ts";
import { exchange, type HttpRequest, type HttpUpstream, requestJson, startCall } from "../http.ts";
import { readText } from "../stream.ts";
import type {
  CallOptions,
  ModelCard,
  ModelManagement,
  PullProgress,
  RunningModel,
} from "../types.ts";
import { checkReply, type Shape } from "../validate.ts";
import { normalizeModelName, toModelCard, toRunningModel } from "./convert.ts";
import { notInstalledError, ollamaHttpError, type OllamaSource, pullError } from "./errors.ts";
import { streamPull } from "./pull.ts";
import { psShape, showShape } from "./wire.ts";

/** What {@linkcode createOllamaManagement} works with. */
export interface OllamaManagementDeps {
  /** The provider's upstream (deadlines and budgets of ordinary calls). */
  upstream: HttpUpstream;
  /** Where errors come from, for messages. */
  source: OllamaSource;
  /** Longest silence from Ollama during a pull, in milliseconds. */
  pullIdleMs: number;
  /** Drops what the provider cached about `model` (it was pulled or deleted). */
  forget(model: string): void;
}

/** Creates Ollama's {@linkcode ModelManagement}. */
export function createOllamaManagement(deps: OllamaManagementDeps): ModelManagement {
  const { upstream, source } = deps;

  async function call<T>(request: HttpRequest, shape: Shape<T>): Promise<T> {
    return checkReply(await requestJson(upstream, request), shape, upstream, request.path);
  }

  async function* pull(model: string, options: CallOptions = {}): AsyncGenerator<PullProgress> {
    // Hours are normal for a pull: no total limit, a long idle limit (see pull.ts).
    const pullUpstream: HttpUpstream = {
      ...upstream,
      timeouts: { ...upstream.timeouts, idleMs: deps.pullIdleMs, totalMs: Infinity },
      httpError: (reply) => ollamaHttpError(source, reply, (s, e) => pullError(s, { ...e, model })),
    };
    try {
      yield* streamPull(pullUpstream, {
        model,
        signal: options.signal,
        lineError: (message) => pullError(source, { status: 200, message, model }),
      });
    } finally {
      // Whatever happened, the model list and its details may have changed.
      deps.forget(model);
    }
  }

  async function remove(model: string, options: CallOptions = {}): Promise<void> {
    const deadline = startCall(upstream, options.signal);
    try {
      const response = await exchange(upstream, {
        method: "DELETE",
        path: "/api/delete",
        payload: { model },
        model,
        deadline,
      });
      // Ollama answers 200 with an empty body; read (a bounded prefix of) it to free the connection.
      await readText(response.body, {
        maxBytes: upstream.limits.maxErrorBytes,
        signal: deadline.signal,
      });
    } catch (error) {
      if (error instanceof ModelNotFoundError) throw notInstalledError(source, model, error);
      throw error;
    } finally {
      deadline.dispose();
      deps.forget(model);
    }
  }

  async function running(options: CallOptions = {}): Promise<RunningModel[]> {
    const body = await call({ ...options, method: "GET", path: "/api/ps" }, psShape);
    return (body.models ?? []).map(toRunningModel);
  }

  async function inspect(model: string, options: CallOptions = {}): Promise<ModelCard> {
    // Not cached: an explicit look at one model should see what Ollama has now.
    const body = await call(
      { ...options, method: "POST", path: "/api/show", payload: { model }, model },
      showShape,
    );
    return toModelCard(normalizeModelName(model), body);
  }

  return { pull, delete: remove, running, inspect };
}
