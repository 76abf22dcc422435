/**
 * Ollama's error replies mapped onto typed errors: an HTTP error body
 * (`{"error": "..."}`) or an error line in a stream. The texts matched are
 * Ollama's own (`server/routes.go`, `server/sched.go`).
 *
 * @module
 */

import { type Capability, type CapabilityAdvice, capabilityError } from "../capabilities.ts";
import {
  InvalidResponseError,
  ModelNotFoundError,
  type ProviderError,
  UpstreamError,
} from "../errors.ts";
import { describeBody, type ErrorReply } from "../http.ts";
import { errorBodySchema } from "./wire.ts";

/** Where an Ollama error came from, for the messages. */
export interface OllamaSource {
  /** `host:port` for messages. */
  address: string;
  /** What to suggest instead of a model lacking a capability. */
  advice: CapabilityAdvice;
}

/**
 * Maps an HTTP error reply from Ollama onto a typed error: the message of
 * an Ollama error body goes through `map` (default {@linkcode ollamaError}).
 */
export function ollamaHttpError(
  source: OllamaSource,
  reply: ErrorReply,
  map: (
    source: OllamaSource,
    error: { status: number; message: string; model?: string },
  ) => ProviderError = ollamaError,
): ProviderError {
  let message: string | undefined;
  if (!reply.truncated) {
    try {
      const parsed = errorBodySchema.safeParse(JSON.parse(reply.text));
      if (parsed.success) message = parsed.data.error;
    } catch {
      // Not JSON: reported below with a preview of the body.
    }
  }
  if (message === undefined) {
    return new InvalidResponseError(
      `Ollama at ${source.address} answered ${reply.path} with HTTP ${reply.status} and a body that is not an Ollama error (${
        describeBody(reply.contentType, reply.text, reply.truncated)
      }): is OLLAMA_HOST pointing at Ollama and not at a proxy or another service?`,
    );
  }
  return map(source, { status: reply.status, message, model: reply.model });
}

/** Maps an error Ollama reported (`status` 200: a line inside a stream) onto a typed error. */
export function ollamaError(
  source: OllamaSource,
  { status, message, model }: { status: number; message: string; model?: string },
): ProviderError {
  const cause = new Error(message);
  const { address } = source;
  if (
    model && (status === 404 || /not found/i.test(message)) &&
    /model/i.test(message)
  ) {
    return new ModelNotFoundError(
      model,
      `Model "${model}" is not installed on Ollama at ${address}: run "ollama pull ${model}", or pick one from "rune ai list".`,
      { cause },
    );
  }
  const unsupported = /does not support (\w+)/i.exec(message);
  if (model && unsupported) {
    return capabilityError(model, capabilityNamed(unsupported[1]), {
      advice: source.advice,
      cause,
    });
  }
  if (status === 503) {
    // server/sched.go ErrMaxQueue: "server busy, please try again.  maximum pending requests exceeded"
    return new UpstreamError(
      status,
      `Ollama at ${address} is busy (HTTP 503: ${message}): too many requests are waiting; retry in a moment, or raise OLLAMA_MAX_QUEUE or OLLAMA_NUM_PARALLEL on the Ollama server.`,
      { cause },
    );
  }
  if (status === 429) {
    return new UpstreamError(
      status,
      `Ollama at ${address} is rate limiting requests (HTTP 429: ${message}): wait a moment and retry; cloud models have usage limits.`,
      { cause },
    );
  }
  const where = status === 200 ? "in the middle of the reply" : `with HTTP ${status}`;
  return new UpstreamError(
    status,
    `Ollama at ${address} reported an error ${where}: ${message}${
      status >= 500 || status === 200 ? " (check the Ollama server log)" : ""
    }`,
    { cause },
  );
}

/** The capability an Ollama "does not support X" message names. */
function capabilityNamed(word: string): Capability {
  const lower = word.toLowerCase();
  if (lower.startsWith("embed")) return "embeddings";
  if (lower.startsWith("image") || lower.startsWith("vision")) return "vision";
  if (lower.startsWith("think")) return "thinking";
  if (lower.startsWith("tool")) return "tools";
  return "completion";
}

/** What Ollama says when the registry has no such model (`os.ErrNotExist` in `pullModelManifest`). */
const NO_MANIFEST = /pull model manifest: file does not exist/i;
/** Ollama could not reach its registry (Go's net errors). */
const REGISTRY_UNREACHABLE =
  /dial tcp|no such host|i\/o timeout|connection refused|connection reset|TLS handshake|certificate/i;

/**
 * Maps an error of a pull (an HTTP error status, or an `{"error"}` line in
 * the middle of the progress) onto a typed error that names the model.
 */
export function pullError(
  source: OllamaSource,
  { status, message, model }: { status: number; message: string; model: string },
): ProviderError {
  const cause = new Error(message);
  const { address } = source;
  if (NO_MANIFEST.test(message)) {
    return new ModelNotFoundError(
      model,
      `Ollama's library has no model "${model}" (Ollama at ${address} answered: ${message}): check the name and tag at https://ollama.com/library.`,
      { cause },
    );
  }
  if (status === 400) {
    return new UpstreamError(
      status,
      `Ollama at ${address} refused to pull "${model}" (HTTP 400: ${message}): a model name looks like "llama3.2", "llama3.2:1b" or "namespace/model:tag".`,
      { cause },
    );
  }
  if (REGISTRY_UNREACHABLE.test(message)) {
    return new UpstreamError(
      status,
      `Ollama at ${address} could not reach its model registry to pull "${model}" (${message}): check that the machine running Ollama is online (and its HTTPS_PROXY, if it needs one), then pull again.`,
      { cause },
    );
  }
  const where = status === 200 ? "in the middle of pulling" : `with HTTP ${status} to pulling`;
  return new UpstreamError(
    status,
    `Ollama at ${address} reported an error ${where} "${model}": ${message} (check the Ollama server log; pulling again resumes the download).`,
    { cause },
  );
}

/** The error for deleting a model Ollama does not have (its 404 `model 'x' not found`). */
export function notInstalledError(
  source: OllamaSource,
  model: string,
  cause: unknown,
): ModelNotFoundError {
  return new ModelNotFoundError(
    model,
    `Model "${model}" is not installed on Ollama at ${source.address}, so there is nothing to delete: "rune ai list" shows the installed models.`,
    { cause },
  );
}
