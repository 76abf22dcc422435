/**
 * Test helper: a strict parser of the Prometheus text exposition format
 * (version 0.0.4), so tests read `/metrics` the way a Prometheus server
 * would, and fail on anything it would refuse: a sample line that does not
 * parse, a metric name or label name outside the allowed characters, a bad
 * escape, a `TYPE` after the family's samples, a sample of an undeclared
 * family's wrong suffix, or a histogram whose buckets are not cumulative or
 * whose `+Inf` bucket differs from its `_count`.
 *
 * (npm `parse-prometheus-text-format` was tried first: it drops the labels
 * of histogram series, so it cannot check per-label counts.)
 *
 * @module
 */

/** One sample: a series name, its labels and its value. */
export interface Sample {
  /** Series name, e.g. `rune_tool_calls_total` or `rune_x_bucket`. */
  name: string;
  /** Labels. */
  labels: Record<string, string>;
  /** Value. */
  value: number;
}

/** A metric family: `# HELP`, `# TYPE` and its samples. */
export interface Family {
  /** Family name. */
  name: string;
  /** `counter`, `gauge`, `histogram`, `summary` or `untyped`. */
  type: string;
  /** Help text. */
  help: string;
  /** Samples of the family. */
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Parses exposition text into families by name; throws on any format error. */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!match) return; // A plain comment.
      const [, kind, name, rest] = match;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      const family = families.get(name) ??
        { name, type: "untyped", help: "", samples: [] } as Family;
      families.set(name, family);
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type`);
        if (family.samples.length) throw new Error(`${where}: TYPE after samples`);
        family.type = rest;
      } else family.help = rest.replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
      return;
    }
    const sample = parseSample(line, where);
    const family = familyOf(families, sample.name);
    if (!family) throw new Error(`${where}: sample of an undeclared family`);
    family.samples.push(sample);
  });
  for (const family of families.values()) {
    if (family.type === "histogram") checkHistogram(family);
  }
  return families;
}

function familyOf(families: Map<string, Family>, series: string): Family | undefined {
  const direct = families.get(series);
  if (direct) return direct;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!series.endsWith(suffix)) continue;
    const family = families.get(series.slice(0, -suffix.length));
    if (family && (family.type === "histogram" || family.type === "summary")) return family;
  }
  return undefined;
}

function parseSample(line: string, where: string): Sample {
  let i = 0;
  const nameEnd = line.search(/[{ ]/);
  if (nameEnd <= 0) throw new Error(`${where}: no value`);
  const name = line.slice(0, nameEnd);
  if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
  i = nameEnd;
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const eq = line.indexOf("=", i);
      if (eq < 0) throw new Error(`${where}: label without value`);
      const label = line.slice(i, eq);
      if (!LABEL.test(label)) throw new Error(`${where}: bad label name ${label}`);
      if (line[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
      let value = "";
      let j = eq + 2;
      for (;; j++) {
        const c = line[j];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        if (c === '"') break;
        if (c === "\\") {
          const next = line[++j];
          if (next === "n") value += "\n";
          else if (next === "\\" || next === '"') value += next;
          else throw new Error(`${where}: bad escape \\${next}`);
        } else value += c;
      }
      if (label in labels) throw new Error(`${where}: label ${label} twice`);
      labels[label] = value;
      i = j + 1;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`${where}: expected , or }`);
    }
    i++;
  }
  if (line[i] !== " ") throw new Error(`${where}: expected a space before the value`);
  const [valueText, timestamp, extra] = line.slice(i + 1).split(" ");
  if (extra !== undefined || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) {
    throw new Error(`${where}: trailing text`);
  }
  const value = valueText === "+Inf"
    ? Infinity
    : valueText === "-Inf"
    ? -Infinity
    : valueText === "NaN"
    ? NaN
    : Number(valueText);
  if (valueText === "" || (Number.isNaN(value) && valueText !== "NaN")) {
    throw new Error(`${where}: bad value`);
  }
  return { name, labels, value };
}

/** Buckets cumulative, `+Inf` present and equal to `_count`, per label set. */
function checkHistogram(family: Family): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const sample of family.samples) {
    const { le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (sample.name.endsWith("_bucket")) {
      if (le === undefined) throw new Error(`${family.name}: bucket without le`);
      entry.buckets.push([le === "+Inf" ? Infinity : Number(le), sample.value]);
    } else if (sample.name.endsWith("_count")) entry.count = sample.value;
  }
  for (const [key, { buckets, count }] of series) {
    buckets.sort((a, b) => a[0] - b[0]);
    for (let k = 1; k < buckets.length; k++) {
      if (buckets[k][1] < buckets[k - 1][1]) {
        throw new Error(`${family.name}${key}: buckets are not cumulative`);
      }
    }
    if (buckets.at(-1)?.[0] !== Infinity) throw new Error(`${family.name}${key}: no +Inf bucket`);
    if (buckets.at(-1)![1] !== count) {
      throw new Error(`${family.name}${key}: +Inf bucket differs from _count`);
    }
  }
}

/**
 * The value of series `name` whose labels include `labels` (summed over
 * the series that match); 0 when none matches.
 */
export function valueOf(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = familyOf(families, name);
  if (!family) return 0;
  return family.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}
