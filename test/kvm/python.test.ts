// python:3.10 for real, through both runtimes: a Python image (Debian 12's python3.11, built
// offline by test/fixtures/build-python.sh) is served as docker.io/library/python:3.10 by a
// loopback registry that vmrun uses as its Docker Hub mirror, pulled on first use, and run in a
// microVM and in a runc container, which must agree byte for byte.

import t, { type Test } from 'tap';

import { vmrun } from '../helpers/cli';
import { pythonLayout } from '../helpers/images';
import { freshStore, pushLayout, startRegistry } from '../helpers/registry';

t.test('python:3.10 from a Docker Hub mirror runs the same in a VM and in a container', async (t) => {
  const registry = await startRegistry();
  t.teardown(() => registry.stop());
  await pushLayout(registry, await pythonLayout(), 'latest', 'library/python:3.10');
  freshStore(t);
  const env = { ...process.env, VMRUN_REGISTRY_MIRRORS: `http://${registry.host}` };

  /** Runs `python -c CODE` from python:3.10 on both runtimes; both must exit `code` with the same output. */
  const both = async (t: Test, code: string, exitCode: number): Promise<string> => {
    const args = ['python:3.10', 'python', '-c', code];
    const vm = await vmrun(['--runtime', 'vm', ...args], { env });
    const container = await vmrun(['--runtime', 'container', ...args], { env });
    t.equal(vm.code, exitCode, `vm: exit code (stderr: ${vm.stderr.trim()})`);
    t.equal(container.code, exitCode, `container: exit code (stderr: ${container.stderr.trim()})`);
    t.equal(container.stderr, vm.stderr, 'same stderr');
    t.ok(container.stdout.equals(vm.stdout), `same stdout (vm ${JSON.stringify(vm.stdout.toString())}, container ${JSON.stringify(container.stdout.toString())})`);
    return vm.stdout.toString();
  };

  const version = await both(t, 'import sys; print(sys.version)', 0);
  t.match(version, /^3\.11\./, 'Debian 12\'s python');
  t.comment(`sys.version: ${version.trim()}`);
  t.equal(await both(t, 'import json,sqlite3,ssl,zlib; print("ok")', 0), 'ok\n', 'the stdlib\'s extension modules load');
  await both(t, 'import sys; sys.exit(7)', 7);

  // readdir's d_ino must be stat's st_ino across the image's layers and the writable layer on
  // top (overlayfs xino), as on one filesystem: os.scandir, find and rsync rely on it. Mount
  // points differ everywhere.
  const inodes = [
    'import os',
    'mounts = {l.split()[4] for l in open("/proc/self/mountinfo")}',
    'print([e.path for d in ("/", "/etc", "/usr", "/usr/bin", "/tmp") for e in os.scandir(d)',
    '       if e.path not in mounts and e.inode() != os.stat(e.path, follow_symlinks=False).st_ino])',
  ].join('\n');
  for (const runtime of ['vm', 'container']) {
    const o = await vmrun(['--runtime', runtime, 'python:3.10', 'sh', '-c', `touch /tmp/new /etc/new && python -c '${inodes}'`], { env });
    t.equal(o.stdout.toString(), '[]\n', `${runtime}: scandir and stat agree on inode numbers (stderr: ${o.stderr.trim()})`);
  }

  // What programs read from the kernel, as a distribution kernel gives it under docker: dnotify,
  // seccomp, IPv6 sockets, cgroup v2 mounted at /sys/fs/cgroup (read-only), fanotify.
  const kernel = [
    'import ctypes, fcntl, os, socket',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'def check(name, ok):',
    '    print(name, "ok" if ok else os.strerror(ctypes.get_errno()))',
    'fd = os.open("/tmp", os.O_RDONLY)',
    'check("dnotify", libc.fcntl(fd, fcntl.F_NOTIFY, fcntl.DN_CREATE) == 0)',
    'check("seccomp", libc.prctl(21, 0, 0, 0, 0) >= 0)  # PR_GET_SECCOMP',
    'check("fanotify", libc.fanotify_init(0, 0) >= 0 or ctypes.get_errno() == 1)  # EPERM: exists, not allowed',
    's = socket.socket(socket.AF_INET6); s.bind(("::", 0)); print("ipv6 ok")',
    'print("cgroup2", open("/proc/self/mountinfo").read().count(" - cgroup2 "), os.path.exists("/sys/fs/cgroup/cgroup.controllers"))',
  ].join('\n');
  t.equal(await both(t, kernel, 0), 'dnotify ok\nseccomp ok\nfanotify ok\nipv6 ok\ncgroup2 1 True\n', 'the kernel features programs use');
  // Namespaces are the guest's own to give: a sandbox inside the VM may make them (docker's
  // profile refuses them in a container, so only the VM is asked).
  const userns = await vmrun(['--runtime', 'vm', 'python:3.10', 'python', '-c',
    'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); print(libc.unshare(0x10000000 | 0x20000000 | 0x04000000), os.getuid())'], { env });
  t.equal(userns.stdout.toString(), '0 65534\n', `vm: unshare(user, pid, uts) works, leaving an unmapped uid (stderr: ${userns.stderr.trim()})`);
});
