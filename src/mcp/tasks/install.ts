/**
 * Long tool calls as MCP tasks, in both protocol eras, on one server
 * instance:
 *
 * - **2026-07-28** (`io.modelcontextprotocol/tasks` extension): when the
 *   request's `_meta` client capabilities declare the extension, a long tool
 *   call answers at once with a `CreateTaskResult` (`resultType: "task"`);
 *   `tasks/get` (the result inlined once terminal), `tasks/update` and
 *   `tasks/cancel` follow. Clients that do not declare it get the ordinary
 *   synchronous result.
 * - **2025-11-25** (task-augmented `tools/call`): a call with a `task`
 *   parameter to a tool listed with `execution.taskSupport: "optional"`
 *   answers `{ task }`; `tasks/get`, `tasks/result` (blocks until the end),
 *   `tasks/list` and `tasks/cancel` follow.
 *
 * The task runs the very same tool handler, detached from its request: it
 * survives the client's request timeout and reconnects, and cancelling the
 * task aborts the upstream model call. Tasks belong to their owner (the
 * client's identity, or its session without a token); another owner cannot
 * see, read or cancel them.
 *
 * Why this reaches into the SDK: v2 removed its task interception layer and
 * types `tools/call` results as `CallToolResult` only, validating them as
 * such. A task handle is not one. So this module swaps the instance's
 * registered `tools/call` dispatcher for one that creates the task and
 * otherwise delegates to the SDK's own (validation included); it is the one
 * place that touches `Protocol`'s handler table.
 *
 * @module
 */

import { type McpServer, ProtocolError, ProtocolErrorCode } from "@modelcontextprotocol/server";
import { z } from "zod";
import { isTerminal, TaskLimitError, type TaskRecord, type TaskStore } from "./store.ts";

/** The extension id of 2026-07-28 tasks. */
export const TASKS_EXTENSION = "io.modelcontextprotocol/tasks";

/** Task lifetime when the client asks for none: how long results are kept. */
export const DEFAULT_TASK_TTL_MS = 60 * 60_000;
/** The shortest and longest lifetime a client may ask for (2025-11-25 `task.ttl`). */
export const TASK_TTL_BOUNDS = { minMs: 60_000, maxMs: 24 * 60 * 60_000 } as const;
/** How often clients are asked to poll. */
export const POLL_INTERVAL_MS = 1_000;
/** Tasks per `tasks/list` page. */
export const TASKS_PAGE_SIZE = 50;

/** What {@linkcode installTasks} needs. */
export interface TaskOptions {
  /** The daemon-wide store. */
  store: TaskStore;
  /** Who this instance serves: the owner of the tasks it creates. */
  owner: string;
  /** The era the instance serves. */
  era: "legacy" | "modern";
  /** Tools whose calls may run as tasks (the long ones). */
  tools: ReadonlySet<string>;
  /** Diagnostics sink. */
  log?: (level: "info" | "warning" | "error", text: string) => void;
}

/** The task capabilities an instance declares, by era. */
export function taskCapabilities(era: "legacy" | "modern"): Record<string, unknown> {
  return era === "modern"
    ? { extensions: { [TASKS_EXTENSION]: {} } }
    : { tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } };
}

