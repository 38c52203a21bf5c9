/** Small statistics for benchmarks: medians over rounds, percentiles over samples. */
// The percentile the pipeline page shows too (nearest rank), so both read alike.
export { percentile } from '../localstack/pipeline/metrics.ts';

/** The middle value; with an even count, the mean of the two middle ones (rounds come in pairs when sides take turns). */
export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** `items` rotated by `round`: over rounds, each goes first in turn, so none always follows another's garbage or a slow spell's start. */
export function inTurn<T>(items: readonly T[], round: number): T[] {
  const shift = round % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/** Median of per-round ratios: each round runs both sides back to back, so a slow spell of the shared machine hits both. */
export const pairedRatio = (measured: number[], baseline: number[]): number => median(measured.map((m, i) => m / baseline[i]!));

export interface Row { benchmark: string; measured: string; baseline: string; ratio: string; target: string; verdict: string }

/** Prints rows as one markdown table. */
export function markdownTable(rows: Row[]): string {
  const header = ['benchmark', 'measured', 'baseline (same run)', 'ratio', 'target', ''];
  const lines = [header, header.map(() => '---'), ...rows.map((r) => [r.benchmark, r.measured, r.baseline, r.ratio, r.target, r.verdict])];
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
