import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

import { Machine } from '../../src/vm/machine';
import { bootToEnd, probeGuest } from '../helpers/guest';

t.test('a bzImage boots to init, sees its CPUs and memory, and resets itself', async (t) => {
  const guest = await probeGuest();
  for (const { vcpus, memoryMiB } of [
    { vcpus: 1, memoryMiB: 128 },
    { vcpus: 2, memoryMiB: 256 },
  ]) {
    const result = await bootToEnd({ kernel: guest.kernel.bzImage, initrd: guest.initrd, vcpus, memoryMiB });
    t.equal(result.exit.kind, 'reset', `${vcpus} vCPUs, ${memoryMiB} MiB: the guest ended itself`);
    t.ok(result.probe, 'init printed its marker');
    t.equal(result.probe?.cpus, vcpus, 'the guest sees as many CPUs as asked');
    // MemTotal is RAM less what the kernel keeps for itself: between 75% and 100% of what we gave.
    const memMiB = (result.probe?.memTotalKiB ?? 0) / 1024;
    t.ok(memMiB > memoryMiB * 0.75 && memMiB <= memoryMiB, `MemTotal ${memMiB.toFixed(1)} MiB of ${memoryMiB} MiB`);
  }
});

t.test('an ELF vmlinux boots through its PVH entry', async (t) => {
  const guest = await probeGuest();
  const result = await bootToEnd({ kernel: guest.kernel.vmlinux, initrd: guest.initrd, vcpus: 2, memoryMiB: 128 });
  t.equal(result.exit.kind, 'reset');
  t.equal(result.probe?.cpus, 2);
});

t.test('console input reaches the guest', async (t) => {
  const guest = await probeGuest();
  const result = await bootToEnd(
    {
      kernel: guest.kernel.bzImage,
      initrd: guest.initrd,
      cmdline: 'console=ttyS0 reboot=k panic=-1 quiet no_timer_check probe_mode=echo',
    },
    'hello from the host\n',
  );
  t.equal(result.exit.kind, 'reset');
  t.match(result.console, /VMRUN-ECHO hello from the host/);
});

t.test('the guest finds the virtio-rng device and reads random bytes from it', async (t) => {
  const guest = await probeGuest();
  const reads: string[] = [];
  for (let i = 0; i < 2; i++) {
    const result = await bootToEnd({
      kernel: guest.kernel.bzImage,
      initrd: guest.initrd,
      cmdline: 'console=ttyS0 reboot=k panic=-1 quiet no_timer_check probe_mode=rng',
    });
    t.equal(result.exit.kind, 'reset');
    const m = /VMRUN-RNG source=(\S+) bytes=([0-9a-f]*)/.exec(result.console);
    t.equal(m?.[1], 'virtio_rng.0', 'the guest uses the virtio RNG');
    t.match(m?.[2], /^[0-9a-f]{64}$/, '32 bytes read');
    reads.push(m?.[2] ?? '');
  }
  t.not(reads[0], reads[1], 'two boots read different bytes');
});

t.test('virtio disks: a read-only one the guest reads but cannot write, a writable one it writes', async (t) => {
  const guest = await probeGuest();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-disk-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ro = path.join(dir, 'ro-disk.img');
  const rw = path.join(dir, 'rw-disk.img');
  const roBytes = Buffer.alloc(1 << 20);
  roBytes.write('VMRUN-DISK-BYTES', 0);
  fs.writeFileSync(ro, roBytes);
  fs.writeFileSync(rw, Buffer.alloc(1 << 20));
  const result = await bootToEnd({
    kernel: guest.kernel.bzImage,
    initrd: guest.initrd,
    cmdline: 'console=ttyS0 reboot=k panic=-1 quiet no_timer_check probe_mode=disk',
    drives: [{ path: ro, readOnly: true }, { path: rw }],
  });
  t.equal(result.exit.kind, 'reset');
  t.match(result.console, /VMRUN-DISK vda: size=2048 ro=1 serial=ro-disk\.img head=VMRUN-DISK-BYTES/, 'size, read-only flag, id and contents');
  t.match(result.console, /VMRUN-DISK vda-write=refused vdb-write=ok/);
  t.same(fs.readFileSync(ro), roBytes, 'the read-only disk is unchanged');
  t.equal(fs.readFileSync(rw).subarray(512, 512 + 21).toString(), 'written-by-the-guest\n', 'the guest wrote the other');
});

t.test('kill() stops a running guest and wait() says so', async (t) => {
  const guest = await probeGuest();
  // No initrd: the kernel panics looking for a root and, with panic=0, waits forever.
  const vm = await Machine.boot({ kernel: guest.kernel.bzImage, cmdline: 'console=ttyS0 panic=0 quiet' });
  vm.console.resume();
  vm.kill();
  const exit = await vm.wait();
  t.equal(exit.kind, 'stopped');
});

t.test('the VMM threads run under their seccomp filters; Node\'s own threads do not', async (t) => {
  const guest = await probeGuest();
  const vm = await Machine.boot({ kernel: guest.kernel.bzImage, cmdline: 'console=ttyS0 panic=0 quiet', vcpus: 2 });
  vm.console.resume();
  const names = ['vmrun-vcpu0', 'vmrun-vcpu1', 'vmrun-devices'];
  let threads = new Map<string, string>();  // name -> /proc status
  // The threads name themselves and install their filters as they start: look until they have.
  for (let tries = 0; tries < 100; tries++) {
    threads = new Map();
    for (const tid of fs.readdirSync('/proc/self/task')) {
      const name = fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      threads.set(tid === String(process.pid) ? 'main' : name, fs.readFileSync(`/proc/self/task/${tid}/status`, 'utf8'));
    }
    if (names.every((n) => /^Seccomp:\t2$/m.test(threads.get(n) ?? ''))) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  vm.kill();
  await vm.wait();
  for (const name of names) {
    t.match(threads.get(name), /^Seccomp:\t2$/m, `${name}: filter mode`);
    t.match(threads.get(name), /^NoNewPrivs:\t1$/m, `${name}: no new privileges`);
  }
  t.match(threads.get('main'), /^Seccomp:\t0$/m, 'the Node thread is untouched');
});
