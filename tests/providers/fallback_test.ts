/**
 * Fallbacks across models with fake providers: a rate-limited, overloaded
 * or unreachable first model gives way to the next before its first token
 * and the result names the model that answered; after the first token, or
 * for other failures, nothing moves; provider-specific arguments stay home.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  ModelNotFoundError,
  OverloadedError,
  ProviderUnreachableError,
  RateLimitError,
} from "../../src/providers/errors.ts";
import { withFallbacks } from "../../src/providers/fallback.ts";
import type { GenerateRequest } from "../../src/providers/types.ts";
import { collect } from "../../src/providers/types.ts";
import { createFakeProvider } from "../fake_provider.ts";

function setup() {
  const anthropic = createFakeProvider({ id: "anthropic" });
  const openai = createFakeProvider({ id: "openai" });
  const ollama = Object.assign(createFakeProvider({ id: "ollama" }), { type: "ollama" });
  const events = { fallbacks: 0 };
  const [a] = withFallbacks([anthropic, openai, ollama], {
    "anthropic/claude-sonnet-4-6": ["openai/gpt-4.1", "ollama/llama3.2"],
  }, { events: { fallback: () => events.fallbacks++ } as never });
  return { a, anthropic, openai, ollama, events };
}

Deno.test("fallbacks: a rate-limited, overloaded or down model gives way to the next", async () => {
  for (
    const failure of [
      new RateLimitError(429, "rate limited"),
      new OverloadedError(529, "overloaded"),
      new ProviderUnreachableError("refused", "refused"),
    ]
  ) {
    const { a, anthropic, openai, events } = setup();
    anthropic.failNext = failure;
    const result = await collect(a.generate({ model: "claude-sonnet-4-6", prompt: "hi there" }));
    assert.equal(result.model, "openai/gpt-4.1", failure.message);
    assert.equal(result.text, "hi there");
    assert.equal((openai.calls[0].request as GenerateRequest).model, "gpt-4.1");
    assert.equal(events.fallbacks, 1);
  }
});

Deno.test("fallbacks: the chain goes on to the last model, whose failure is the answer", async () => {
  const { a, anthropic, openai, ollama, events } = setup();
  anthropic.failNext = new RateLimitError(429, "first");
  openai.failNext = new OverloadedError(503, "second");
  const result = await collect(
    a.generate({
      model: "claude-sonnet-4-6",
      prompt: "x",
      keepAlive: "5m",
      providerOptions: { k: 1 },
    }),
  );
  assert.equal(result.model, "ollama/llama3.2");
  const sent = ollama.calls[0].request as GenerateRequest;
  assert.equal(sent.keepAlive, undefined, "another provider type gets no keep_alive");
  assert.equal(sent.providerOptions, undefined);
  assert.equal(events.fallbacks, 2);

  const again = setup();
  again.anthropic.failNext = new RateLimitError(429, "first");
  again.openai.failNext = new RateLimitError(429, "second");
  again.ollama.failNext = new ProviderUnreachableError("refused", "third");
  await assert.rejects(
    collect(again.a.generate({ model: "claude-sonnet-4-6", prompt: "x" })),
    /third/,
  );
});

Deno.test("fallbacks: other failures, other models and a started answer do not move", async () => {
  const { a, anthropic, openai } = setup();
  anthropic.failNext = new ModelNotFoundError("claude-sonnet-4-6", "no such model");
  await assert.rejects(
    collect(a.generate({ model: "claude-sonnet-4-6", prompt: "x" })),
    /no such model/,
  );
  anthropic.failNext = new RateLimitError(429, "limited");
  await assert.rejects(collect(a.generate({ model: "claude-haiku", prompt: "x" })), /limited/);
  // An answer that started is never replaced (the fake fails after its first word).
  anthropic.endless = true;
  const controller = new AbortController();
  const texts: string[] = [];
  await assert.rejects(
    (async () => {
      for await (
        const chunk of a.generate({ model: "claude-sonnet-4-6", prompt: "x" }, {
          signal: controller.signal,
        })
      ) {
        if (chunk.type === "text") texts.push(chunk.text);
        controller.abort();
      }
    })(),
    { name: "AbortError" },
  );
  assert.equal(texts.length, 1);
  assert.equal(openai.calls.length, 0);
});
