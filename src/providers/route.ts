/**
 * `provider/model` names, shared by the router tools and the CLI: split at
 * the first `/` (the model name may contain `/` and `:`); a bare name means
 * Ollama.
 *
 * @module
 */

import { RuneError } from "../errors.ts";
import type { Provider } from "./types.ts";

/** The provider that bare model names (without a `provider/` prefix) go to. */
export const DEFAULT_PROVIDER_ID = "ollama";

/** A `provider/model` name resolved to its provider. */
export interface Route {
  /** The provider. */
  provider: Provider;
  /** The model name as the provider knows it. */
  model: string;
}

/**
 * Resolves `name` to a provider and its model name; throws a tool error
 * listing the configured provider ids when the prefix names none.
 */
export function resolveModel(name: string, providers: readonly Provider[]): Route {
  const slash = name.indexOf("/");
  const id = slash < 0 ? DEFAULT_PROVIDER_ID : name.slice(0, slash);
  const model = slash < 0 ? name : name.slice(slash + 1);
  const provider = providers.find((p) => p.id === id);
  const ids = providers.map((p) => p.id).join(", ");
  if (!provider) {
    throw new RuneError(
      slash < 0
        ? `Model "${name}" names no provider: write it as "<provider>/<model>" with one of: ${ids}.`
        : `Unknown provider "${id}" in "${name}": the configured providers are ${ids}.`,
    );
  }
  if (model === "") {
    throw new RuneError(`"${name}" names no model: write it as "${id}/<model>".`);
  }
  return { provider, model };
}
