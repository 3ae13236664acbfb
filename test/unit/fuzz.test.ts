// The fuzz smoke run: every libFuzzer target (bench/fuzz.sh: the virtio-mmio transport with each
// device, vsock packets, virtio-net frames both ways, the agent's frame and spec parsers, the
// host's decoder of VMM-process messages, a snapshot's state file) for 30 s each from its saved
// corpus, under ASan and UBSan. A crash, a leak or a sanitizer report fails it.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import t from 'tap';

const root = path.join(__dirname, '..', '..');

t.test('every fuzz target runs 30 s without a finding', async (t) => {
  const run = spawnSync('bash', [path.join(root, 'bench', 'fuzz.sh'), '--seconds', '30'], { cwd: root, encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr.slice(-4000));
  const lines = run.stdout.trim().split('\n');
  t.same(lines.map((l) => l.split(/\s+/)[0]), ['virtio_mmio', 'vsock_packets', 'net_frames', 'vhost_user', 'agent_frames', 'control_messages', 'snapshot_state'], 'every target ran');
  for (const line of lines) {
    t.match(line, /^\S+\s+ok\s+inputs [1-9][0-9]*\s+execs\/s [0-9]+\s+coverage [1-9][0-9]* edges$/, line);
  }
});
