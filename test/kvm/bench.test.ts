// `vmrun bench` end to end in the rig: one invocation, N=2, on the busybox image; its JSON holds
// every figure each runtime can measure (a VM restored from the agent snapshot, one booted, a
// container, QEMU), and says why for each one it cannot.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { FIGURE_KEYS, type FigureKey, type RuntimeLabel } from '../../src/bench/figures';
import { BOOT_TIMER_MISSING, RESTORED, type BenchReport } from '../../src/bench/run-bench';
import { ociRef, vmrun } from '../helpers/cli';

// The rig's init mounts no cgroups; runc needs them (a normal host has them mounted).
if (!fs.existsSync('/sys/fs/cgroup/cgroup.controllers') && fs.readdirSync('/sys/fs/cgroup').length === 0) {
  execFileSync('mount', ['-t', 'cgroup2', 'cgroup2', '/sys/fs/cgroup']);
}

const MEASURED: Record<RuntimeLabel, FigureKey[]> = {
  // Beyond these, the container's exec phase is measured once its runtime passes it on.
  container: ['exitMs', 'pssMiB', 'cgroupMiB', 'densityMiB', 'execMs'],
  vmrun: ['firstInstructionMs', 'exitMs', 'setupMs', 'agentToExecMs', 'processMs', 'teardownMs', 'vmmOverheadMiB', 'guestTouchedMiB', 'pssMiB', 'densityMiB', 'execMs'],
  'vmrun-cold': ['firstInstructionMs', 'exitMs', 'setupMs', 'kernelMs', 'initMs', 'agentToExecMs', 'processMs', 'teardownMs', 'vmmOverheadMiB', 'guestTouchedMiB', 'pssMiB', 'densityMiB', 'execMs'],
  qemu: ['initMs', 'teardownMs', 'vmmOverheadMiB', 'guestTouchedMiB', 'pssMiB'],
};

t.test('container, vmrun restored and cold, and QEMU: every figure, twice each, with the host stated', async (t) => {
  const chart = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-bench-')), 'chart.svg');
  const out = await vmrun(['bench', await ociRef('busybox'), '-n', '2', '--concurrency', '1', '--density', '2', '--json', '--chart', chart, '--', 'true']);
  t.equal(out.code, 0, `exit code (stderr: ${out.stderr.slice(-2000)})`);
  const report = JSON.parse(out.stdout.toString()) as BenchReport;
  t.match(report, { runs: 2, concurrency: 1, density: 2, host: { nestedKvm: true, kernel: os.release() } });
  // Without the boot timer (a guest kernel without ioperm), vmrun's guest-side figures must say so.
  const bootTimer = report.runtimes['vmrun-cold']?.stats.initMs !== null;
  if (!bootTimer) {
    t.equal(report.runtimes['vmrun-cold']?.notMeasured.kernelMs, BOOT_TIMER_MISSING, 'no boot timer: said so');
    MEASURED['vmrun-cold'] = MEASURED['vmrun-cold'].filter((k) => !['firstInstructionMs', 'kernelMs', 'initMs', 'agentToExecMs', 'processMs'].includes(k));
  }
  t.equal(report.runtimes.vmrun?.notMeasured.kernelMs, RESTORED, 'restored: no kernel boot, and said so');
  for (const label of ['container', 'vmrun', 'vmrun-cold', 'qemu'] as const) {
    const runtime = report.runtimes[label]!;
    t.equal(runtime.status, 'ok', `${label}: ${runtime.error ?? 'ran'}`);
    t.equal(runtime.samples.length, 2, `${label}: two samples`);
    for (const key of FIGURE_KEYS) {
      const stats = runtime.stats[key];
      if (MEASURED[label].includes(key)) t.ok(stats !== null, `${label}: ${key} measured (${JSON.stringify(stats)})`);
      if (stats === null) t.ok(runtime.notMeasured[key], `${label}: ${key} not measured, and why: ${runtime.notMeasured[key]}`);
    }
  }
  const cold = report.runtimes['vmrun-cold']!.stats;
  if (bootTimer) t.ok(cold.initMs!.median < cold.firstInstructionMs!.median && cold.firstInstructionMs!.median < cold.exitMs!.median, 'vmrun-cold: init, then exec, then exit');
  const restored = report.runtimes.vmrun!.stats;
  t.ok(restored.setupMs!.median < restored.firstInstructionMs!.median && restored.firstInstructionMs!.median < restored.exitMs!.median, 'vmrun: restored, then exec, then exit');
  t.ok(report.ratios['vmrun/container'].exitMs! > 0 && report.ratios['vmrun/vmrun-cold'].firstInstructionMs! > 0 && report.ratios['vmrun/qemu'].pssMiB! > 0, 'ratios');
  t.match(fs.readFileSync(chart, 'utf8'), /<svg[^]*vmrun[^]*<\/svg>/);
});
