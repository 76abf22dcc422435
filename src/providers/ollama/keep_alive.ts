/**
 * `keep_alive` as Ollama reads it: a number of seconds, or a string that
 * Go's `time.ParseDuration` accepts (`"10m"`, `"1h30m"`, `"-1s"`, `"0"`).
 * Ollama answers HTTP 400 with Go's error text for any other string
 * (`api.Duration.UnmarshalJSON` in `api/types.go`), so Rune checks it
 * before sending and words the problem the same way.
 *
 * @module
 */

/** Nanoseconds per unit, as Go's `time.unitMap`. */
const UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  "µs": 1_000n, // U+00B5 micro sign
  "μs": 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX = 1n << 63n;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JSON Schema `pattern` of a Go duration (overflow aside), for tool input schemas. */
export const GO_DURATION_PATTERN =
  "^[-+]?(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$";

/**
 * Why Go's `time.ParseDuration` rejects `text`, in Go's words (e.g.
 * `time: unknown unit "x" in duration "5x"`), or `undefined` when it
 * parses.
 */
export function goDurationError(text: string): string | undefined {
  // Go works on the UTF-8 bytes.
  const s = encoder.encode(text);
  const invalid = `time: invalid duration ${quote(s)}`;
  let i = 0;
  if (s.length > 0 && (s[0] === 0x2d || s[0] === 0x2b)) i++;
  // Special case: "0" (after the sign) is zero.
  if (s.length - i === 1 && s[i] === 0x30) return undefined;
  if (i === s.length) return invalid;
  const isDigit = (c: number | undefined) => c !== undefined && c >= 0x30 && c <= 0x39;
  let total = 0n;
  while (i < s.length) {
    if (!(s[i] === 0x2e || isDigit(s[i]))) return invalid;
    // Consume [0-9]*
    const start = i;
    let v = 0n;
    for (; isDigit(s[i]); i++) {
      if (v > MAX / 10n) return invalid;
      v = v * 10n + BigInt(s[i] - 0x30);
      if (v > MAX) return invalid;
    }
    const pre = i !== start;
    // Consume (\.[0-9]*)?
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[i] === 0x2e) {
      i++;
      const fractionStart = i;
      let overflow = false;
      for (; isDigit(s[i]); i++) {
        if (overflow) continue;
        if (f > (MAX - 1n) / 10n) {
          overflow = true;
          continue;
        }
        const y = f * 10n + BigInt(s[i] - 0x30);
        if (y > MAX) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      post = i !== fractionStart;
    }
    // No digits, e.g. ".s" or "-.s".
    if (!pre && !post) return invalid;
    // Consume the unit: everything up to the next '.' or digit.
    const unitStart = i;
    while (i < s.length && !(s[i] === 0x2e || isDigit(s[i]))) i++;
    if (i === unitStart) return `time: missing unit in duration ${quote(s)}`;
    const unitBytes = s.subarray(unitStart, i);
    const unit = UNITS[decoder.decode(unitBytes)];
    if (unit === undefined) {
      return `time: unknown unit ${quote(unitBytes)} in duration ${quote(s)}`;
    }
    if (v > MAX / unit) return invalid;
    v *= unit;
    if (f > 0n) {
      // Go: v += uint64(float64(f) * (float64(unit) / scale)).
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > MAX) return invalid;
    }
    total += v;
    if (total > MAX) return invalid;
  }
  const negative = s[0] === 0x2d;
  if (!negative && total > MAX - 1n) return invalid;
  return undefined;
}

/**
 * Why Ollama would refuse `value` as `keep_alive`, in Ollama's words, or
 * `undefined` when it is fine: numbers are seconds (negative: forever),
 * strings must be Go durations.
 */
export function keepAliveError(value: string | number): string | undefined {
  if (typeof value === "number") {
    return Number.isFinite(value) ? undefined : `keep_alive must be a finite number of seconds`;
  }
  return goDurationError(value);
}

/** Go's `time.quote`: ASCII as is (with `"` and `\` escaped), other bytes as `\xNN`. */
function quote(bytes: Uint8Array): string {
  let out = '"';
  for (const byte of bytes) {
    if (byte >= 0x80 || byte < 0x20) out += `\\x${byte.toString(16).padStart(2, "0")}`;
    else if (byte === 0x22 || byte === 0x5c) out += `\\${String.fromCharCode(byte)}`;
    else out += String.fromCharCode(byte);
  }
  return out + '"';
}
