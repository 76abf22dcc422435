/**
 * A provider double for the credential tests: an OpenAI-style API on
 * 127.0.0.1, port 0, that accepts a request only when its `Authorization`
 * header is `Bearer <the token the test says is current>` (for OAuth: the
 * access token the identity provider issued last and still honours), and
 * answers 401 otherwise. So a passing test proves that the token really
 * reached the provider. It answers `GET /v1/models` and a streamed
 * `POST /v1/chat/completions` in the shape of OpenAI's documentation.
 *
 * {@linkcode callProvider} is the small fetch-based client the tests drive
 * a `CredentialSource` with, as every provider does: the secret on each
 * request, `refresh()` once after a 401.
 *
 * @module
 */

import type { CredentialSource } from "../../src/providers/credential.ts";

/** A running double. */
export interface ProviderDouble {
  /** Base URL, `http://127.0.0.1:PORT/v1`. */
  baseUrl: string;
  /** The `Authorization` header of every request, in order. */
  authorizations: (string | null)[];
  /** Stops it. */
  close(): Promise<void>;
}

/** Starts a double that accepts the bearer tokens `accept` approves. */
export function startProviderDouble(
  accept: (token: string) => boolean | Promise<boolean>,
): ProviderDouble {
  const authorizations: (string | null)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const header = request.headers.get("authorization");
    authorizations.push(header);
    const token = /^Bearer (\S+)$/.exec(header ?? "")?.[1];
    if (!token || !(await accept(token))) {
      await request.body?.cancel();
      return Response.json({
        error: {
          message: "Incorrect API key provided.",
          type: "invalid_request_error",
          param: null,
          code: "invalid_api_key",
        },
      }, { status: 401 });
    }
    const path = new URL(request.url).pathname;
    if (request.method === "GET" && path === "/v1/models") {
      return Response.json({
        object: "list",
        data: [{ id: "gpt-test", object: "model", created: 1700000000, owned_by: "test" }],
      });
    }
    if (request.method === "POST" && path === "/v1/chat/completions") {
      await request.body?.cancel();
      const chunk = (delta: Record<string, unknown>, finish: string | null) =>
        `data: ${
          JSON.stringify({
            id: "chatcmpl-1",
            object: "chat.completion.chunk",
            created: 1700000000,
            model: "gpt-test",
            choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
          })
        }\n\n`;
      const usage = `data: ${
        JSON.stringify({
          id: "chatcmpl-1",
          object: "chat.completion.chunk",
          created: 1700000000,
          model: "gpt-test",
          choices: [],
          usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
        })
      }\n\n`;
      const body = chunk({ role: "assistant", content: "" }, null) +
        chunk({ content: "signed-in answer" }, null) + chunk({}, "stop") + usage +
        "data: [DONE]\n\n";
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    }
    return Response.json({ error: { message: "not found" } }, { status: 404 });
  });
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}/v1`,
    authorizations,
    close: () => server.shutdown(),
  };
}

/**
 * Lists models with the secret from `credential`, as a provider does: the
 * secret on each request, `refresh()` and one more try after a 401.
 * Resolves to the HTTP status and the model ids.
 */
export async function callProvider(
  credential: CredentialSource,
  baseUrl: string,
): Promise<{ status: number; models: string[] }> {
  const attempt = async (secret: string) => {
    const response = await fetch(`${baseUrl}/models`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    const body = await response.json();
    return {
      status: response.status,
      models: response.ok ? (body.data as { id: string }[]).map((m) => m.id) : [],
    };
  };
  const first = await attempt(await credential.get());
  if (first.status !== 401 || !credential.refresh) return first;
  const fresh = await credential.refresh();
  return fresh === undefined ? first : await attempt(fresh);
}
