/**
 * Sandbox benchmark (issue 14's figures), a VM and a container side by side in one run:
 *   - exec: the latency of `exec true` into a running sandbox, from the call to its exit code
 *     (Sandbox.exec), the two runtimes alternating;
 *   - idle memory: what an idle sandbox costs the host: the PSS of the VM's VMM processes (the
 *     guest RAM it touched included) against the container's memory cgroup.
 *
 *   node dist/bench/exec.js --image IMAGE [--runs N] [--json]
 * Where the host has no KVM, run it through the rig: bash test/rig/run.sh -- node dist/bench/exec.js ...
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

import { cgroupMemory, processMemory } from '../src/bench/memory';
import { Sandbox } from '../src/run/sandbox';
import { median, sinceMs } from './stats';

const MIB = 2 ** 20;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const image = opt('--image');
  if (!image) throw new Error('usage: node dist/bench/exec.js --image IMAGE [--runs N] [--json]');
  const runs = Number(opt('--runs') ?? 20);
  const vm = await Sandbox.create({ image, runtime: 'vm', network: { mode: 'none' } });
  const container = await Sandbox.create({ image, runtime: 'container', network: { mode: 'none' } });
  try {
    const times: Record<string, number[]> = { vm: [], container: [] };
    for (let i = 0; i < runs + 2; i++) {
      for (const [name, sb] of [['vm', vm], ['container', container]] as const) {
        const start = process.hrtime.bigint();
        const r = await sb.exec(['true']);
        if (r.exitCode !== 0) throw new Error(`${name}: exec true exited ${r.exitCode}`);
        if (i >= 2) times[name].push(sinceMs(start));  // the first two warm up
      }
    }
    await new Promise((r) => setTimeout(r, 2000));
    const memory = { vmMiB: vmmPss() / MIB, containerMiB: containerUsage() / MIB };
    const report = {
      execMs: { vm: median(times.vm), container: median(times.container), ratio: median(times.vm) / median(times.container) },
      idleMemory: { ...memory, ratio: memory.vmMiB / memory.containerMiB },
      runs,
    };
    if (args.includes('--json')) console.log(JSON.stringify(report));
    else {
      console.log(`exec true: VM ${report.execMs.vm.toFixed(1)} ms, container ${report.execMs.container.toFixed(1)} ms, ratio ${report.execMs.ratio.toFixed(2)} (medians of ${runs})`);
      console.log(`idle sandbox: VM ${memory.vmMiB.toFixed(1)} MiB (VMM PSS), container ${memory.containerMiB.toFixed(1)} MiB (cgroup), ratio ${report.idleMemory.ratio.toFixed(2)}`);
    }
  } finally {
    await Promise.all([vm.close(), container.close()]);
  }
}

/** PSS of this process's VMM processes and their children (the jailed VMM). */
function vmmPss(): number {
  const children = (pid: number): number[] => {
    try {
      return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const vmms = children(process.pid).filter((p) => (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0] ?? '').endsWith('vmrun-vmm'));
  return [...vmms, ...vmms.flatMap(children)].reduce((sum, p) => sum + (processMemory(p)?.pss ?? 0), 0);
}

/** The memory cgroup usage of the one vmrun container running. */
function containerUsage(): number {
  const dirs = fs.existsSync('/sys/fs/cgroup/vmrun') ? fs.readdirSync('/sys/fs/cgroup/vmrun') : [];
  return dirs.reduce((sum, d) => sum + (cgroupMemory(`/vmrun/${d}`)?.usage ?? 0), 0);
}

main().catch((err: Error) => {
  console.error(`bench: ${err.message}`);
  process.exit(1);
});
