/**
 * Runs the KVM tests (test/kvm/) where KVM can run a guest: directly on a host with hardware
 * virtualisation, otherwise inside the nested-KVM rig (test/rig/), a QEMU VM whose emulated CPU
 * has AMD SVM. Their TAP output becomes this test's subtests, so a failure in there fails here.
 */
import path from 'node:path';
import t from 'tap';

const root = path.join(__dirname, '..');

t.spawn(
  'bash',
  [path.join(root, 'test', 'rig', 'run.sh'), '--', 'npx', 'tap', '--reporter=tap', '--timeout=1800', '--jobs=1', 'test/kvm'],
  { cwd: root, env: { ...process.env, FORCE_COLOR: '0' } },
  'KVM tests',
);
