/** The report as a table for people: every figure per runtime, then the ratios of medians. */
import { FIGURE_KEYS, FIGURES } from './figures';
import { hostLine } from './host';
import type { BenchReport } from './run-bench';
import type { Summary } from './stats';

export function formatTable(report: BenchReport): string {
  const lines = [
    `vmrun bench ${report.image}${report.command.length ? ` ${report.command.join(' ')}` : ''}`,
    `host: ${hostLine(report.host)}`,
    `N=${report.runs} runs each (after one warm-up), ${report.concurrency} at once, alternating; density K=${report.density}; guest RAM ${report.memoryMiB} MiB; ${report.guestKernel}`,
    '',
  ];
  const head = ['figure', 'runtime', 'median', 'p90', 'min', 'max'];
  const rows: string[][] = [];
  for (const key of FIGURE_KEYS) {
    const { label, unit } = FIGURES[key];
    for (const [name, runtime] of Object.entries(report.runtimes)) {
      const s = runtime.stats[key];
      const cells = s ? [s.median, s.p90, s.min, s.max].map((v) => format(v)) : ['not measured', '', '', ''];
      rows.push([`${label} (${unit})`, name, ...cells]);
    }
  }
  lines.push(...grid(head, rows), '');
  for (const [name, runtime] of Object.entries(report.runtimes)) {
    if (runtime.status === 'failed') lines.push(`${name}: FAILED: ${runtime.error}`);
  }
  const ratioNames = Object.keys(report.ratios);
  const ratioRows = FIGURE_KEYS.filter((k) => ratioNames.some((r) => report.ratios[r][k] !== null))
    .map((k) => [FIGURES[k].label, ...ratioNames.map((r) => (report.ratios[r][k] === null ? '-' : `${report.ratios[r][k]!.toFixed(2)}x`))]);
  if (ratioRows.length) lines.push('ratios of medians', ...grid(['figure', ...ratioNames], ratioRows), '');
  lines.push('what each figure means:', ...FIGURE_KEYS.map((k) => `  ${FIGURES[k].label}: ${FIGURES[k].meaning}`));
  return lines.join('\n') + '\n';
}

function format(value: Summary['median']): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(1);
}

/** Left-aligned text columns, right-aligned numbers. */
function grid(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)];
}
