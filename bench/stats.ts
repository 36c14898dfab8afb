/** Small statistics helpers for the benchmarks (pure). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(samples: readonly number[]): { p50: number; p99: number; max: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN, n: s.length };
}

export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

export const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

/** A markdown table row of timings: what, how many runs, their median, min / max (ms). */
export const timingRow = (what: string, xs: readonly number[]) => `| ${what} | ${xs.length} | ${fmt(median(xs), 1)} | ${fmt(Math.min(...xs), 1)} / ${fmt(Math.max(...xs), 1)} |`;
