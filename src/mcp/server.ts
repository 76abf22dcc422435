/**
 * Builds one MCP server instance exposing each provider's models as tools:
 * `ai_<id>_list_models`, `ai_<id>_generate`, `ai_<id>_chat` and
 * `ai_<id>_embed`.
 *
 * Tools are registered with the SDK's `McpServer` (v2), which owns listing,
 * input validation and output validation in both protocol eras: invalid
 * arguments become a tool execution error naming the argument (SEP-1303),
 * an unknown tool stays a JSON-RPC invalid-params error, and every
 * `structuredContent` is checked against the tool's output schema. Rune adds
 * what the SDK does not do: upstream failures become `isError` results whose
 * text says what to do, tokens stream as coalesced progress notifications,
 * and a cancelled request aborts the upstream call.
 *
 * The same factory serves every transport and both eras; an instance holds
 * no state beyond its registrations, so it is cheap to build per session
 * (legacy) or per request (2026-07-28 over HTTP).
 *
 * @module
 */

import {
  type CallToolResult,
  McpServer,
  type McpServerFactory,
  type ServerContext,
  type ToolAnnotations,
} from "@modelcontextprotocol/server";
import { z } from "zod";
import { isAbortError, RuneError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Chunk, FinalResult, Provider } from "../providers/types.ts";
import { VERSION } from "../version.ts";
import { flowOf } from "./flow.ts";
import { createProgressStream } from "./progress.ts";
import {
  chatContent,
  chatInput,
  chatOutput,
  embedContent,
  embedInput,
  embedOutput,
  generateContent,
  generateInput,
  generateOutput,
  listModelsContent,
  listModelsOutput,
  toChatRequest,
  toGenerateRequest,
} from "./tools.ts";

/** Dependencies of {@linkcode createMcpServer}. */
export interface McpServerDeps {
  /** Providers whose models become tools. */
  providers: Provider[];
  /** Diagnostics sink (stderr in the daemon). Default: silent. */
  log?: Logger;
}

/** How long a client may reuse a `tools/list` result (2026-07-28 `ttlMs`). */
export const TOOLS_LIST_TTL_MS = 60_000;

/**
 * Most array elements and object members in one `tools/call`'s arguments,
 * the transports' bound on a whole message (`MAX_MESSAGE_ELEMENTS`): a chat
 * history, a batch of embedding inputs and a tool list fit many times over.
 */
export const MAX_TOOL_INPUT_ELEMENTS = 100_000;

/** How a tool presents itself in `tools/list`. */
interface ToolConfig {
  title: string;
  description: string;
  input: z.ZodRawShape;
  output: z.ZodRawShape;
  annotations: ToolAnnotations;
}

type ToolRun = (args: Record<string, unknown>, ctx: ServerContext) => Promise<CallToolResult>;

/**
 * Schemas by shape, shared by all instances: zod compiles a fast parser per
 * schema object, so sessions (and stateless requests) sharing one keep it
 * warm instead of building it again for each instance.
 */
const objectSchemas = new WeakMap<z.ZodRawShape, z.ZodObject<z.ZodRawShape>>();

function objectSchema(shape: z.ZodRawShape, strict: boolean): z.ZodObject<z.ZodRawShape> {
  let schema = objectSchemas.get(shape);
  if (schema === undefined) {
    // Unknown arguments are refused by name rather than silently dropped.
    schema = strict ? z.object(shape).strict() : z.object(shape);
    objectSchemas.set(shape, schema);
  }
  return schema;
}

/** Input shape of the list tool: one object, so its schema is shared too. */
const NO_INPUT: z.ZodRawShape = {};

/** Creates a fresh MCP server with every provider's tools registered. */
export function createMcpServer(deps: McpServerDeps): McpServer {
  const log = deps.log ?? (() => {});
  const server = new McpServer(
    { name: "rune", title: "Rune", version: VERSION },
    {
      capabilities: { tools: { listChanged: false }, logging: {} },
      instructions: `Rune gives access to local and cloud language models. Call ${
        deps.providers.map((p) => `ai_${p.id}_list_models`).join(" or ")
      } first to see which models exist.`,
      cacheHints: { "tools/list": { ttlMs: TOOLS_LIST_TTL_MS, cacheScope: "private" } },
      maxToolInputElements: MAX_TOOL_INPUT_ELEMENTS,
    },
  );

  function register(name: string, config: ToolConfig, run: ToolRun): void {
    server.registerTool(name, {
      title: config.title,
      description: config.description,
      inputSchema: objectSchema(config.input, true),
      outputSchema: objectSchema(config.output, false),
      annotations: config.annotations,
    }, async (args: Record<string, unknown>, ctx: ServerContext): Promise<CallToolResult> => {
      try {
        return await run(args, ctx);
      } catch (error) {
        if (error instanceof RuneError) {
          log("info", `${name} failed: ${error.message}`);
          return { content: [{ type: "text", text: error.message }], isError: true };
        }
        // A cancelled request gets no reply (the SDK drops it); a bug is logged with its stack.
        if (!isAbortError(error) && !ctx.mcpReq.signal.aborted) {
          log("error", `${name} crashed: ${(error as Error)?.stack ?? error}`);
        }
        throw error;
      }
    });
  }

  for (const provider of deps.providers) registerProviderTools(provider, register);
  return server;
}

