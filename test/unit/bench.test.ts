// The benchmark's arithmetic and its outputs, on a made-up report: statistics, the table, the
// SVG chart, and a runtime that fails being reported as failed. No KVM needed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { niceMax, renderSvg, writeChart } from '../../src/bench/chart';
import { emptySample, FIGURE_KEYS, type RuntimeLabel, type Sample } from '../../src/bench/figures';
import { hostInfo } from '../../src/bench/host';
import type { BenchReport, RuntimeReport } from '../../src/bench/run-bench';
import { quantile, ratio, summarise } from '../../src/bench/stats';
import { formatTable } from '../../src/bench/table';
import { ociRef, vmrun } from '../helpers/cli';

t.test('median, p90, min and max; nulls are not measured, not zero', async (t) => {
  t.same(summarise([5, 1, 3, 2, 4]), { n: 5, median: 3, p90: 4.6, min: 1, max: 5 });
  t.same(summarise([2, null, 4, undefined]), { n: 2, median: 3, p90: 3.8, min: 2, max: 4 });
  t.equal(summarise([null, undefined]), null);
  t.equal(summarise([]), null);
  t.equal(quantile([10], 0.9), 10);
  t.equal(ratio(summarise([30]), summarise([10])), 3);
  t.equal(ratio(summarise([30]), null), null);
  t.equal(ratio(summarise([30]), summarise([0])), null);
  t.same([0.7, 3, 10, 11, 480].map(niceMax), [1, 5, 10, 20, 500]);
});

function runtime(samples: Partial<Sample>[], density: number | null, status: 'ok' | 'failed' = 'ok'): RuntimeReport {
  const full = samples.map((s) => ({ ...emptySample(), ...s }));
  const stats = Object.fromEntries(FIGURE_KEYS.map((k) => [k, k === 'densityMiB' ? summarise([density]) : k === 'execMs' ? summarise([]) : summarise(full.map((s) => s[k]))])) as RuntimeReport['stats'];
  return { status, ...(status === 'failed' ? { error: 'cannot start /no/qemu' } : {}), samples: full, stats, notMeasured: {} };
}

const report: BenchReport = {
  host: { ...hostInfo(), hostname: 'testhost', nestedKvm: true, nestedWhy: 'inside the nested-KVM rig (VMRUN_RIG=1)' },
  image: 'oci:/images/busybox:latest',
  command: ['true'],
  runs: 2,
  concurrency: 1,
  density: 2,
  memoryMiB: 1024,
  guestKernel: 'vmlinux (PVH)',
  runtimes: {
    container: runtime([{ firstInstructionMs: 40, exitMs: 90, cgroupMiB: 1.5, pssMiB: 9 }, { firstInstructionMs: 60, exitMs: 110, cgroupMiB: 1.7, pssMiB: 11 }], 3),
    vmrun: runtime([{ setupMs: 30, agentToExecMs: 50, processMs: 5, teardownMs: 20, firstInstructionMs: 80, exitMs: 105, vmmOverheadMiB: 8, guestTouchedMiB: 40 }], 50),
    'vmrun-cold': runtime([{ setupMs: 10, kernelMs: 300, agentToExecMs: 50, processMs: 5, teardownMs: 20, firstInstructionMs: 360, exitMs: 390, vmmOverheadMiB: 8, guestTouchedMiB: 40 }], 60),
    qemu: runtime([], null, 'failed'),
  },
  ratios: { 'vmrun/container': Object.fromEntries(FIGURE_KEYS.map((k) => [k, k === 'exitMs' ? 3.9 : null])) as BenchReport['ratios'][string] },
};

