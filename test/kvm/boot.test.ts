import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

import { packageRoot } from '../../src/paths';
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

t.test('the VM runs in a jailed process of its own: namespaces, no privileges, seccomp on every thread, a cgroup', async (t) => {
  const guest = await probeGuest();
  const vm = await Machine.boot({ kernel: guest.kernel.bzImage, cmdline: 'console=ttyS0 panic=0 quiet', vcpus: 2 });
  vm.console.resume();
  const { pid, jail } = vm.process();
  t.ok(pid && pid !== process.pid, `the VMM is process ${pid}, not this one`);
  const names = ['vmrun-vmm', 'vmrun-vcpu0', 'vmrun-vcpu1', 'vmrun-devices'];
  let threads = new Map<string, string>();  // name -> /proc status
  // The threads name themselves and install their filters as they start: look until they have.
  for (let tries = 0; tries < 100; tries++) {
    threads = new Map();
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      threads.set(name, fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
    }
    if (names.every((n) => /^Seccomp:\t2$/m.test(threads.get(n) ?? ''))) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.same([...threads.keys()].sort(), [...names].sort(), 'the process has a main, a device and one thread per vCPU, nothing else');
  for (const name of names) {
    const status = threads.get(name) ?? '';
    t.match(status, /^Seccomp:\t2$/m, `${name}: filter mode`);
    t.match(status, /^NoNewPrivs:\t1$/m, `${name}: no new privileges`);
    t.match(status, /^CapEff:\t0+$/m, `${name}: no effective capabilities`);
    t.match(status, /^CapBnd:\t0+$/m, `${name}: an empty bounding set`);
    const uid = Number(/^Uid:\t(\d+)/m.exec(status)?.[1]);
    t.ok(uid !== 0 && (process.getuid!() !== 0 || uid >= 900000000), `${name}: runs as uid ${uid}`);
  }
  for (const ns of ['mnt', 'pid', 'net', 'ipc', 'uts', 'cgroup']) {
    t.not(fs.readlinkSync(`/proc/${pid}/ns/${ns}`), fs.readlinkSync(`/proc/self/ns/${ns}`), `a ${ns} namespace of its own`);
  }
  t.same(fs.readdirSync(`/proc/${pid}/root`), [], 'its root is empty (no vsock asked for)');
  t.match(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'), /Max core file size\s+0\s+0/, 'no core files');
  t.match(jail, /cgroup v[12] /, `in a cgroup of its own: ${jail}`);
  const cgroup = /cgroup v2 (\S+)/.exec(jail)?.[1] ?? /cgroup v1 (\S+)/.exec(jail)?.[1];
  const limitFile = jail.includes('cgroup v2') ? 'memory.max' : 'memory.limit_in_bytes';
  t.equal(Number(fs.readFileSync(`${cgroup}/${limitFile}`, 'utf8')), (128 + 64) * 2 ** 20, 'memory limited to guest RAM plus 64 MiB');
  t.match(fs.readFileSync(`${cgroup}/cgroup.procs`, 'utf8').trim(), String(pid), 'the VMM is in it');
  t.notOk(fs.readdirSync('/proc/self/task').some((tid) => fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').startsWith('vmrun-')),
    'no VMM thread in this process');
  vm.kill();
  t.equal((await vm.wait()).kind, 'stopped');
  t.notOk(fs.existsSync(`/proc/${pid}`), 'the VMM process is gone');
  t.notOk(fs.existsSync(cgroup!), 'its cgroup is removed');
});

// Inside the rig the host's / is a throw-away overlay: opening the checkout's parents (/root is
// 0700) to other users there changes nothing outside. Anywhere else they must be open already.
function reachableByOthers(dir: string): void {
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
    const mode = fs.statSync(d).mode;
    if (mode & 0o001) continue;
    if (process.env.VMRUN_RIG !== '1') throw new Error(`${d} is closed to other users: run this test in the rig (test/rig/run.sh)`);
    fs.chmodSync(d, mode | 0o001);
  }
}

t.test('a user in the kvm group, not root, runs a VM as well, jailed in a user namespace', async (t) => {
  const guest = await probeGuest();
  const kvm = fs.statSync('/dev/kvm');
  t.equal(kvm.mode & 0o060, 0o060, '/dev/kvm is read-write for its group, as udev leaves it');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-user-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755);
  for (const f of [guest.kernel.bzImage, guest.initrd]) fs.copyFileSync(f, path.join(dir, path.basename(f)));
  reachableByOthers(packageRoot);
  const script = `
    const fs = require('node:fs');
    const { Machine } = require(${JSON.stringify(path.join(packageRoot, 'dist', 'src', 'vm', 'machine.js'))});
    (async () => {
      const vm = await Machine.boot({ kernel: ${JSON.stringify(path.join(dir, path.basename(guest.kernel.bzImage)))},
        initrd: ${JSON.stringify(path.join(dir, path.basename(guest.initrd)))},
        cmdline: 'console=ttyS0 reboot=k panic=-1 quiet no_timer_check' });
      let console = '';
      vm.console.setEncoding('utf8').on('data', (c) => (console += c));
      const { pid, jail } = vm.process();
      let status = '';
      for (let i = 0; i < 100 && !/^Seccomp:\\t2$/m.test(status); i++) {
        status = fs.readFileSync('/proc/' + pid + '/status', 'utf8');
        await new Promise((r) => setTimeout(r, 50));
      }
      const exit = await vm.wait();
      process.stdout.write(JSON.stringify({ exit, jail, status, console }));
    })().catch((e) => { console.error(e.stack); process.exit(1); });`;
  const r = spawnSync('setpriv', ['--reuid=1000', '--regid=1000', `--groups=${kvm.gid}`, '--inh-caps=-all',
    // tap's process tracking adds itself to NODE_OPTIONS, and would write under the checkout.
    'env', '-u', 'NODE_OPTIONS', process.execPath, '-e', script], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: dir }, timeout: 300_000 });
  t.equal(r.status, 0, `the unprivileged run succeeded: ${r.stderr}`);
  const out = JSON.parse(r.stdout || '{}') as { exit?: { kind: string }; jail?: string; status?: string; console?: string };
  t.equal(out.exit?.kind, 'reset', 'the guest booted and ended itself');
  t.match(out.console, /VMRUN-PROBE/, 'its init ran');
  t.match(out.jail, /^uid 1000, namespaces user pid mnt ipc uts net cgroup/, `jail: ${out.jail}`);
  t.match(out.status, /^Uid:\t1000\t1000\t1000\t1000$/m, 'the VMM runs as that user');
  t.match(out.status, /^CapEff:\t0+$/m, 'with no capabilities, not even in its user namespace');
  t.match(out.status, /^Seccomp:\t2$/m);
  t.match(out.status, /^NoNewPrivs:\t1$/m);
});

t.test('a VMM process that dies ends its VM as an error naming the signal, and nothing else', async (t) => {
  const guest = await probeGuest();
  const vm = await Machine.boot({ kernel: guest.kernel.bzImage, cmdline: 'console=ttyS0 panic=0 quiet' });
  vm.console.resume();
  process.kill(vm.process().pid!, 'SIGKILL');
  const exit = await vm.wait();
  t.equal(exit.kind, 'error');
  t.match(exit.detail, /the VMM process was killed by SIGKILL/);
  const again = await bootToEnd({ kernel: guest.kernel.bzImage, initrd: guest.initrd });
  t.equal(again.exit.kind, 'reset', 'the next VM runs as before');
});
