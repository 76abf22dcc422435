/**
 * The registration seam between tool families and the server: a tool is a
 * name, how it presents itself in `tools/list`, and a function from
 * validated arguments to a result.
 *
 * @module
 */

import type { CallToolResult, ServerContext, ToolAnnotations } from "@modelcontextprotocol/server";
import type { z } from "zod";

/** How a tool presents itself in `tools/list`. */
export interface ToolConfig {
  /** Title for people. */
  title: string;
  /** What it does, for the calling model. */
  description: string;
  /** Input shape (unknown arguments are refused by name). */
  input: z.ZodRawShape;
  /** Output shape of `structuredContent`. */
  output: z.ZodRawShape;
  /** Behaviour hints. */
  annotations: ToolAnnotations;
  /** A long call (a generation): it may run as a task for clients that support tasks. */
  long?: boolean;
}

/** Runs a tool with validated arguments. */
export type ToolRun = (
  args: Record<string, unknown>,
  ctx: ServerContext,
) => Promise<CallToolResult>;

/** Registers one tool. */
export type Register = (name: string, config: ToolConfig, run: ToolRun) => void;
