/**
 * Builds one MCP server instance exposing each provider's models as tools:
 * `ai_<id>_list_models`, `ai_<id>_generate`, `ai_<id>_chat` and
 * `ai_<id>_embed`; for providers that manage models (Ollama) also
 * `ai_<id>_show` and `ai_<id>_ps`, and with `allowModelManagement`
 * `ai_<id>_pull` and `ai_<id>_delete` (`tools/manage_tools.ts`).
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
} from "@modelcontextprotocol/server";
import { z } from "zod";
import { isAbortError, RuneError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Provider } from "../providers/types.ts";
import { VERSION } from "../version.ts";
import { type FleetEvents, NO_EVENTS } from "../metrics/events.ts";
import { limitData } from "../providers/limits.ts";
import { callLabels, observeCall } from "./call_metrics.ts";
import { type ClientLimit, installClientLimit } from "./client_limits.ts";
import { scopesOf, toolAllowed } from "./scopes.ts";
import { installTasks, taskCapabilities } from "./tasks/install.ts";
import type { TaskStore } from "./tasks/store.ts";
import { registerCompareTool } from "./tools/compare_tools.ts";
import { registerManageTools } from "./tools/manage_tools.ts";
import { registerProviderTools } from "./tools/provider_tools.ts";
import type { Register, ToolConfig } from "./tools/register.ts";
import { registerRouterTools } from "./tools/router_tools.ts";

/**
 * Which tools are registered: each provider's own (`ai_<id>_*`), the router
 * set (`ai_generate` & co. with `provider/model` names), or both.
 */
export type ToolSet = "per-provider" | "router" | "all";

/** Dependencies of {@linkcode createMcpServer}. */
export interface McpServerDeps {
  /** Providers whose models become tools. */
  providers: Provider[];
  /**
   * Which tools to register.
   * @default "all"
   */
  tools?: ToolSet;
  /** Diagnostics sink (stderr in the daemon). Default: silent. */
  log?: Logger;
  /** Where long calls run as tasks live; without one, no tasks are offered. */
  tasks?: TaskStore;
  /**
   * Register the tools that change the installed models (`ai_<id>_pull`,
   * `ai_<id>_delete`), for providers that manage models (`--allow-model-management`).
   * @default false
   */
  allowModelManagement?: boolean;
  /** Tool-call metrics (outcome, duration, time to first token). Default: none. */
  events?: FleetEvents;
  /** The per-client rate limit (`--rate-limit`); without one, none. */
  clientLimit?: ClientLimit;
}

/** What one server instance serves. */
export interface InstanceOptions {
  /**
   * The protocol era of the connection or request.
   * @default "legacy"
   */
  era?: "legacy" | "modern";
  /**
   * Who the instance serves: the owner of its tasks (an identity, or a session).
   * @default a fresh id (the instance's own session)
   */
  owner?: string;
  /**
   * The OAuth scopes the client holds: only the tools they allow are
   * registered, so `tools/list` shows no other and none other can run.
   * @default undefined: every tool
   */
  scopes?: readonly string[];
}

/** How long a client may reuse a `tools/list` result (2026-07-28 `ttlMs`). */
export const TOOLS_LIST_TTL_MS = 60_000;

/**
 * Most array elements and object members in one `tools/call`'s arguments,
 * the transports' bound on a whole message (`MAX_MESSAGE_ELEMENTS`): a chat
 * history, a batch of embedding inputs and a tool list fit many times over.
 */
export const MAX_TOOL_INPUT_ELEMENTS = 100_000;

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
    memoizeJsonSchema(schema);
    objectSchemas.set(shape, schema);
  }
  return schema;
}

/**
 * Converts `schema` to JSON Schema once per target instead of at every
 * `tools/list` (the SDK converts each tool's schemas per listing, and each
 * output schema once per instance: per request in the stateless era). The
 * results are frozen, so a consumer that tried to change the shared copy
 * would fail loudly rather than corrupt other listings.
 */
