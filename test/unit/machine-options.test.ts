import t from 'tap';

import { MachineConfigError } from '../../src/errors';
import { Machine } from '../../src/vm/machine';

t.test('options of the wrong type are refused before KVM is touched', async (t) => {
  const bad = [
    { opts: { kernel: '' }, msg: /kernel must be a file path/ },
    { opts: { kernel: 'k', initrd: 3 as unknown as string }, msg: /initrd must be a file path/ },
    { opts: { kernel: 'k', memoryMiB: 1.5 }, msg: /memoryMiB must be a non-negative integer, not 1.5/ },
    { opts: { kernel: 'k', vcpus: -1 }, msg: /vcpus must be a non-negative integer, not -1/ },
  ];
  for (const { opts, msg } of bad) {
    await t.rejects(Machine.boot(opts), { name: MachineConfigError.name, message: msg });
  }
});

t.test('probe() says whether this host can run a guest, and if not, how to fix it', async (t) => {
  const probe = Machine.probe();
  if (probe.usable) {
    t.ok(probe.maxVcpus >= 1, `KVM allows ${probe.maxVcpus} vCPUs`);
  } else {
    t.match(probe.error, /\/dev\/kvm .*(rig|group|VT-x)/, probe.error ?? 'no error given');
  }
});
