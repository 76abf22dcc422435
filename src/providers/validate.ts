/**
 * Checks an upstream reply's shape before any of it is used, so a
 * malformed reply becomes one clear {@linkcode InvalidResponseError}
 * ("invalid response from X at Y: what") instead of a `TypeError` deep in
 * the mapping code or `[object Object]` in a result.
 *
 * Each shape has a zod schema, the reference, and may have a hand-written
 * `fast` check for the common case: streamed lines arrive by the thousand,
 * and a few `typeof` tests cost a fraction of a zod parse. The fast check
 * only ever accepts values the schema accepts (tests check both agree);
 * when it says no, zod decides and words the error.
 *
 * @module
 */

import type { z } from "zod";
import { InvalidResponseError } from "./errors.ts";

/** A reply shape: the zod schema, and optionally a cheaper check for the common case. */
export interface Shape<T> {
  /** The reference: what a valid value is. */
  schema: z.ZodType<T>;
  /** Accepts only values `schema` accepts (maybe fewer); `undefined` means "ask zod". */
  fast?: (value: unknown) => value is T;
}

/** Who sent the reply, for the message. */
export interface ReplySource {
  /** Display name, e.g. `Ollama`. */
  name: string;
  /** `host:port` for messages. */
  address: string;
}

/**
 * Returns `value` typed as `T` when it has the shape; otherwise throws
 * {@linkcode InvalidResponseError} naming `where` (e.g. `/api/chat line 3`)
 * and the first problems zod found.
 */
export function checkReply<T>(
  value: unknown,
  shape: Shape<T>,
  source: ReplySource,
  where: string,
): T {
  if (shape.fast?.(value)) return value;
  const parsed = shape.schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new InvalidResponseError(
    `Invalid response from ${source.name} at ${source.address}: ${where}: ${
      describeIssues(parsed.error.issues)
    }. Is it a current ${source.name}, and does the address point at ${source.name} itself?`,
    { cause: parsed.error },
  );
}

/** At most this many problems are listed in a message. */
const MAX_ISSUES = 3;

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const listed = issues.slice(0, MAX_ISSUES).map((issue) => {
    const at = issue.path.length ? formatPath(issue.path) : "the reply";
    return `${at}: ${issue.message.replace(/^Invalid input: /, "")}`;
  });
  const more = issues.length > MAX_ISSUES ? ` (and ${issues.length - MAX_ISSUES} more)` : "";
  return listed.join("; ") + more;
}

function formatPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`;
    else text += text === "" ? String(key) : `.${String(key)}`;
  }
  return text;
}