function memoizeJsonSchema(schema: z.ZodType): void {
  const standard = schema["~standard"] as {
    jsonSchema?: Record<"input" | "output", (options: { target: string }) => unknown>;
  };
  const convert = standard.jsonSchema;
  if (convert === undefined) return;
  const memo = (io: "input" | "output") => {
    const byTarget = new Map<string, unknown>();
    return (options: { target: string }) => {
      let json = byTarget.get(options.target);
      if (json === undefined) {
        json = deepFreeze(convert[io](options));
        byTarget.set(options.target, json);
      }
      return json;
    };
  };
  standard.jsonSchema = { input: memo("input"), output: memo("output") };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

/** Creates a fresh MCP server with every provider's tools registered. */
export function createMcpServer(deps: McpServerDeps, instance: InstanceOptions = {}): McpServer {
  const log = deps.log ?? (() => {});
  const toolSet = deps.tools ?? "all";
  const era = instance.era ?? "legacy";
  const server = new McpServer(
    { name: "rune", title: "Rune", version: VERSION },
    {
      capabilities: {
        tools: { listChanged: false },
        logging: {},
        ...(deps.tasks && taskCapabilities(era)),
      },
      instructions: instructions(deps.providers, toolSet),
      cacheHints: { "tools/list": { ttlMs: TOOLS_LIST_TTL_MS, cacheScope: "private" } },
      maxToolInputElements: MAX_TOOL_INPUT_ELEMENTS,
    },
  );

  const long = new Set<string>();
  const events = deps.events ?? NO_EVENTS;
  const ids = deps.providers.map((p) => p.id);
  const owner = instance.owner ?? `session:${crypto.randomUUID()}`;
  // Identities are labels; sessions are not (unbounded, and they say nothing about who).
  const client = /^(token|oauth):/.test(owner) ? owner : "anonymous";
  const register: Register = (name, config: ToolConfig, run) => {
    if (!toolAllowed(name, instance.scopes)) return;
    const registered = server.registerTool(name, {
      title: config.title,
      description: config.description,
      inputSchema: objectSchema(config.input, true),
      outputSchema: objectSchema(config.output, false),
      annotations: config.annotations,
    }, (args: Record<string, unknown>, ctx: ServerContext): Promise<CallToolResult> =>
      // Metrics: outcome, duration and time to first token of every call (call_metrics.ts).
      observeCall(ctx, async () => {
        try {
          return await run(args, ctx);
        } catch (error) {
          if (error instanceof RuneError) {
            log("info", `${name} failed: ${error.message}`);
            // A rate-limit refusal tells the client which limit and when to retry.
            const limited = limitData(error);
            return {
              content: [{ type: "text", text: error.message }],
              ...(limited && { structuredContent: limited }),
              isError: true,
            };
          }
          // A cancelled request gets no reply (the SDK drops it); a bug is logged with its stack.
          if (!isAbortError(error) && !ctx.mcpReq.signal.aborted) {
            log("error", `${name} crashed: ${(error as Error)?.stack ?? error}`);
          }
          throw error;
        }
      }, { events, labels: { ...callLabels({ tool: name, args }, ids), client } }));
    if (config.long && deps.tasks) {
      long.add(name);
      // Listed as task-capable (2025-11-25 tools/list); the SDK has no registration option.
      registered.execution = { taskSupport: "optional" };
    }
  };

  if (toolSet !== "router") {
    for (const provider of deps.providers) registerProviderTools(provider, register);
  }
  if (toolSet !== "per-provider") registerRouterTools(deps.providers, register);
  registerCompareTool(deps.providers, register);
  // Every tool set: the router has no equivalent of these.
  for (const provider of deps.providers) {
    registerManageTools(provider, register, { allowManagement: deps.allowModelManagement });
  }
  if (deps.tasks) {
    installTasks(server, {
      store: deps.tasks,
      era,
      owner,
      tools: long,
      log: (level, text) => log(level, text),
    });
  }
  // Last, so the per-client limit runs before everything else (task creation included).
  if (deps.clientLimit) {
    installClientLimit(server, deps.clientLimit, {
      owner,
      events,
      labels: (tool, args) => ({ ...callLabels({ tool, args }, ids), client }),
    });
  }
  return server;
}

/** What the server tells the calling model at the start. */
function instructions(providers: readonly Provider[], toolSet: ToolSet): string {
  const ids = providers.map((p) => p.id).join(", ");
  const first = toolSet === "per-provider"
    ? providers.map((p) => `ai_${p.id}_list_models`).join(" or ")
    : "ai_list_models";
  return `Rune gives access to local and cloud language models (providers: ${ids}). Call ${first} first to see which models exist.`;
}

/**
 * The factory the SDK's serving entries call: one instance per connection
 * (stdio, WebSocket, legacy HTTP session) or per request (2026-07-28 HTTP).
 * The instance does not depend on the era.
 */
export function createServerFactory(deps: McpServerDeps): McpServerFactory {
  return (ctx) =>
    createMcpServer(deps, { era: ctx.era, owner: ownerOf(ctx), scopes: scopesOf(ctx) });
}

/**
 * The owner of the tasks a server instance creates: the authenticated
 * identity when there is one (it survives reconnects); else the instance's
 * own session, except for stateless 2026-07-28 HTTP requests, which have no
 * session and share one anonymous owner (their task ids, random UUIDs, are
 * the capability).
 */
export function ownerOf(
  ctx: { era?: string; authInfo?: { clientId?: string }; requestInfo?: unknown },
): string | undefined {
  if (ctx.authInfo?.clientId) return ctx.authInfo.clientId;
  if (ctx.era === "modern" && ctx.requestInfo !== undefined) return "anonymous";
  return undefined;
}
