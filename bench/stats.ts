/** Summary statistics for benchmark samples. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function sinceMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}
