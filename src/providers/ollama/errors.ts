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

/** Maps an HTTP error reply from Ollama onto a typed error. */
export function ollamaHttpError(source: OllamaSource, reply: ErrorReply): ProviderError {
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
  return ollamaError(source, { status: reply.status, message, model: reply.model });
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
