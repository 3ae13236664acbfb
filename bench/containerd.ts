/**
 * containerd with vmrun's shim against containerd with its own runc shim, side by side in one
 * run (issue 16's figures):
 *   - `ctr run --rm IMAGE ID true`: wall time through containerd, the two runtimes alternating;
 *   - what a shim process costs per task: the PSS and RSS of each runtime's shim for one
 *     running task (vmrun's shim process alone; the VMM is the task's, not the shim's).
 * A private containerd (test/helpers/containerd.ts) pulls busybox from a loopback registry.
 *
 *   node dist/bench/containerd.js [--runs N] [--json]
 * Where the host has no KVM, run it through the rig: bash test/rig/run.sh -- node dist/bench/containerd.js
 */
import { processMemory, pidsWithArgument } from '../src/bench/memory';
import { startContainerd, RUNTIME } from '../test/helpers/containerd';
import { layoutOf } from '../test/helpers/images';
import { pushLayout, startRegistry } from '../test/helpers/registry';
import { median, sinceMs } from './stats';

const RUNC = 'io.containerd.runc.v2';
const MIB = 2 ** 20;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runs = Number(args.includes('--runs') ? args[args.indexOf('--runs') + 1] : 5);
  const registry = await startRegistry();
  const containerd = await startContainerd();
  try {
    await pushLayout(registry, await layoutOf('busybox'), 'latest', 'library/busybox:latest');
    const image = `${registry.host}/library/busybox:latest`;
    const pulled = await containerd.ctr(['images', 'pull', '--plain-http', image]);
    if (pulled.code !== 0) throw new Error(`ctr pull: ${pulled.stderr}`);
    const runtimes = { vmrun: RUNTIME, runc: RUNC };
    const times: Record<string, number[]> = { vmrun: [], runc: [] };
    // One of each first, not counted: the first start of each shim loads what it needs.
    for (let i = 0; i < runs + 1; i++) {
      for (const [name, runtime] of Object.entries(runtimes)) {
        const start = process.hrtime.bigint();
        const r = await containerd.ctr(['run', '--rm', '--runtime', runtime, image, `bench-${name}-${i}`, 'true']);
        if (r.code !== 0) throw new Error(`${name}: ctr run true exited ${r.code}: ${r.stderr.trim()}`);
        if (i > 0) times[name].push(sinceMs(start));
      }
    }
    const memory: Record<string, { pssMiB: number; rssMiB: number }> = {};
    for (const [name, runtime] of Object.entries(runtimes)) {
      const id = `bench-idle-${name}`;
      const r = await containerd.ctr(['run', '-d', '--runtime', runtime, image, id, 'sleep', '600']);
      if (r.code !== 0) throw new Error(`${name}: ctr run -d exited ${r.code}: ${r.stderr.trim()}`);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      // Each shim runs with -id ID; vmrun's is `node .../shim/main.js ... serve`.
      const pid = pidsWithArgument(id).find((p) => name === 'runc' || pidsWithArgument('serve').includes(p));
      const m = pid === undefined ? undefined : processMemory(pid);
      if (!m) throw new Error(`${name}: no shim process for ${id}`);
      memory[name] = { pssMiB: m.pss / MIB, rssMiB: m.rss / MIB };
      await containerd.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      for (let i = 0; i < 100 && !/STOPPED/.test((await containerd.ctr(['task', 'ls'])).stdout); i++) await new Promise((s) => setTimeout(s, 200));
      await containerd.ctr(['task', 'delete', id]);
      await containerd.ctr(['container', 'delete', id]);
    }
    const report = {
      host: process.env.VMRUN_RIG ? 'nested rig (TCG): compare the ratio, not the times' : 'this host',
      runs,
      ctrRunTrueMs: { vmrun: median(times.vmrun), runc: median(times.runc), ratio: median(times.vmrun) / median(times.runc) },
      shimMemoryPerTask: memory,
      samples: times,
    };
    if (args.includes('--json')) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(`ctr run --rm busybox true, median of ${runs} (${report.host}):`);
      console.log(`  vmrun shim ${report.ctrRunTrueMs.vmrun.toFixed(0)} ms, runc shim ${report.ctrRunTrueMs.runc.toFixed(0)} ms: ${report.ctrRunTrueMs.ratio.toFixed(2)}x`);
      for (const [name, m] of Object.entries(memory)) console.log(`  ${name} shim, one running task: PSS ${m.pssMiB.toFixed(1)} MiB, RSS ${m.rssMiB.toFixed(1)} MiB`);
    }
  } finally {
    await containerd.stop();
    await registry.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
