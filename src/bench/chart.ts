/**
 * The report as a picture: stacked bars of the startup breakdown (medians) per runtime, and bars
 * of memory per instance, with axes, units and the host line, readable without the table. SVG by
 * hand; PNG through rsvg-convert (librsvg2-bin).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';

import { VmrunError } from '../errors';
import { FIGURES, type FigureKey, type RuntimeLabel } from './figures';
import { hostLine } from './host';
import type { BenchReport } from './run-bench';

const WIDTH = 900;
const LEFT = 110;
const RIGHT = 40;
const BAR = 26;
const GAP = 14;
const COLOURS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1', '#edc948', '#9c755f', '#ff9da7'];

/** A bar's segments: label and median; the container's remainder after exec is one segment. */
function breakdown(report: BenchReport, runtime: RuntimeLabel): { label: string; value: number }[] {
  const stats = report.runtimes[runtime]?.stats;
  if (!stats) return [];
  const median = (k: FigureKey) => stats[k]?.median;
  const keys: Record<RuntimeLabel, FigureKey[]> = {
    container: ['firstInstructionMs'],
    vmrun: ['setupMs', 'agentToExecMs', 'processMs', 'teardownMs'],
    'vmrun-cold': ['setupMs', 'kernelMs', 'agentToExecMs', 'processMs', 'teardownMs'],
    qemu: ['initMs', 'teardownMs'],
  };
  const segments: { label: string; value: number }[] = keys[runtime].flatMap((k) => (median(k) === undefined ? [] : [{ label: FIGURES[k].label, value: median(k)! }]));
  const exit = median('exitMs');
  if (runtime === 'container' && exit !== undefined) {
    const before = segments.reduce((sum, s) => sum + s.value, 0);
    segments.push({ label: before ? 'process + teardown' : 'to exit', value: exit - before });
  }
  return segments;
}

