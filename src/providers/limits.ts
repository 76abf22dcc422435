/**
 * Rate limits of providers (`rpm` and `tpm` in the configuration) as a
 * Provider that wraps a Provider, plus what every limit refusal shares: its
 * error class, the `retryAfter` data clients get, and the `N/s|N/m|N/h`
 * rates of `--rate-limit`.
 *
 * Before a call, the provider's requests-per-minute window is counted and
 * its tokens-per-minute window checked; after it, the tokens it used are
 * added. A provider's own `429` (with its `retry-after`, or one second)
 * blocks further calls until then, so Rune backs off before the provider
 * refuses again. Refusals are {@linkcode LocalRateLimitError}s: rate-limit
 * errors like a provider's `429`, so fallbacks treat them alike.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { type FleetEvents, NO_EVENTS } from "../metrics/events.ts";
import { RATE_PATTERN } from "../config/schema.ts";
import { RateLimitError, UpstreamError } from "./errors.ts";
import type { RateStore, WindowCheck } from "./limiter.ts";
import type {
  CallOptions,
  ChatRequest,
  Chunk,
  EmbedRequest,
  GenerateRequest,
  Provider,
} from "./types.ts";
import { passThrough } from "./wrap.ts";

/** A rate: `limit` per `windowMs`. */
export interface Rate {
  /** Units per window. */
  limit: number;
  /** Window length in ms. */
  windowMs: number;
  /** As written, e.g. `10/m`. */
  text: string;
}

const WINDOWS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000 };

/** Parses `N/s`, `N/m` or `N/h`; `flag` names the source in the error. */
export function parseRate(value: string, flag = "--rate-limit"): Rate {
  const match = RATE_PATTERN.exec(value.trim());
  if (!match) {
    throw new UsageError(
      `${flag} needs a rate such as 10/s, 600/m or 10000/h (a positive whole number per ` +
        `second, minute or hour), got ${JSON.stringify(value)}`,
    );
  }
  return { limit: Number(match[1]), windowMs: WINDOWS[match[2]], text: `${match[1]}/${match[2]}` };
}

/** A rate for people: `10/m` → `10 requests per minute`. */
export function describeRate(rate: Rate): string {
  const unit = rate.windowMs === 1_000 ? "second" : rate.windowMs === 60_000 ? "minute" : "hour";
  return `${rate.limit} request${rate.limit === 1 ? "" : "s"} per ${unit}`;
}

/** Which limit refused a call, as clients see it. */
export interface LimitData {
  /** `client` (--rate-limit) or `provider` (rpm, tpm, or the provider's own 429). */
  scope: "client" | "provider";
  /** `rate_limit`, `rpm`, `tpm` or `upstream`. */
  limit: string;
  /** Seconds to wait before retrying (at least 1). */
  retryAfter: number;
}

/** A call refused by one of Rune's own limits (nothing was sent upstream). */
export class LocalRateLimitError extends RateLimitError {
  /** Not the upstream's failure: not counted as an upstream error. */
  readonly local = true;
  /** Which limit, for the client. */
  readonly data: LimitData;

  /** Create the refusal; `message` says which limit and when to retry. */
  constructor(data: LimitData, message: string) {
    super(429, message, { retryAfterMs: data.retryAfter * 1000, retryable: true });
    this.data = data;
  }
}

/** Seconds to wait, from ms: at least 1, whole seconds. */
export function retrySeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * The `structuredContent` (or JSON-RPC error data) of a rate-limit refusal:
 * Rune's own limits, or a provider's `429` that reached the client.
 */
export function limitData(error: unknown): (LimitData & { error: "rate_limited" }) | undefined {
  if (error instanceof LocalRateLimitError) return { error: "rate_limited", ...error.data };
  if (error instanceof UpstreamError && (error instanceof RateLimitError || error.status === 429)) {
    return {
      error: "rate_limited",
      scope: "provider",
      limit: "upstream",
      retryAfter: retrySeconds(error.retryAfterMs ?? 1000),
    };
  }
  return undefined;
}

