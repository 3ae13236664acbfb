// The container runtime as strict as docker: the same escape attempts docker refuses (new user
// namespaces, keyrings, bpf, perf, userfaultfd, io_uring, mounts, kexec, vsock sockets, ...) are
// refused in a vmrun container, by its seccomp profile, with the pids limit and the masked paths
// of current docker. Runs on this host (root and runc).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { ociRef, vmrun } from '../helpers/cli';
import { pythonLayout } from '../helpers/images';

const canContainer = process.getuid?.() === 0 && (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, 'runc')));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-escape-test-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, TMPDIR: tmp };
const attempts = fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'escape-attempts.py'), 'utf8');

t.test('container runtime', { skip: !canContainer && 'needs root and runc' }, async (t) => {
  t.test('every system call docker refuses is refused, with EPERM', async (t) => {
    const o = await vmrun(['--runtime', 'container', `oci:${await pythonLayout()}:latest`, 'python3', '-c', attempts], { env });
    t.equal(o.code, 0, o.stderr);
    const results = Object.fromEntries(o.stdout.toString().trim().split('\n').map((l) => l.split(' ')));
    t.ok(Object.keys(results).length >= 14, 'every attempt reported');
    for (const [name, result] of Object.entries(results)) t.equal(result, 'EPERM', name);
  });

  t.test('unshare -Ur, the classic first step, fails', async (t) => {
    const o = await vmrun(['--runtime', 'container', await ociRef('busybox'), 'unshare', '-Ur', 'id'], { env });
    t.not(o.code, 0);
    t.match(o.stderr, /Operation not permitted/);
  });

  t.test('seccomp filters the process; docker\'s masked paths are empty; a pids limit holds', async (t) => {
    const script = 'grep Seccomp: /proc/self/status; wc -c < /proc/keys; ls /sys/devices/virtual/powercap | wc -l; wc -c < /proc/interrupts';
    const o = await vmrun(['--runtime', 'container', await ociRef('busybox'), 'sh', '-c', script], { env });
    t.equal(o.code, 0, o.stderr);
    t.match(o.stdout.toString(), /^Seccomp:\s+2\n0\n0\n0\n$/);
    // Threads past the limit cannot be made: a fork loop meets EAGAIN, not the host's limit.
    const bomb = await vmrun(['--runtime', 'container', await ociRef('busybox'), 'sh', '-c', 'for i in $(seq 5000); do sleep 30 & done 2>&1 | grep -m1 -o "Resource temporarily unavailable\\|can.t fork"; kill $(jobs -p) 2>/dev/null; true'], { env });
    t.match(bomb.stdout.toString(), /Resource temporarily unavailable|can.t fork/, 'the 4097th process is refused');
  });
});
