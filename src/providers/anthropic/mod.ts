/**
 * The Anthropic provider's public surface: {@linkcode createAnthropicProvider},
 * its options and defaults.
 *
 * @module
 */

export {
  ANTHROPIC_VERSION,
  type AnthropicAuthScheme,
  type AnthropicProviderOptions,
  createAnthropicProvider,
  DEFAULT_ANTHROPIC_URL,
  MAX_MODEL_PAGES,
  MODELS_PAGE_SIZE,
} from "./client.ts";
export {
  DEFAULT_MAX_TOKENS,
  DEFAULT_THINKING_BUDGET,
  IMAGE_MEDIA_TYPES,
  MIN_THINKING_BUDGET,
} from "./convert.ts";