t.test('the table: every figure per runtime, not measured where null, failures, ratios, host and N', async (t) => {
  const table = formatTable(report);
  t.match(table, /testhost: Linux .*NESTED KVM/);
  t.match(table, /N=2 runs each/);
  t.match(table, /^to first instruction \(ms\)\s+container\s+50\.0\s+58\.0\s+40\.0\s+60\.0$/m);
  t.match(table, /^kernel to init \(ms\)\s+vmrun-cold\s+300\s+300\s+300\s+300$/m);
  t.match(table, /^to first instruction \(ms\)\s+vmrun\s+80\.0/m);
  t.match(table, /^kernel to init \(ms\)\s+container\s+not measured$/m);
  t.match(table, /^density, per instance \(MiB\)\s+vmrun\s+50\.0/m);
  t.match(table, /qemu: FAILED: cannot start \/no\/qemu/);
  t.match(table, /^to exit\s+3\.90x$/m);
  for (const label of ['VMM set-up', 'agent to exec', 'process run', 'teardown', 'VMM overhead', 'guest RAM touched', 'PSS', 'cgroup memory']) {
    t.match(table, new RegExp(`^${label} \\(`, 'm'), label);
  }
});

/** Tags open and close in order: a cheap well-formedness check without an XML parser. */
function wellFormed(svg: string): boolean {
  const stack: string[] = [];
  for (const [, close, name, selfClosing] of svg.replace(/<\?xml[^>]*\?>/, '').matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    if (selfClosing) continue;
    if (!close) stack.push(name);
    else if (stack.pop() !== name) return false;
  }
  return stack.length === 0 && !/&(?!amp;|lt;|gt;|quot;)/.test(svg);
}

t.test('the SVG chart: well formed, a stacked bar per runtime, memory bars, axes with units', async (t) => {
  const svg = renderSvg(report);
  t.ok(wellFormed(svg), 'well formed');
  t.match(svg, /^<\?xml[^>]*>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const bars = [...svg.matchAll(/<rect class="bar"[^>]*><title>([^<]*)<\/title>/g)].map((m) => m[1]);
  t.same(bars.filter((b) => b.startsWith('vmrun-cold: ') && b.endsWith(' ms')).length, 5, 'vmrun-cold: five phases stacked');
  t.same(bars.filter((b) => b.startsWith('vmrun: ') && b.endsWith(' ms')).length, 4, 'vmrun, restored: four (no kernel boot)');
  t.ok(bars.includes('container: to first instruction 50.0 ms') && bars.includes('container: process + teardown 50.0 ms'), 'container: exec, then the rest');
  t.ok(bars.includes('vmrun: 50.0 MiB') && bars.includes('container: 3.0 MiB'), 'memory per instance');
  t.match(svg, />failed</, 'the failed runtime says so');
  t.match(svg, /Startup, asked to start -&gt; exit \(ms, medians\)/);
  t.match(svg, />ms<\/text>/);
  t.match(svg, />MiB<\/text>/);
  t.match(svg, /NESTED KVM/);
  t.match(svg, /N=2 each/);
});

t.test('a PNG without rsvg-convert is an error naming the package', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-bench-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const saved = process.env.PATH;
  process.env.PATH = dir;
  t.teardown(() => void (process.env.PATH = saved));
  await t.rejects(writeChart(report, path.join(dir, 'chart.png')), /apt-get install librsvg2-bin/);
  process.env.PATH = saved;
  await writeChart(report, path.join(dir, 'chart.svg'));
  t.ok(wellFormed(fs.readFileSync(path.join(dir, 'chart.svg'), 'utf8')));
});

t.test('a runtime that cannot run is reported as failed, with its error', async (t) => {
  const out = await vmrun(['bench', await ociRef('busybox'), '--runtimes', 'qemu', '--qemu', '/nonexistent/qemu', '-n', '1', '--density', '0', '--json']);
  t.equal(out.code, 1, `every runtime failed (stderr: ${out.stderr})`);
  const json = JSON.parse(out.stdout.toString()) as BenchReport;
  const qemu = json.runtimes.qemu as RuntimeReport;
  t.equal(qemu.status, 'failed');
  t.match(qemu.error, /\/nonexistent\/qemu is not an executable/);
  t.equal(qemu.stats.initMs, null, 'nothing measured, and nothing reported as zero');
  t.same(Object.keys(json.runtimes), ['qemu' satisfies RuntimeLabel]);
  t.match(json.host, { kernel: os.release() });
});