/** A request handler in the SDK's table. */
export type Handler = (request: Request, ctx: Context) => Promise<Record<string, unknown>>;
type Request = { id: string | number; method: string; params?: Record<string, unknown> };
type Context = {
  mcpReq: {
    signal: AbortSignal;
    envelope?: Record<string, unknown>;
    notify: (notification: unknown) => Promise<void>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

/**
 * The SDK's per-instance request handler table (see the module doc for why);
 * the per-client rate limit (`client_limits.ts`) wraps its entries too.
 */
export function handlerTable(server: McpServer): Map<string, Handler> {
  const table = (server.server as unknown as { _requestHandlers?: Map<string, Handler> })
    ._requestHandlers;
  if (!(table instanceof Map)) {
    throw new Error(
      "the MCP SDK's request handler table moved: Rune's task support needs updating",
    );
  }
  return table;
}

// Built once: zod schemas are costly to construct, and every instance (one per
// stateless request) registers these handlers.
const taskIdParams = z.object({ taskId: z.string().min(1) }).passthrough();
const taskUpdateParams = taskIdParams.extend({
  inputResponses: z.record(z.string(), z.unknown()).optional(),
});
const taskListParams = z.object({ cursor: z.string().optional() }).passthrough();

/** Adds task support to `server` (call after its tools are registered, before it connects). */
export function installTasks(server: McpServer, options: TaskOptions): void {
  const { store, owner, era, tools } = options;
  const table = handlerTable(server);
  const callTool = table.get("tools/call");
  if (!callTool) throw new Error("installTasks runs after the tools are registered");
  // Controllers of the tasks this daemon runs, shared by all instances through the store id.
  const running = RUNNING;

  function wantsTask(request: Request, ctx: Context): boolean {
    const name = request.params?.name;
    if (typeof name !== "string" || !tools.has(name)) return false;
    if (era === "legacy") {
      return typeof request.params?.task === "object" && request.params.task !== null;
    }
    const capabilities = ctx.mcpReq.envelope?.["io.modelcontextprotocol/clientCapabilities"] as
      | { extensions?: Record<string, unknown> }
      | undefined;
    return capabilities?.extensions?.[TASKS_EXTENSION] !== undefined;
  }

  function ttlOf(request: Request): number {
    const asked = (request.params?.task as { ttl?: unknown } | undefined)?.ttl;
    if (typeof asked !== "number" || !Number.isFinite(asked)) return DEFAULT_TASK_TTL_MS;
    return Math.min(TASK_TTL_BOUNDS.maxMs, Math.max(TASK_TTL_BOUNDS.minMs, Math.round(asked)));
  }

  table.set("tools/call", async (request, ctx) => {
    if (!wantsTask(request, ctx)) return await callTool(request, ctx);
    const created = Date.now();
    const record: TaskRecord = {
      taskId: crypto.randomUUID(),
      owner,
      tool: request.params!.name as string,
      status: "working",
      statusMessage: "The model is working on it.",
      createdAt: created,
      lastUpdatedAt: created,
      ttlMs: ttlOf(request),
      pollIntervalMs: POLL_INTERVAL_MS,
    };
    try {
      // Durable before it is announced: a tasks/get right after this answer finds it.
      await store.create(record);
    } catch (error) {
      if (error instanceof TaskLimitError) {
        throw new ProtocolError(ProtocolErrorCode.InternalError, error.message);
      }
      throw error;
    }
    const controller = new AbortController();
    running.set(record.taskId, controller);
    // The same call, detached from its request: no task parameter, no progress token (tasks
    // report through their status), the task's own abort signal.
    const { task: _task, ...params } = request.params ?? {};
    const meta = { ...(params._meta as Record<string, unknown> | undefined) };
    delete meta.progressToken;
    const detached: Request = { ...request, params: { ...params, _meta: meta } };
    const detachedCtx: Context = {
      ...ctx,
      mcpReq: { ...ctx.mcpReq, signal: controller.signal, notify: () => Promise.resolve() },
    };
    void run(record, () => callTool(detached, detachedCtx), controller.signal);
    options.log?.("info", `${record.tool} runs as task ${record.taskId}`);
    return era === "modern"
      ? { resultType: "task", ...modernTask(record) }
      : { task: legacyTask(record) };
  });

  /**
   * Aborts the call when its task is cancelled through the store, e.g. by
   * `tasks/cancel` on another instance sharing a Redis store.
   */
  async function watch(record: TaskRecord, controller: AbortController, stop: AbortSignal) {
    try {
      while (!stop.aborted) {
        await store.changed(record.taskId, stop);
        const now = await store.get(record.taskId, record.owner);
        if (now?.status === "cancelled") {
          controller.abort(new DOMException("Task cancelled", "AbortError"));
          return;
        }
        if (!now || isTerminal(now.status)) return;
      }
    } catch {
      // Stopped (the call ended), or the store failed: the local cancel still works.
    }
  }

  async function run(
    record: TaskRecord,
    call: () => Promise<Record<string, unknown>>,
    signal: AbortSignal,
  ): Promise<void> {
    const controller = RUNNING.get(record.taskId);
    const stopWatching = new AbortController();
    if (controller) void watch(record, controller, stopWatching.signal);
    try {
      const result = await call();
      announce(
        await store.update(record.taskId, {
          status: "completed",
          statusMessage: result.isError ? "The call ended with an error." : "Done.",
          result,
        }),
      );
    } catch (error) {
      if (signal.aborted) {
        // Announced already when a tasks/cancel caused it.
        const before = await store.get(record.taskId, record.owner);
        const after = await store.update(record.taskId, {
          status: "cancelled",
          statusMessage: "Cancelled.",
        });
        if (before?.status !== "cancelled") announce(after);
      } else {
        const code = error instanceof ProtocolError ? error.code : ProtocolErrorCode.InternalError;
        const message = error instanceof Error ? error.message : String(error);
        if (!(error instanceof ProtocolError)) {
          options.log?.(
            "error",
            `task ${record.taskId} crashed: ${(error as Error)?.stack ?? error}`,
          );
        }
        announce(
          await store.update(record.taskId, {
            status: "failed",
            statusMessage: message,
            error: { code, message },
          }),
        );
      }
    } finally {
      stopWatching.abort();
      running.delete(record.taskId);
    }
  }

  async function owned(taskId: string): Promise<TaskRecord> {
    const record = await store.get(taskId, owner);
    // Another owner's task does not exist as far as this client can tell.
    if (!record) throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown task ${taskId}`);
    return record;
  }

  function requireExtension(ctx: Context): void {
    if (era !== "modern") return;
    const capabilities = ctx.mcpReq.envelope?.["io.modelcontextprotocol/clientCapabilities"] as
      | { extensions?: Record<string, unknown> }
      | undefined;
    if (capabilities?.extensions?.[TASKS_EXTENSION] === undefined) {
      throw new ProtocolError(-32021, "Missing required client capability", {
        requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } },
      });
    }
  }

  async function cancel(record: TaskRecord): Promise<TaskRecord> {
    running.get(record.taskId)?.abort(new DOMException("Task cancelled", "AbortError"));
    const updated = await store.update(record.taskId, {
      status: "cancelled",
      statusMessage: "Cancelled by request.",
    });
    announce(updated);
    return updated ?? record;
  }

  /**
   * Tells a 2025-11-25 client that a task changed status
   * (`notifications/tasks/status`, which the spec lets receivers send), so
   * it need not poll for the end. The 2026-07-28 extension delivers these
   * through `subscriptions/listen`, which the SDK's listen router does not
   * extend to task ids: those clients poll `tasks/get` at `pollIntervalMs`.
   */
  function announce(updated: TaskRecord | undefined): void {
    if (era !== "legacy" || updated === undefined) return;
    server.server.notification({
      method: "notifications/tasks/status",
      params: legacyTask(updated),
    }).catch(() => {
      // The session is gone: the task's state stays readable until it expires.
    });
  }

  const raw = server.server as unknown as {
    setRequestHandler(
      method: string,
      schemas: { params: z.ZodTypeAny },
      handler: (params: Record<string, unknown>, ctx: Context) => Promise<Record<string, unknown>>,
    ): void;
  };

  raw.setRequestHandler("tasks/get", { params: taskIdParams }, async (params, ctx) => {
    requireExtension(ctx);
    const record = await owned(params.taskId as string);
    return era === "modern" ? detailedTask(record) : legacyTask(record);
  });

  raw.setRequestHandler("tasks/cancel", { params: taskIdParams }, async (params, ctx) => {
    requireExtension(ctx);
    const record = await owned(params.taskId as string);
    if (era === "modern") {
      // Cooperative and idempotent: an ack, whatever the task's state.
      if (!isTerminal(record.status)) await cancel(record);
      return {};
    }
    if (isTerminal(record.status)) {
      throw new ProtocolError(
        ProtocolErrorCode.InvalidParams,
        `Task ${record.taskId} is already ${record.status}: it cannot be cancelled`,
      );
    }
    return legacyTask(await cancel(record));
  });

  if (era === "modern") {
    raw.setRequestHandler(
      "tasks/update",
      { params: taskUpdateParams },
      async (params, ctx) => {
        requireExtension(ctx);
        // Rune's tasks never ask for input: there is nothing outstanding to answer.
        await owned(params.taskId as string);
        return {};
      },
    );
    return;
  }

  raw.setRequestHandler("tasks/result", { params: taskIdParams }, async (params, ctx) => {
    let record = await owned(params.taskId as string);
    while (!isTerminal(record.status)) {
      await store.changed(record.taskId, ctx.mcpReq.signal);
      record = await owned(record.taskId);
    }
    const related = { "io.modelcontextprotocol/related-task": { taskId: record.taskId } };
    if (record.status === "completed") {
      return { ...record.result, _meta: { ...(record.result?._meta as object), ...related } };
    }
    if (record.status === "failed") {
      throw new ProtocolError(record.error!.code, record.error!.message, record.error!.data);
    }
    throw new ProtocolError(
      ProtocolErrorCode.InvalidRequest,
      `Task ${record.taskId} was cancelled`,
    );
  });

  raw.setRequestHandler(
    "tasks/list",
    { params: taskListParams },
    async (params) => {
      const all = await store.list(owner);
      const start = params.cursor ? Number(atob(params.cursor as string)) || 0 : 0;
      const page = all.slice(start, start + TASKS_PAGE_SIZE);
      const next = start + TASKS_PAGE_SIZE;
      return {
        tasks: page.map(legacyTask),
        ...(next < all.length && { nextCursor: btoa(String(next)) }),
      };
    },
  );
}

/** Controllers of the tasks running in this process, by task id. */
const RUNNING = new Map<string, AbortController>();

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A task as the 2025-11-25 wire has it (`ttl`, `pollInterval`). */
function legacyTask(record: TaskRecord): Record<string, unknown> {
  return {
    taskId: record.taskId,
    status: record.status,
    ...(record.statusMessage && { statusMessage: record.statusMessage }),
    createdAt: iso(record.createdAt),
    lastUpdatedAt: iso(record.lastUpdatedAt),
    ttl: record.ttlMs,
    pollInterval: record.pollIntervalMs,
  };
}

/** A task as the 2026-07-28 extension has it (`ttlMs`, `pollIntervalMs`). */
function modernTask(record: TaskRecord): Record<string, unknown> {
  return {
    taskId: record.taskId,
    status: record.status,
    ...(record.statusMessage && { statusMessage: record.statusMessage }),
    createdAt: iso(record.createdAt),
    lastUpdatedAt: iso(record.lastUpdatedAt),
    ttlMs: record.ttlMs,
    pollIntervalMs: record.pollIntervalMs,
  };
}

/** `tasks/get` in 2026-07-28: the task with its result or error inlined once terminal. */
function detailedTask(record: TaskRecord): Record<string, unknown> {
  return {
    ...modernTask(record),
    ...(record.status === "completed" && { result: record.result }),
    ...(record.status === "failed" && { error: record.error }),
  };
}
