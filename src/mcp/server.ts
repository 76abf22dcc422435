/**
 * Builds one MCP server instance (one per session) exposing each provider's
 * models as tools: `ai_<id>_list_models`, `ai_<id>_generate`, `ai_<id>_chat`
 * and `ai_<id>_embed`.
 *
 * Tools are registered with the SDK's `McpServer` (listing, JSON Schemas,
 * annotations). `tools/call` dispatch is ours so that the error contract
 * holds: invalid arguments are a JSON-RPC invalid-params error, upstream
 * failures an `isError` result that says what to do, and anything else a
 * bug that surfaces as an internal error.
 *
 * @module
 */

import {
  type CallToolRequest,
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  McpError,
  McpServer,
  type RequestHandlerExtra,
  type ServerNotification,
  type ServerRequest,
  type ToolAnnotations,
} from "./sdk.ts";
import { z } from "zod";
import { isAbortError, RuneError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Chunk, FinalResult, Provider } from "../providers/types.ts";
import { VERSION } from "../version.ts";
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

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

interface ToolEntry {
  schema: z.ZodObject<z.ZodRawShape>;
  run(args: Record<string, unknown>, extra: Extra): Promise<CallToolResult>;
}

/** JSON Schema validation for elicitation results; Rune never elicits, so it refuses. */
const NO_ELICITATION = {
  getValidator: () => () => ({
    valid: false as const,
    data: undefined,
    errorMessage: "Rune does not send elicitation requests",
  }),
};

/** How a tool presents itself in `tools/list`. */
interface ToolConfig {
  title: string;
  description: string;
  input: z.ZodRawShape;
  output: z.ZodRawShape;
  annotations: ToolAnnotations;
}

// The SDK parses a request with the handler's schema before its own tools/call check, and a
// failure there is a -32603 with a raw zod dump; with params left loose here, the SDK's check
// answers malformed params with -32602 (invalid params) as JSON-RPC requires. Built once: zod
// compiles a fast parser per schema object, so sessions sharing one keep it warm.
const LooseCallToolRequestSchema = CallToolRequestSchema.extend({ params: z.unknown().optional() });

/** Strict argument schemas by input shape, shared by all sessions (see above). */
const argumentSchemas = new WeakMap<z.ZodRawShape, z.ZodObject<z.ZodRawShape>>();

function argumentsSchema(input: z.ZodRawShape): z.ZodObject<z.ZodRawShape> {
  let schema = argumentSchemas.get(input);
  if (schema === undefined) {
    schema = z.object(input).strict();
    argumentSchemas.set(input, schema);
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
      capabilities: { tools: {}, logging: {} },
      // The SDK builds an Ajv validator per server for elicitation, which Rune never sends:
      // skipping it saves memory and time on every session.
      jsonSchemaValidator: NO_ELICITATION,
      instructions:
        "Rune gives access to local and cloud language models. Call ai_ollama_list_models first to see which models exist.",
    },
  );
  const entries = new Map<string, ToolEntry>();

  function register(
    name: string,
    config: ToolConfig,
    run: ToolEntry["run"],
  ): void {
    server.registerTool(name, {
      title: config.title,
      description: config.description,
      inputSchema: config.input,
      outputSchema: config.output,
      annotations: config.annotations,
    }, () => {
      // Never called: tools/call is dispatched below.
      throw new Error("unreachable");
    });
    entries.set(name, { schema: argumentsSchema(config.input), run });
  }

  for (const provider of deps.providers) registerProviderTools(provider, register);

  server.server.setRequestHandler(
    LooseCallToolRequestSchema,
    async (raw, extra: Extra): Promise<CallToolResult> => {
      const request = raw as CallToolRequest;
      const entry = entries.get(request.params.name);
      if (!entry) {
        throw new McpError(ErrorCode.InvalidParams, `Unknown tool "${request.params.name}"`);
      }
      const parsed = entry.schema.safeParse(request.params.arguments ?? {});
      if (!parsed.success) {
        throw new McpError(
          ErrorCode.InvalidParams,
          `Invalid arguments for tool ${request.params.name}: ${z.prettifyError(parsed.error)}`,
        );
      }
      try {
        return await entry.run(parsed.data, extra);
      } catch (error) {
        if (error instanceof RuneError) {
          log("info", `${request.params.name} failed: ${error.message}`);
          return { content: [{ type: "text", text: error.message }], isError: true };
        }
        // A cancelled request gets no reply (the SDK drops it); a bug is reported as an internal error.
        if (isAbortError(error) || extra.signal.aborted) throw error;
        log("error", `${request.params.name} crashed: ${(error as Error)?.stack ?? error}`);
        throw error;
      }
    },
  );
  return server;
}

type Register = (name: string, config: ToolConfig, run: ToolEntry["run"]) => void;

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
  }, async (_args, extra) => {
    const models = await provider.listModels({ signal: extra.signal });
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
  }, async (args, extra) => {
    const request = toGenerateRequest(args as Parameters<typeof toGenerateRequest>[0]);
    const result = await relay(provider.generate(request, { signal: extra.signal }), extra);
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
  }, async (args, extra) => {
    const request = toChatRequest(args as Parameters<typeof toChatRequest>[0]);
    const result = await relay(provider.chat(request, { signal: extra.signal }), extra);
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
  }, async (args, extra) => {
    const { model, input } = args as { model: string; input: string | string[] };
    const result = await provider.embed({ model, input }, { signal: extra.signal });
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
 * upstream stream instead of growing the daemon's memory.
 */
async function relay(chunks: AsyncIterable<Chunk>, extra: Extra): Promise<FinalResult> {
  const token = extra._meta?.progressToken;
  const progress = token === undefined
    ? undefined
    : createProgressStream(token, (params) =>
      extra.sendNotification({ method: "notifications/progress", params }));
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
