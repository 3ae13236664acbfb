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
  .sort()
  .map((f) => path.join('dist', 'test', 'kvm', f));
if (files.length === 0) throw new Error('no compiled KVM tests in dist/test/kvm: run tsc -p . first');

// The rig's own watchdog: 75 minutes, far above the suite's usual time, so that only a hang trips
// it. node_modules, dist and build are only read in there: --cached spares them slow 9p lookups.
// In there each file runs under plain node, one after another, with a 30-minute limit
// (test/rig/tap-files.js): tap's runner hooks cost minutes under emulation, and no coverage is
// collected there.
t.spawn(
  'bash',
  [
    path.join(root, 'test', 'rig', 'run.sh'),
    ...['--timeout', '4500', '--cached', 'node_modules', '--cached', 'dist', '--cached', 'build'],
    ...['--', 'node', path.join('test', 'rig', 'tap-files.js'), '--timeout', '1800', ...files],
  ],
  { cwd: root, env: { ...process.env, FORCE_COLOR: '0' } },
  'KVM tests',
);
