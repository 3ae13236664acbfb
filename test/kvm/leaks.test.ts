import t from 'tap';

import { Machine } from '../../src/vm/machine';
import { probeGuest, processResources } from '../helpers/guest';

t.test('50 machines created, started and destroyed in a row leak no fd and no thread', async (t) => {
  const guest = await probeGuest();
  // One first, so that lazily created process-wide things (the addon, libuv's pipes) exist.
  const warm = await Machine.boot({ kernel: guest.kernel.bzImage, initrd: guest.initrd });
  warm.console.resume();
  warm.kill();
  await warm.wait();

  const before = processResources();
  for (let i = 0; i < 50; i++) {
    const vm = await Machine.boot({ kernel: guest.kernel.bzImage, initrd: guest.initrd, vcpus: 2 });
    vm.console.resume();
    vm.kill();
    const exit = await vm.wait();
    if (exit.kind !== 'stopped') t.fail(`machine ${i} ended as ${exit.kind}: ${exit.detail}`);
  }
  // Sockets close on the next turns of the event loop.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const after = processResources();
  t.equal(after.fds, before.fds, `fds: ${before.fds} before, ${after.fds} after`);
  t.equal(after.threads, before.threads, `threads: ${before.threads} before, ${after.threads} after`);
});
