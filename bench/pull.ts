/**
 * Pull benchmark: `vmrun pull` of a large multi-layer image (4 layers of 64 MiB of random bytes)
 * from a registry on loopback, against `skopeo copy docker://... oci:DIR` of the same image,
 * alternating, each into an empty destination. Needs docker-registry and skopeo; no KVM.
 *
 *   node dist/bench/pull.js [--runs N] [--json]
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { pullImage } from '../src/image/store';
import { pushImage, randomLayer, startRegistry } from '../test/helpers/registry';
import { median, sinceMs } from './stats';

const LAYERS = 4;
const LAYER_MIB = 64;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;
  const json = args.includes('--json');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-bench-pull-'));
  const registry = await startRegistry();
  try {
    const layers = await Promise.all(Array.from({ length: LAYERS }, (_, i) => randomLayer(LAYER_MIB << 20, `layer-${i}.bin`)));
    const bytes = layers.reduce((sum, l) => sum + l.length, 0);
    await pushImage(registry, 'big', 'latest', layers);
    const ref = `${registry.host}/big:latest`;
    const samples = { vmrun: [] as number[], skopeo: [] as number[] };
    const fresh = (name: string) => {
      const dir = path.join(work, name);
      fs.rmSync(dir, { recursive: true, force: true });
      return dir;
    };
    for (let i = 0; i < runs; i++) {
      process.env.VMRUN_STORE_DIR = fresh('store');
      let start = process.hrtime.bigint();
      await pullImage(ref, { progress: false });
      samples.vmrun.push(sinceMs(start));
      const dest = fresh('skopeo');
      start = process.hrtime.bigint();
      await promisify(execFile)('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${dest}:latest`]);
      samples.skopeo.push(sinceMs(start));
    }
    const result = {
      image: `${LAYERS} layers x ${LAYER_MIB} MiB (random, uncompressed tar)`,
      runs,
      vmrunMs: median(samples.vmrun),
      skopeoMs: median(samples.skopeo),
      vmrunMiBps: bytes / (1 << 20) / (median(samples.vmrun) / 1000),
      skopeoMiBps: bytes / (1 << 20) / (median(samples.skopeo) / 1000),
      ratio: median(samples.vmrun) / median(samples.skopeo),
      samples,
    };
    if (json) {
      console.log(JSON.stringify(result));
      return;
    }
    console.log(`pull of ${result.image} from a loopback registry, median of ${runs} runs, alternating`);
    console.log(`  vmrun pull    ${result.vmrunMs.toFixed(0).padStart(6)} ms  ${result.vmrunMiBps.toFixed(0).padStart(5)} MiB/s`);
    console.log(`  skopeo copy   ${result.skopeoMs.toFixed(0).padStart(6)} ms  ${result.skopeoMiBps.toFixed(0).padStart(5)} MiB/s`);
    console.log(`  vmrun / skopeo time: ${result.ratio.toFixed(2)}`);
  } finally {
    await registry.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
