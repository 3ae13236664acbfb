// What containerd hands the shim, read the way runc would: its flags, and a bundle's OCI spec
// made into vmrun's run (src/shim/main.ts, src/shim/oci-spec.ts).
import t from 'tap';

import { parseShimFlags, shimSocket } from '../../src/shim/main';
import { processFromOci, runSpecFromOci } from '../../src/shim/oci-spec';

t.test('containerd\'s flags, in Go\'s syntax', async (t) => {
  const f = parseShimFlags(['-namespace', 'k8s.io', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'abc', '-debug', 'start']);
  t.same(f, { namespace: 'k8s.io', address: '/run/containerd/containerd.sock', publishBinary: '/usr/bin/containerd', id: 'abc', bundle: '', debug: true, action: 'start' });
  const g = parseShimFlags(['--namespace=default', '-id=x', '-bundle', '/b', '-socket', 'unix:///s', 'delete']);
  t.same([g.namespace, g.id, g.bundle, g.action, g.debug], ['default', 'x', '/b', 'delete', false], 'name=value, --name, and a later version\'s flag passed over');
  t.throws(() => parseShimFlags(['-id']), /-id needs a value/);
  t.match(shimSocket(f), /^\/run\/containerd\/s\/[0-9a-f]{64}$/, 'a socket where containerd keeps its shims\'');
  t.not(shimSocket(f), shimSocket({ ...f, id: 'abd' }), 'one per task');
});

t.test('an OCI process: args, env, cwd, numeric user, terminal and rlimits', async (t) => {
  const p = processFromOci(
    {
      args: ['sh', '-c', 'echo hi'],
      env: ['PATH=/bin', 'bad', '=x', 'A=b=c'],
      cwd: '/work',
      user: { uid: 1000, gid: 100, additionalGids: [10] },
      terminal: true,
      consoleSize: { height: 40, width: 120 },
      rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 }],
    },
    'the bundle',
  );
  t.same(p, { argv: ['sh', '-c', 'echo hi'], env: ['PATH=/bin', 'A=b=c'], workdir: '/work', user: '1000:100', tty: { rows: 40, cols: 120 }, rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 }] });
  t.same(processFromOci({ args: ['true'] }, 'x').user, '0:0', 'root without a user');
  t.same(processFromOci({ args: ['true'], terminal: true }, 'x').tty, { rows: 24, cols: 80 }, 'a terminal of the default size');
  t.throws(() => processFromOci({ args: [] }, 'exec e1'), /exec e1 has no process\.args/);
  t.throws(() => processFromOci({ args: ['x'], cwd: 'rel' }, 'x'), /not an absolute path/);
  t.throws(() => processFromOci({ args: ['x'], user: { uid: -1 } }, 'x'), /invalid uid or gid/);
});

t.test('a bundle\'s spec: the VM idles until Start, its mounts and limits', async (t) => {
  const { spec, resources } = runSpecFromOci({
    process: { args: ['app'], env: ['A=1'] },
    hostname: 'web-1',
    root: { path: 'rootfs', readonly: true },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup' },
      { destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'ro'] },
      { destination: '/etc/hosts', source: '/var/lib/pod/hosts', options: ['bind'] },
      { destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['size=64m', 'noexec', 'strictatime'] },
    ],
    linux: { resources: { memory: { limit: 300 * 2 ** 20 + 1 }, cpu: { quota: 150000, period: 100000 } } },
  });
  t.same([spec.argv, spec.idle, spec.env, spec.hostname, spec.readOnly, spec.network], [[], true, ['A=1'], 'web-1', true, { mode: 'none' }]);
  t.same(spec.volumes, [
    { kind: 'bind', source: '/srv/data', target: '/data', readOnly: true },
    { kind: 'bind', source: '/var/lib/pod/hosts', target: '/etc/hosts', readOnly: false },
    { kind: 'tmpfs', target: '/scratch', options: ['size=64m', 'noexec'] },
  ], 'binds and tmpfs; what every VM mounts itself is left to the agent');
  t.same(resources, { memoryMiB: 301, vcpus: 2 }, 'the memory limit rounded up to MiB, the CPU quota to whole vCPUs');
  t.same(runSpecFromOci({ process: { args: ['x'] } }, true).process.tty, { rows: 24, cols: 80 }, 'containerd\'s terminal flag decides the task process\'s terminal');
  t.equal(runSpecFromOci({ process: { args: ['x'], terminal: true } }).spec.tty, undefined, 'never the idle main process\'s');
  t.same(runSpecFromOci({ process: { args: ['x'] }, linux: { resources: { memory: { limit: 6 << 20 } } } }).resources.memoryMiB, 128, 'never below what a guest boots in');
  t.same(runSpecFromOci({ process: { args: ['x'] } }).resources, { memoryMiB: undefined, vcpus: undefined });
  t.throws(() => runSpecFromOci({ process: { args: ['x'] }, mounts: [{ destination: 'rel', type: 'bind', source: '/a' }] }), /must be an absolute path/);
  t.throws(() => runSpecFromOci({ process: { args: ['x'] }, mounts: [{ destination: '/m', type: 'bind' }] }), /no absolute source path/);
  t.throws(() => runSpecFromOci({ process: { args: ['x'] }, hostname: 'bad name' }), /hostname "bad name" is invalid/);
});
