import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

import { KvmUnavailableError, MachineConfigError } from '../../src/errors';
import { packageRoot } from '../../src/paths';
import { Machine } from '../../src/vm/machine';
import { probeGuest, processResources } from '../helpers/guest';

const root = packageRoot;

t.test('bad input is refused with a clear error, and nothing is left running', async (t) => {
  const guest = await probeGuest();
  const notAKernel = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-')), 'not-a-kernel');
  fs.writeFileSync(notAKernel, Buffer.alloc(8192, 0x41));
  t.teardown(() => fs.rmSync(path.dirname(notAKernel), { recursive: true, force: true }));
  const maxVcpus = Machine.probe().maxVcpus;
  const ok = { kernel: guest.kernel.bzImage, initrd: guest.initrd };

  const before = processResources();
  const cases = [
    { name: 'a kernel path that does not exist', opts: { kernel: '/nonexistent/bzImage' }, msg: /kernel \/nonexistent\/bzImage: No such file/ },
    { name: 'a file that is not a kernel', opts: { kernel: notAKernel }, msg: /is not a Linux kernel/ },
    { name: 'an initrd that does not exist', opts: { ...ok, initrd: '/nonexistent/initrd' }, msg: /initrd \/nonexistent\/initrd: No such file/ },
    { name: 'a disk that does not exist', opts: { ...ok, drives: [{ path: '/nonexistent/disk.img' }] }, msg: /disk \/nonexistent\/disk\.img: No such file/ },
    { name: 'too little memory', opts: { ...ok, memoryMiB: 16 }, msg: /16 MiB is too small: give at least 32 MiB/ },
    { name: 'memory for the kernel but not the initrd', opts: { ...ok, memoryMiB: 32 }, msg: /too small/ },
    { name: '0 vCPUs', opts: { ...ok, vcpus: 0 }, msg: /vcpus must be between 1 and \d+ on this host, not 0/ },
    { name: 'more vCPUs than KVM allows', opts: { ...ok, vcpus: maxVcpus + 1 }, msg: /vcpus must be between 1 and/ },
    { name: 'a command line longer than the kernel takes', opts: { ...ok, cmdline: 'x'.repeat(5000) }, msg: /command line is \d+ bytes; this kernel takes at most \d+/ },
  ];
  for (const c of cases) {
    await t.rejects(Machine.boot(c.opts), { name: MachineConfigError.name, message: c.msg }, c.name);
  }
  t.same(processResources(), before, 'no fd or thread left behind');
});

t.test('no /dev/kvm: the error says how to get it', async (t) => {
  // Hide /dev/kvm in a private mount namespace and try to boot there.
  const script = `
    mount -t tmpfs none /dev
    exec node -e "
      require('${root}/dist/src/vm/machine').Machine.boot({ kernel: '/x' })
        .then(() => process.exit(0), (e) => { console.log(e.name + ': ' + e.message); process.exit(3); });
    "`;
  let out = '';
  let status = 0;
  try {
    execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8' });
  } catch (err) {
    const e = err as { stdout: string; status: number };
    out = e.stdout;
    status = e.status;
  }
  t.equal(status, 3, 'boot failed');
  t.match(out, new RegExp(`^${KvmUnavailableError.name}: /dev/kvm does not exist: .*nested rig`));
});
