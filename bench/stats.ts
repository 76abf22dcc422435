/**
 * Small statistics helpers for the benchmark: percentiles over samples and
 * number formatting for the results table.
 *
 * @module
 */

/** Summary of a set of samples (milliseconds unless said otherwise). */
export interface Summary {
  /** Number of samples. */
  n: number;
  /** Median. */
  p50: number;
  /** 99th percentile (nearest rank). */
  p99: number;
  /** Arithmetic mean. */
  mean: number;
  /** Largest sample. */
  max: number;
}

/** The `q`-quantile (0..1) of already sorted samples, by nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** Summarizes `samples` (need not be sorted). */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    mean: sorted.length ? sum / sorted.length : NaN,
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}

/** The median of `samples`. */
export function median(samples: readonly number[]): number {
  return summarize(samples).p50;
}

/** Formats milliseconds with a precision that suits their size. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  const digits = abs < 10 ? 3 : abs < 100 ? 2 : 1;
  return `${value.toFixed(digits)} ms`;
}

/** Formats a count with thousands separators. */
export function count(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return Math.round(value).toLocaleString("en-US");
}

/** Formats bytes as MB (10^6) with one decimal, or KB below 1 MB. */
export function bytes(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  if (abs < 1_000_000) return `${(value / 1000).toFixed(1)} KB`;
  return `${(value / 1_000_000).toFixed(1)} MB`;
}

/** Wall-clock milliseconds comparable across processes on this machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves after `delayMs`. */
export function sleep(delayMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, delayMs));
}
