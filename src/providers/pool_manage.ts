/**
 * Model management over a pool of hosts (see `pool.ts`): every host of the
 * pool serves the same provider id, so a model pulled or deleted through
 * Rune is pulled or deleted on every host; the pool routes a call to any
 * host that has the model, and a model on only some hosts would quietly
 * narrow that choice.
 *
 * - `pull`: one host after another, in the pool's order, streaming each
 *   host's steps with its address in front of the status. `completed` and
 *   `total` add up the finished hosts and the current one, so `completed`
 *   never goes back; only the last host's final step says `done`. A host
 *   that fails stops the pull with its error (the hosts before it keep the
 *   model; pulling again resumes what is missing).
 * - `delete`: on every host that has the model; not installed anywhere is
 *   `ModelNotFoundError`. A host that is unreachable fails the delete after
 *   the others were tried, so nothing is silently left behind.
 * - `running`: the loaded models of every host that answers.
 * - `inspect`: from the first host that has the model.
 *
 * @module
 */

import { isAbortError } from "../errors.ts";
import { ModelNotFoundError } from "./errors.ts";
import type {
  CallOptions,
  ModelCard,
  ModelManagement,
  PullProgress,
  RunningModel,
} from "./types.ts";

/** A host of the pool that can manage models. */
export interface ManagedHost {
  /** `host:port`, shown in front of pull steps. */
  address: string;
  /** The host's own model management. */
  management: ModelManagement;
  /** Told when a pull or delete on this host succeeded, so routing knows at once. */
  changed?: (model: string, installed: boolean) => void;
}

/** Model management that applies to every host of a pool. */
export function poolModelManagement(hosts: readonly ManagedHost[]): ModelManagement {
  async function* pull(model: string, options: CallOptions = {}): AsyncIterable<PullProgress> {
    let finished = 0;
    for (const [index, host] of hosts.entries()) {
      const last = index === hosts.length - 1;
      let step: PullProgress = { status: "", completed: 0, total: 0, done: false };
      for await (step of host.management.pull(model, options)) {
        yield {
          status: hosts.length > 1 ? `${host.address}: ${step.status}` : step.status,
          completed: finished + step.completed,
          total: finished + step.total,
          done: last && step.done,
        };
      }
      finished += step.total;
      host.changed?.(model, true);
    }
  }

  async function remove(model: string, options: CallOptions = {}): Promise<void> {
    let deleted = 0;
    let failure: unknown;
    for (const host of hosts) {
      try {
        await host.management.delete(model, options);
        host.changed?.(model, false);
        deleted++;
      } catch (error) {
        if (isAbortError(error) || options.signal?.aborted) throw error;
        if (!(error instanceof ModelNotFoundError)) failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
    if (deleted === 0) {
      throw new ModelNotFoundError(
        model,
        `Model "${model}" is not installed on any host (${
          hosts.map((h) => h.address).join(", ")
        }): list the installed models with ai_list_models.`,
      );
    }
  }

  async function running(options: CallOptions = {}): Promise<RunningModel[]> {
    const settled = await Promise.allSettled(hosts.map((h) => h.management.running(options)));
    const answered = settled.filter((s) => s.status === "fulfilled");
    if (answered.length === 0) throw (settled[0] as PromiseRejectedResult).reason;
    return answered.flatMap((s) => (s as PromiseFulfilledResult<RunningModel[]>).value);
  }

  async function inspect(model: string, options: CallOptions = {}): Promise<ModelCard> {
    let failure: unknown;
    for (const host of hosts) {
      try {
        return await host.management.inspect(model, options);
      } catch (error) {
        if (isAbortError(error) || options.signal?.aborted) throw error;
        failure ??= error;
      }
    }
    throw failure;
  }

  return { pull, delete: remove, running, inspect };
}