/** A provider's limits from the configuration. */
export interface ProviderLimits {
  /** Requests per minute. */
  rpm?: number;
  /** Tokens (prompt + completion) per minute. */
  tpm?: number;
}

/** Options of {@linkcode withLimits}. */
export interface LimitsOptions {
  /** Where the windows are counted (memory, or Redis shared by instances). */
  store: RateStore;
  /**
   * The provider's `rpm` and `tpm`.
   * @default none (only its 429s hold calls back)
   */
  limits?: ProviderLimits;
  /** Refusals are reported here. */
  events?: FleetEvents;
  /**
   * How long a provider's 429 without `retry-after` holds calls, in ms.
   * @default 1000
   */
  defaultBlockMs?: number;
}

const MINUTE = 60_000;

/** Wraps `provider` with its `rpm`/`tpm` limits and its 429 back-off. */
export function withLimits(provider: Provider, options: LimitsOptions): Provider {
  const { store } = options;
  const limits = options.limits ?? {};
  const events = options.events ?? NO_EVENTS;
  const defaultBlockMs = options.defaultBlockMs ?? 1_000;
  const id = provider.id;
  const checks: WindowCheck[] = [];
  const names: string[] = [];
  if (limits.rpm) {
    checks.push({ key: `provider:${id}:rpm`, limit: limits.rpm, windowMs: MINUTE, cost: 1 });
    names.push("rpm");
  }
  if (limits.tpm) {
    checks.push({ key: `provider:${id}:tpm`, limit: limits.tpm, windowMs: MINUTE, cost: 0 });
    names.push("tpm");
  }
  const blockKey = `provider:${id}:block`;

  async function admit(): Promise<void> {
    const verdict = await store.take(checks, blockKey);
    if (verdict.allowed) return;
    events.rateLimited("provider");
    const retryAfter = retrySeconds(verdict.retryAfterMs);
    const limit = verdict.index < 0 ? "upstream" : names[verdict.index];
    const why = limit === "rpm"
      ? `at most ${limits.rpm} requests per minute (rpm in the configuration)`
      : limit === "tpm"
      ? `at most ${limits.tpm} tokens per minute (tpm in the configuration), used up this minute`
      : "it answered 429 (rate limited) and Rune holds further calls until the time it gave";
    throw new LocalRateLimitError(
      { scope: "provider", limit, retryAfter },
      `Rate limit reached for provider "${id}": ${why}; retry in ${retryAfter} s.`,
    );
  }

  async function used(tokens: number): Promise<void> {
    if (limits.tpm && tokens > 0) {
      await store.add(`provider:${id}:tpm`, { windowMs: MINUTE, amount: tokens });
    }
  }

  async function refused(error: unknown): Promise<void> {
    if (error instanceof LocalRateLimitError) return;
    if (
      error instanceof UpstreamError && (error instanceof RateLimitError || error.status === 429)
    ) {
      await store.block(blockKey, error.retryAfterMs ?? defaultBlockMs);
    }
  }

  async function* complete(call: () => AsyncIterable<Chunk>): AsyncGenerator<Chunk> {
    await admit();
    try {
      for await (const chunk of call()) {
        if (chunk.type === "done") {
          const u = chunk.result.usage;
          await used((u.promptTokens ?? 0) + (u.completionTokens ?? 0));
        }
        yield chunk;
      }
    } catch (error) {
      await refused(error);
      throw error;
    }
  }

  return {
    ...passThrough(provider),
    generate: (request: GenerateRequest, o?: CallOptions) =>
      complete(() => provider.generate(request, o)),
    chat: (request: ChatRequest, o?: CallOptions) => complete(() => provider.chat(request, o)),
    async embed(request: EmbedRequest, o?: CallOptions) {
      await admit();
      try {
        const result = await provider.embed(request, o);
        await used(result.usage.promptTokens ?? 0);
        return result;
      } catch (error) {
        await refused(error);
        throw error;
      }
    },
  };
}
