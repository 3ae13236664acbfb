/** Order statistics of benchmark samples. */

export interface Summary {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
}

/** The q-quantile (0..1) by linear interpolation between closest ranks (numpy's default). */
export function quantile(sorted: number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/** Median, p90, min and max of the values that were measured; null when none was. */
export function summarise(values: (number | null | undefined)[]): Summary | null {
  const sorted = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  return { n: sorted.length, median: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), min: sorted[0], max: sorted[sorted.length - 1] };
}

/** a / b of two medians; null unless both were measured and b is above zero. */
export function ratio(a: Summary | null, b: Summary | null): number | null {
  return a && b && b.median > 0 ? a.median / b.median : null;
}
