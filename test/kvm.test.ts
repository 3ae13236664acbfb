/**
 * Runs the KVM tests (test/kvm/) where KVM can run a guest: directly on a host with hardware
 * virtualisation, otherwise inside the nested-KVM rig (test/rig/), a QEMU VM whose emulated CPU
 * has AMD SVM. Their TAP output becomes this test's subtests, so a failure in there fails here.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..');

// Built here, on the host, where it is many times faster than inside the rig; cached for the rig.
for (const fixtures of ['build-images.sh', 'build-python.sh']) {
  execFileSync('bash', [path.join(root, 'test', 'fixtures', fixtures)], { stdio: ['ignore', 'ignore', 'inherit'] });
}
execFileSync('bash', [path.join(root, 'images', 'agent', 'build.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });

// The files run as the JavaScript that `npm test`'s tsc built (dist/test/kvm): compiling them
// with ts-node inside the rig cost each file half a minute of emulated CPU.
const files = fs
  .readdirSync(path.join(root, 'dist', 'test', 'kvm'))
  .filter((f) => f.endsWith('.test.js'))
  .sort();
if (files.length === 0) throw new Error('no compiled KVM tests in dist/test/kvm: run tsc -p . first');

// Two rigs side by side, one emulated CPU each (a rig with two CPUs crashes nested guests, see
// test/rig/run.sh): on a two-core machine this halves the suite's time. The files are split by
// their time in a clean-clone CI run with one rig (seconds; containerd's measured alone in the
// rig); files that share vmrun's python image stay together, so that it is unpacked once. A file not named here goes to the shard with less work: none is skipped.
const SHARDS: Record<string, number>[] = [
  { matrix: 883, containerd: 450, snapshot: 217, bench: 124 },
  // Every file that runs vmrun's python image.
  { network: 342, python: 303, compat: 220, 'run-image': 303, sandbox: 229, boot: 86, volumes: 49, leaks: 29, errors: 28, vsock: 19, 'vmm-state': 11 },
];
// On a host with hardware KVM, run.sh runs the files here, where they would see each other's
// processes (passt, virtiofsd, containerd): one shard, then.
const hardwareKvm = /\b(vmx|svm)\b/.test(fs.readFileSync('/proc/cpuinfo', 'utf8')) && canOpen('/dev/kvm');
const shards = (hardwareKvm ? [Object.assign({}, ...SHARDS) as Record<string, number>] : SHARDS).map((times) => ({ seconds: 0, files: [] as string[], times }));
const unknown: string[] = [];
for (const file of files) {
  const name = file.replace(/\.test\.js$/, '');
  const shard = shards.find((s) => name in s.times);
  if (shard) {
    shard.files.push(file);
    shard.seconds += shard.times[name];
  } else unknown.push(file);
}
for (const file of unknown) {
  const lightest = shards.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  lightest.files.push(file);
  lightest.seconds += 120;
}

// The rig's own watchdog: 75 minutes, far above a shard's usual time, so that only a hang trips
// it. node_modules, dist and build are only read in there: --cached spares them slow 9p lookups.
// Each rig keeps what it writes to the vmrun cache on a scratch disk of its own (--own-cache):
// 9p carries no file locks from one rig to another.
// In there each file runs under plain node, one after another, with a 30-minute limit
// (test/rig/tap-files.js): tap's runner hooks cost minutes under emulation, and no coverage is
// collected there.
t.jobs = shards.length;
for (const [i, shard] of shards.entries()) {
  if (shard.files.length === 0) continue;
  t.spawn(
    'bash',
    [
      path.join(root, 'test', 'rig', 'run.sh'),
      ...['--timeout', '4500', '--own-cache', '16', '--cached', 'node_modules', '--cached', 'dist', '--cached', 'build'],
      ...['--', 'node', path.join('test', 'rig', 'tap-files.js'), '--timeout', '1800'],
      ...shard.files.map((f) => path.join('dist', 'test', 'kvm', f)),
    ],
    { cwd: root, env: { ...process.env, FORCE_COLOR: '0' } },
    `KVM tests, rig ${i + 1} of ${shards.length}: ${shard.files.join(' ')}`,
  );
}

function canOpen(file: string): boolean {
  try {
    fs.closeSync(fs.openSync(file, 'r+'));
    return true;
  } catch {
    return false;
  }
}