/**
 * The factory the SDK's serving entries call: one instance per connection
 * (stdio, WebSocket, legacy HTTP session) or per request (2026-07-28 HTTP).
 * The instance does not depend on the era.
 */
export function createServerFactory(deps: McpServerDeps): McpServerFactory {
  return () => createMcpServer(deps);
}

type Register = (name: string, config: ToolConfig, run: ToolRun) => void;

function registerProviderTools(provider: Provider, register: Register): void {
  const id = provider.id;
  const label = id === "ollama" ? "Ollama" : id;

  register(`ai_${id}_list_models`, {
    title: `List ${label} models`,
    description:
      `Lists the models installed on ${label} with size, family, parameter size and quantization.`,
    input: NO_INPUT,
    output: listModelsOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async (_args, ctx) => {
    const models = await provider.listModels({ signal: ctx.mcpReq.signal });
    const structured = listModelsContent(models);
    const lines = structured.models.map((m) =>
      [m.name, m.parameter_size, m.quantization, m.family, m.loaded && "(loaded)"].filter(Boolean)
        .join("  ")
    );
    return {
      content: [{
        type: "text",
        text: lines.length
          ? lines.join("\n")
          : `No models are installed on ${label}: run "ollama pull llama3.2" to get one.`,
      }],
      structuredContent: structured,
    };
  });

  register(`ai_${id}_generate`, {
    title: `Generate with ${label}`,
    description:
      `Completes a prompt with a ${label} model. Streams the text as progress notifications when the request carries a progress token. Supports a system prompt, images for vision models, JSON or JSON-Schema output, sampling options and thinking.`,
    input: generateInput,
    output: generateOutput,
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async (args, ctx) => {
    const request = toGenerateRequest(args as Parameters<typeof toGenerateRequest>[0]);
    const result = await relay(provider.generate(request, { signal: ctx.mcpReq.signal }), ctx);
    return {
      content: [{ type: "text", text: result.text }],
      structuredContent: generateContent(result),
    };
  });

  register(`ai_${id}_chat`, {
    title: `Chat with ${label}`,
    description:
      `Continues a conversation with a ${label} model and returns the assistant's reply, including any tool calls. Streams the text as progress notifications when the request carries a progress token.`,
    input: chatInput,
    output: chatOutput,
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async (args, ctx) => {
    const request = toChatRequest(args as Parameters<typeof toChatRequest>[0]);
    const result = await relay(provider.chat(request, { signal: ctx.mcpReq.signal }), ctx);
    const calls = result.toolCalls.map((c) => `${c.name}(${JSON.stringify(c.arguments)})`);
    const text = [result.text, ...calls.map((c) => `Tool call: ${c}`)].filter(Boolean).join("\n");
    return {
      content: [{ type: "text", text }],
      structuredContent: chatContent(result),
    };
  });

  register(`ai_${id}_embed`, {
    title: `Embed with ${label}`,
    description:
      `Computes embeddings for one text or a batch of texts with a ${label} embedding model.`,
    input: embedInput,
    output: embedOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async (args, ctx) => {
    const { model, input } = args as { model: string; input: string | string[] };
    const result = await provider.embed({ model, input }, { signal: ctx.mcpReq.signal });
    const structured = embedContent(result);
    return {
      content: [{
        type: "text",
        text:
          `${result.embeddings.length} embedding(s) of ${structured.dimensions} dimensions from ${result.model}:\n${
            JSON.stringify(result.embeddings)
          }`,
      }],
      structuredContent: structured,
    };
  });
}

/**
 * Text (in characters) that may wait for a slow client before the relay
 * stops reading from the provider until it has been sent.
 */
const MAX_PENDING_PROGRESS = 64 * 1024;

/**
 * Consumes a chunk stream, forwarding deltas as progress notifications when
 * the client asked for them, and returns the final result. While more than
 * {@linkcode MAX_PENDING_PROGRESS} characters wait for the client, it stops
 * reading the provider, so a client that stops reading holds back the
 * upstream stream instead of growing the daemon's memory. On HTTP, where the
 * SDK's transports queue without waiting, each notification also waits for
 * the response stream to drain (see `flow.ts`).
 */
async function relay(chunks: AsyncIterable<Chunk>, ctx: ServerContext): Promise<FinalResult> {
  const token = ctx.mcpReq._meta?.progressToken;
  const flow = flowOf(ctx.http?.req);
  const progress = token === undefined ? undefined : createProgressStream(token, async (params) => {
    await ctx.mcpReq.notify({ method: "notifications/progress", params });
    await flow?.ready();
  });
  for await (const chunk of chunks) {
    if (chunk.type === "done") {
      await progress?.flush();
      return chunk.result;
    }
    if (chunk.type === "text" || chunk.type === "thinking") progress?.push(chunk.text, chunk.type);
    if (progress && progress.pending > MAX_PENDING_PROGRESS) await progress.flush();
  }
  throw new Error("provider stream ended without a final result");
}