export function renderSvg(report: BenchReport): string {
  const runtimes = Object.keys(report.runtimes) as RuntimeLabel[];
  const bars = runtimes.map((r) => ({ runtime: r, segments: breakdown(report, r) }));
  // One figure for every bar: density where any runtime has it (a runtime without it shows as
  // not measured), PSS otherwise.
  const memoryKey = runtimes.some((r) => report.runtimes[r]?.stats.densityMiB) ? 'densityMiB' : 'pssMiB';
  const memory = runtimes.map((r) => ({ runtime: r, value: report.runtimes[r]?.stats[memoryKey]?.median }));
  const labels = [...new Set(bars.flatMap((b) => b.segments.map((s) => s.label)))];
  const colour = (label: string) => COLOURS[labels.indexOf(label) % COLOURS.length];
  const plot = WIDTH - LEFT - RIGHT;
  const out: string[] = [];
  let y = 20;
  const text = (x: number, ty: number, body: string, attrs = '') => out.push(`<text x="${x}" y="${ty}"${attrs}>${escape(body)}</text>`);

  text(10, y, `vmrun bench ${report.image}: VM against container`, ' font-weight="bold" font-size="15"');
  text(10, (y += 18), hostLine(report.host), ' font-size="11"');
  text(10, (y += 15), `N=${report.runs} each, ${report.concurrency} at once, medians; guest RAM ${report.memoryMiB} MiB`, ' font-size="11"');

  // Startup breakdown.
  const maxMs = Math.max(1, ...bars.map((b) => b.segments.reduce((sum, s) => sum + s.value, 0)));
  const msScale = niceMax(maxMs);
  text(10, (y += 30), 'Startup, asked to start -> exit (ms, medians)', ' font-weight="bold"');
  y += 10;
  for (const { runtime, segments } of bars) {
    text(LEFT - 8, y + BAR / 2 + 4, runtime, ' text-anchor="end"');
    let x = LEFT;
    for (const s of segments) {
      const w = (Math.max(0, s.value) / msScale) * plot;
      out.push(`<rect class="bar" x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" fill="${colour(s.label)}"><title>${escape(`${runtime}: ${s.label} ${s.value.toFixed(1)} ms`)}</title></rect>`);
      x += w;
    }
    if (!segments.length) text(LEFT + 4, y + BAR / 2 + 4, report.runtimes[runtime]?.status === 'failed' ? 'failed' : 'not measured', ' font-style="italic"');
    else text(x + 4, y + BAR / 2 + 4, `${segments.reduce((sum, s) => sum + s.value, 0).toFixed(0)} ms`, ' font-size="11"');
    y += BAR + GAP;
  }
  y = axis(out, y, msScale, 'ms');
  let lx = LEFT;
  for (const label of labels) {
    const width = 24 + label.length * 6.5;
    if (lx + width > WIDTH) [lx, y] = [LEFT, y + 18];  // wrap the legend rather than clip it
    out.push(`<rect x="${lx}" y="${y}" width="12" height="12" fill="${colour(label)}"/>`);
    text(lx + 16, y + 10, label, ' font-size="11"');
    lx += width;
  }
  y += 40;

  // Memory per instance.
  const maxMiB = Math.max(1, ...memory.map((m) => m.value ?? 0));
  const mibScale = niceMax(maxMiB);
  text(10, y, `Memory per instance (MiB): ${FIGURES[memoryKey].label}`, ' font-weight="bold"');
  y += 10;
  for (const { runtime, value } of memory) {
    text(LEFT - 8, y + BAR / 2 + 4, runtime, ' text-anchor="end"');
    if (value === undefined) {
      text(LEFT + 4, y + BAR / 2 + 4, report.runtimes[runtime]?.status === 'failed' ? 'failed' : 'not measured', ' font-style="italic"');
    } else {
      const w = (Math.max(0, value) / mibScale) * plot;
      out.push(`<rect class="bar" x="${LEFT}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" fill="${COLOURS[0]}"><title>${escape(`${runtime}: ${value.toFixed(1)} MiB`)}</title></rect>`);
      text(LEFT + w + 4, y + BAR / 2 + 4, `${value.toFixed(1)} MiB`, ' font-size="11"');
    }
    y += BAR + GAP;
  }
  y = axis(out, y, mibScale, 'MiB') + 10;

  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="sans-serif" font-size="13">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${out.join('\n')}\n</svg>\n`;
}

/** An x axis under the bars: a line, five ticks with values, and the unit. */
function axis(out: string[], y: number, max: number, unit: string): number {
  const plot = WIDTH - LEFT - RIGHT;
  out.push(`<line x1="${LEFT}" y1="${y}" x2="${LEFT + plot}" y2="${y}" stroke="black"/>`);
  for (let i = 0; i <= 5; i++) {
    const x = LEFT + (plot * i) / 5;
    out.push(`<line x1="${x}" y1="${y}" x2="${x}" y2="${y + 5}" stroke="black"/>`);
    out.push(`<text x="${x}" y="${y + 18}" text-anchor="middle" font-size="11">${escape(formatTick((max * i) / 5))}</text>`);
  }
  out.push(`<text x="${LEFT + plot}" y="${y + 34}" text-anchor="end" font-size="11">${unit}</text>`);
  return y + 44;
}

/** 1, 2 or 5 times a power of ten, at or above `value`. */
export function niceMax(value: number): number {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value)!;
}

function formatTick(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Writes the chart: SVG, or PNG (by extension) through rsvg-convert. */
export async function writeChart(report: BenchReport, file: string): Promise<void> {
  const svg = renderSvg(report);
  if (!file.toLowerCase().endsWith('.png')) {
    fs.writeFileSync(file, svg);
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const child = execFile('rsvg-convert', ['-f', 'png', '-o', file], (err, _stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') reject(new VmrunError('a PNG chart needs rsvg-convert: apt-get install librsvg2-bin (or ask for FILE.svg)'));
      else if (err) reject(new VmrunError(`rsvg-convert failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
    // rsvg-convert may be missing or end early; execFile's callback says so, not stdin.
    child.stdin?.on('error', () => undefined).end(svg);
  });
}
