// The VMM's C++ unit tests again, built under ThreadSanitizer (bench/tsan.sh): the serial port,
// vsock and the queues are shared by vCPU threads and the device thread.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import t from 'tap';

const root = path.join(__dirname, '..', '..');

t.test('the VMM unit tests pass under ThreadSanitizer with no data race', async (t) => {
  const run = spawnSync('bash', [path.join(root, 'bench', 'tsan.sh')], { cwd: root, encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr.slice(-4000));
  t.match(run.stdout, /^tsan: [1-9][0-9]* checks passed, no data race reported$/m);
});
