/**
 * A linear pre-scan that bounds how deeply a JSON text nests arrays and
 * objects, run before `JSON.parse`.
 *
 * V8 parses and stringifies deeply nested JSON in super-linear time: an
 * 8 MB request nested four million levels deep held the event loop (every
 * client's session) for over ten seconds. Counting brackets outside strings
 * costs one pass over the text and stops at the first level past the bound.
 * The scan does not validate JSON; `JSON.parse` still does that.
 *
 * @module
 */

/**
 * Deepest nesting accepted in one JSON-RPC message: tool arguments start at
 * level 3 (message, params, arguments), which leaves them over 120 levels,
 * more than any JSON Schema or chat history needs.
 */
export const MAX_MESSAGE_DEPTH = 128;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** True when `text` nests arrays and objects deeper than `maxDepth` levels. */
export function exceedsDepth(text: string, maxDepth: number = MAX_MESSAGE_DEPTH): boolean {
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      // Skip the string: jump from quote to quote, stepping over escaped characters.
      for (i++; i < length; i++) {
        const next = text.indexOf('"', i);
        if (next === -1) return false;
        let backslashes = 0;
        for (let j = next - 1; j >= i && text.charCodeAt(j) === BACKSLASH; j--) backslashes++;
        i = next;
        if (backslashes % 2 === 0) break;
      }
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
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
