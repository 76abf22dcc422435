/**
 * The Ollama provider's public surface: {@linkcode createOllamaProvider},
 * its options and defaults, and the `keep_alive` check the MCP tools use.
 *
 * @module
 */

export {
  createOllamaProvider,
  DEFAULT_OLLAMA_TIMEOUTS,
  type OllamaProviderOptions,
  type OllamaTimeouts,
} from "./client.ts";
export { toCapabilities } from "./convert.ts";
export { GO_DURATION_PATTERN, goDurationError, keepAliveError } from "./keep_alive.ts";
