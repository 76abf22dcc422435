/**
 * The OpenAI-compatible provider's public surface:
 * {@linkcode createOpenAiProvider}, its options and defaults, and the
 * rules requests follow per dialect.
 *
 * @module
 */

export {
  createOpenAiProvider,
  DEFAULT_OPENAI_BASE_URL,
  type OpenAiProviderOptions,
} from "./client.ts";
export { type Dialect, dialectOf, isOpenAiReasoningModel, reasoningEffort } from "./convert.ts";
export { MAX_TOOL_CALLS } from "./stream.ts";
