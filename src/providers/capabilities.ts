/**
 * Capability checks shared by providers: what a request needs beyond plain
 * completion, and the error when the model lacks it, raised before the
 * request is sent.
 *
 * @module
 */

import { CapabilityError } from "./errors.ts";
import type { Capabilities, Image, ModelDetails, Think } from "./types.ts";

/** A capability a request can need. */
export type Capability = keyof Capabilities;

/** What to suggest when a model lacks a capability, by capability. */
export type CapabilityAdvice = Record<Capability, string>;

/** Provider-neutral advice; providers pass their own with model names they serve. */
export const GENERIC_CAPABILITY_ADVICE: CapabilityAdvice = {
  completion: "pick a text generation model",
  streaming: "use a streaming-capable model",
  vision: "pick a vision model",
  tools: "pick a model with tool support",
  embeddings: "pick an embedding model",
  thinking: 'pick a thinking model, or leave "think" off',
};

/** The capabilities a completion request needs beyond plain completion. */
export function neededFor(
  { images, tools, think }: { images?: Image[]; tools?: unknown[]; think?: Think },
): Capability[] {
  const needed: Capability[] = [];
  if (images?.length) needed.push("vision");
  if (tools?.length) needed.push("tools");
  if (think) needed.push("thinking");
  return needed;
}

/** The error for `model` lacking `capability`; `advice` says what to pick instead. */
export function capabilityError(
  model: string,
  capability: Capability,
  options: { advice?: CapabilityAdvice; cause?: unknown } = {},
): CapabilityError {
  const what = capability === "vision" ? "images" : capability;
  const advice = (options.advice ?? GENERIC_CAPABILITY_ADVICE)[capability];
  return new CapabilityError(
    model,
    capability,
    `Model "${model}" does not support ${what}: ${advice}.`,
    { cause: options.cause },
  );
}

/**
 * Throws {@linkcode CapabilityError} for the first capability in `needed`
 * that `details` lacks. A backend that did not report capabilities
 * (`capabilitiesKnown` false) decides for itself.
 */
export function requireCapabilities(
  details: ModelDetails,
  needed: readonly Capability[],
  options: { model: string; advice?: CapabilityAdvice },
): void {
  if (!details.capabilitiesKnown) return;
  for (const capability of needed) {
    if (!details.capabilities[capability]) {
      throw capabilityError(options.model, capability, { advice: options.advice });
    }
  }
}
