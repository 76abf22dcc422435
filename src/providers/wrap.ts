/**
 * What a provider wrapper (cache, limits) hands on unchanged: the wrapped
 * provider's identity, capabilities, model lists, ping and model
 * management. Wrappers spread this and replace the calls they change.
 *
 * @module
 */

import type { CallOptions, Provider } from "./types.ts";

/** The parts of `provider` a wrapper passes straight through. */
export type PassThrough = Omit<Provider, "generate" | "chat" | "embed">;

/**
 * Passes `provider` through. Model downloads and deletions are neither
 * cached nor rate limited, so its model management goes as it is.
 */
export function passThrough(provider: Provider): PassThrough {
  return {
    id: provider.id,
    type: provider.type,
    label: provider.label,
    address: provider.address,
    ...(provider.credentialSource && { credentialSource: provider.credentialSource }),
    ...(provider.modelManagement && { modelManagement: provider.modelManagement }),
    capabilities: () => provider.capabilities(),
    listModels: (o?: CallOptions) => provider.listModels(o),
    showModel: (model: string, o?: CallOptions) => provider.showModel(model, o),
    ping: (o?: CallOptions) => provider.ping(o),
  };
}
