/**
 * A linear pre-scan that bounds how deeply a JSON text nests and how many
 * values it holds, run before `JSON.parse`.
 *
 * V8 parses and stringifies deeply nested JSON in super-linear time (an
 * 8 MB request nested four million levels deep held every client's session
 * for over ten seconds), and parsing many tiny values is slow too (32 MiB of
 * `[],` takes about six seconds on the 2-core machine). The scan counts
 * brackets and separators outside strings in one pass, skipping strings
 * with `indexOf`, and stops at the first bound crossed, so a refusal costs
 * next to nothing. It does not validate JSON; `JSON.parse` still does.
 *
 * @module
 */

/**
 * Deepest nesting accepted in one JSON-RPC message: tool arguments start at
 * level 3 (message, params, arguments), which leaves them over 120 levels,
 * more than any JSON Schema or chat history needs.
 */
export const MAX_MESSAGE_DEPTH = 128;

/**
 * Most values (array elements and object members) accepted in one message:
 * a long chat history, a batch of thousands of texts to embed or a large
 * JSON Schema fit many times over, and parsing this many takes a few
 * milliseconds (a million took about 40 ms).
 */
export const MAX_MESSAGE_ELEMENTS = 100_000;

/** Bounds of {@linkcode checkJsonBounds}. */
export interface JsonBounds {
  /**
   * Deepest nesting of arrays and objects.
   * @default MAX_MESSAGE_DEPTH
   */
  maxDepth?: number;
  /**
   * Most values (counted as separators plus containers).
   * @default MAX_MESSAGE_ELEMENTS
   */
  maxElements?: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Checks `text` against the bounds; returns what is wrong (for an error
 * message), or undefined when it is within them.
 */
export function checkJsonBounds(text: string, bounds: JsonBounds = {}): string | undefined {
  const maxDepth = bounds.maxDepth ?? MAX_MESSAGE_DEPTH;
  const maxElements = bounds.maxElements ?? MAX_MESSAGE_ELEMENTS;
  let depth = 0;
  let elements = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      // Skip the string: jump from quote to quote, stepping over escaped quotes.
      for (i++; i < length; i++) {
        const next = text.indexOf('"', i);
        if (next === -1) return undefined;
        let backslashes = 0;
        for (let j = next - 1; j >= i && text.charCodeAt(j) === BACKSLASH; j--) backslashes++;
        i = next;
        if (backslashes % 2 === 0) break;
      }
    } else if (code === COMMA) {
      if (++elements > maxElements) return `it holds more than ${maxElements} values`;
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      if (++depth > maxDepth) return `it nests arrays and objects deeper than ${maxDepth} levels`;
      if (++elements > maxElements) return `it holds more than ${maxElements} values`;
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      depth--;
    }
  }
  return undefined;
}

/** True when the parsed `value` nests arrays and objects deeper than `maxDepth` levels. */
export function valueExceedsDepth(value: unknown, maxDepth: number): boolean {
  // Iterative, so a deep value cannot overflow the stack while it is being measured.
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== "object" || item === null) continue;
    if (depth > maxDepth) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}
