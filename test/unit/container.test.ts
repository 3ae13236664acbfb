// The container runtime's pieces that need no runc: the OCI config vmrun hands runc, and runc's
// messages.
import t from 'tap';

import { bundleConfig } from '../../src/container/bundle';
import { runcMessage } from '../../src/container/runc';

const base = { root: '/r', readOnlyRoot: false, args: ['/proc/self/fd/7', 'container'], binds: [], cgroupsPath: '/vmrun/x' };

t.test('namespaces of their own, no network; the agent first, as root, with docker\'s capabilities', async (t) => {
  const c = bundleConfig({ ...base, hostname: 'h' }) as any;
  t.same(c.linux.namespaces.map((n: { type: string }) => n.type).sort(), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts']);
  t.same(c.process.args, ['/proc/self/fd/7', 'container']);
  t.same(c.process.user, { uid: 0, gid: 0 });
  t.same(c.process.env, [], 'the environment travels in the agent\'s spec');
  t.equal(c.process.terminal, false, 'the agent makes the terminal, as in a VM');
  t.ok(c.process.capabilities.bounding.includes('CAP_SYS_CHROOT') && !c.process.capabilities.bounding.includes('CAP_SYS_ADMIN'));
  t.equal(c.hostname, 'h');
  t.same(c.root, { path: '/r', readonly: false });
});

t.test('the filesystems of a VM\'s container: proc, a tmpfs /dev with pts, shm, mqueue, read-only sysfs and cgroup', async (t) => {
  const c = bundleConfig({ ...base, binds: [{ source: '/run/x/hosts', destination: '/etc/hosts', readOnly: true }] }) as any;
  const by = Object.fromEntries(c.mounts.map((m: { destination: string }) => [m.destination, m]));
  t.same(Object.keys(by), ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/etc/hosts']);
  t.ok(by['/sys'].options.includes('ro'));
  t.ok(by['/sys/fs/cgroup'].options.includes('ro'), 'cgroups read-only, as docker mounts them');
  t.ok(by['/dev/pts'].options.includes('newinstance'));
  t.same(by['/etc/hosts'], { destination: '/etc/hosts', type: 'bind', source: '/run/x/hosts', options: ['rbind', 'rprivate', 'ro'] });
});

t.test('limits: memory without swap past it, CPUs as a CFS quota; none unless asked', async (t) => {
  const c = bundleConfig({ ...base, limits: { memoryBytes: 64 << 20, cpus: 1.5 } }) as any;
  t.same(c.linux.resources.memory, { limit: 64 << 20, swap: 64 << 20 });
  t.same(c.linux.resources.cpu, { quota: 150_000, period: 100_000 });
  const none = bundleConfig(base) as any;
  t.notOk(none.linux.resources.memory);
  t.notOk(none.linux.resources.cpu);
  t.same(none.linux.resources.devices, [{ allow: false, access: 'rwm' }], 'runc adds its standard devices');
});

t.test('runc\'s message is its last logrus msg, unquoted, else its last line', async (t) => {
  t.equal(runcMessage('time="2024" level=error msg="container with id exists: x"\n'), 'container with id exists: x');
  t.equal(runcMessage('a\nsaid \\"hi\\"\n'), 'said \\"hi\\"');
  t.equal(runcMessage('time="t" level=error msg="say \\"hi\\""'), 'say "hi"');
  t.equal(runcMessage(''), '');
});
