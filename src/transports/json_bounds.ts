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

/** A {@linkcode checkJsonBounds} that takes the UTF-8 bytes of a text as they arrive. */
export interface JsonBoundsScanner {
  /** Scans the next bytes; returns what is wrong once a bound is crossed (and from then on). */
  push(bytes: Uint8Array): string | undefined;
}

/**
 * Scans UTF-8 bytes chunk by chunk with the rules of
 * {@linkcode checkJsonBounds}, so an HTTP body is refused as soon as it
 * crosses a bound: 32 MiB of `[],` is refused after its first few hundred
 * kilobytes instead of being buffered, decoded and scanned whole (on the
 * 2-core machine touching 32 MiB of fresh memory alone stalls the event
 * loop for hundreds of milliseconds). Bytes work as well as characters:
 * quotes, backslashes, brackets and commas are ASCII, and UTF-8 never uses
 * ASCII bytes inside a multi-byte character.
 */
export function createJsonBoundsScanner(bounds: JsonBounds = {}): JsonBoundsScanner {
  const maxDepth = bounds.maxDepth ?? MAX_MESSAGE_DEPTH;
  const maxElements = bounds.maxElements ?? MAX_MESSAGE_ELEMENTS;
  let depth = 0;
  let elements = 0;
  let inString = false;
  // A backslash ended the previous chunk inside a string: the next byte is escaped.
  let escaped = false;
  let problem: string | undefined;
  return {
    push(bytes) {
      if (problem !== undefined) return problem;
      const length = bytes.length;
      // Next quote and backslash at or after the cursor, found natively and reused.
      let quote = -1;
      let backslash = -1;
      let i = 0;
      while (i < length) {
        if (inString) {
          if (escaped) {
            escaped = false;
            i++;
            continue;
          }
          if (quote !== Infinity && quote < i) quote = bytes.indexOf(QUOTE, i);
          if (quote === -1) quote = Infinity;
          if (backslash !== Infinity && backslash < i) backslash = bytes.indexOf(BACKSLASH, i);
          if (backslash === -1) backslash = Infinity;
          if (backslash < quote) {
            escaped = true;
            i = backslash + 1;
          } else if (quote !== Infinity) {
            inString = false;
            i = quote + 1;
          } else {
            // The string goes on in the next chunk.
            break;
          }
          continue;
        }
        const code = bytes[i++];
        if (code === QUOTE) {
          inString = true;
        } else if (code === COMMA) {
          if (++elements > maxElements) return problem = `it holds more than ${maxElements} values`;
        } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
          if (++depth > maxDepth) {
            return problem = `it nests arrays and objects deeper than ${maxDepth} levels`;
          }
          if (++elements > maxElements) return problem = `it holds more than ${maxElements} values`;
        } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
          depth--;
        }
      }
      return undefined;
    },
  };
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
