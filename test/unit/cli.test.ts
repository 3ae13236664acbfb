// The command line's failures: each is one line `vmrun: ...` on stderr and docker's exit code,
// and leaves no mount, temporary file or container behind. Runs on this host (no KVM needed);
// the container cases need root and runc.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import t, { type Test } from 'tap';

import { leftovers, ociRef, passtProcesses, until, virtiofsdProcesses, vmrun } from '../helpers/cli';
import { layoutOf } from '../helpers/images';
import { pushLayout, startRegistry } from '../helpers/registry';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-cli-test-'));
// Image stores live apart from `tmp`, where anything left is a leak.
const stores = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-cli-stores-'));
t.teardown(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(stores, { recursive: true, force: true });
});
const env = { ...process.env, TMPDIR: tmp };
const canContainer = process.getuid?.() === 0 && (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, 'runc')));
const ONE_LINE = /^vmrun: [^\n]+\n$/;

let runs = 0;
/** A fresh runc name for each run, so that a container left behind is found. */
const name = () => `vmrun-cli-test-${process.pid}-${++runs}`;

async function fails(t: Test, args: string[], code: number, message: RegExp, options: { env?: NodeJS.ProcessEnv; names?: string[] } = {}) {
  const o = await vmrun(args, { env: options.env ?? env });
  t.equal(o.code, code, `exit ${code}`);
  t.match(o.stderr, ONE_LINE, 'one line on stderr');
  t.match(o.stderr, message);
  t.equal(o.stdout.length, 0, 'nothing on stdout');
  t.same(leftovers(tmp, options.names), [], 'nothing left behind');
}

t.test('an unknown flag is 125 with commander\'s message', (t) => fails(t, ['--bogus', 'x'], 125, /unknown option '--bogus'/));
t.test('an unknown runtime is 125', (t) => fails(t, ['--runtime', 'bogus', 'x'], 125, /'bogus' is invalid. Allowed choices are vm, container/));
t.test('a malformed -m is 125', async (t) => fails(t, ['-m', '12x', await ociRef('busybox')], 125, /invalid size "12x"/));
t.test('a malformed --cpus and --timeout are 125', async (t) => {
  await fails(t, ['--cpus', '-1', await ociRef('busybox')], 125, /invalid --cpus "-1"/);
  await fails(t, ['--timeout', 'soon', await ociRef('busybox')], 125, /invalid --timeout "soon"/);
});
t.test('an image that is not there is 125', (t) => fails(t, ['oci:/nonexistent'], 125, /\/nonexistent is not an OCI image layout/));
t.test('a registry image not in the store with --pull never is 125', (t) =>
  fails(t, ['--pull', 'never', 'busybox'], 125, /image busybox not found locally: run vmrun pull busybox/, { env: { ...env, VMRUN_STORE_DIR: path.join(stores, 'empty') } }));

t.test('an image from a registry is pulled on first use, then runs and is listed', { skip: !canContainer && 'needs root and runc' }, async (t) => {
  const registry = await startRegistry();
  t.teardown(() => registry.stop());
  await pushLayout(registry, await layoutOf('busybox'), 'latest', 'tools/busybox:1.0');
  const storeEnv = { ...env, VMRUN_STORE_DIR: path.join(stores, 'pulled'), DOCKER_CONFIG: path.join(stores, 'docker') };
  const ref = `${registry.host}/tools/busybox:1.0`;
  const o = await vmrun(['--runtime', 'container', ref, 'echo', 'from-the-registry'], { env: storeEnv });
  t.equal(o.code, 0, o.stderr);
  t.equal(o.stdout.toString(), 'from-the-registry\n');
  const images = await vmrun(['images', '--format', 'json'], { env: storeEnv });
  t.match(JSON.parse(images.stdout.toString().trim()), { repository: `${registry.host}/tools/busybox`, tag: '1.0' });
  const offline = await vmrun(['--pull', 'never', '--runtime', 'container', ref, 'true'], { env: storeEnv });
  t.equal(offline.code, 0, 'the second run needs no registry');
});
t.test('another platform is 125', async (t) => fails(t, ['--platform', 'linux/arm64', await ociRef('busybox')], 125, /platform linux\/arm64 cannot run here/));
t.test('without IMAGE: 125', (t) => fails(t, [], 125, /missing required argument 'image'/));

t.test('--kernel that is not a kernel: 125 and one line (KVM is checked first where there is none)', async (t) => {
  await fails(t, ['--kernel', '/etc/passwd', await ociRef('busybox')], 125, /./);
});

t.test("what a run's network cannot be gets docker's one-line error and 125 before anything starts, in both runtimes", async (t) => {
  const image = await ociRef('busybox');
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '0.0.0.0', resolve));
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as net.AddressInfo).port;
  for (const runtime of canContainer ? ['vm', 'container'] : ['vm']) {
    const r = ['--runtime', runtime];
    await fails(t, [...r, '-p', `${port}:80`, image, 'true'], 125, new RegExp(`^vmrun: port ${port}/tcp on 0\\.0\\.0\\.0 is already in use: publish another host port \\(-p OTHER:80\\)`));
    await fails(t, [...r, '-p', '192.0.2.99:8080:80', image, 'true'], 125, /^vmrun: 192\.0\.2\.99 is not an address of this host/);
    await fails(t, [...r, '-p', '80:99999', image, 'true'], 125, /^vmrun: invalid -p "80:99999": container port "99999" is not a port/);
    await fails(t, [...r, '--network', 'host', image, 'true'], 125, /^vmrun: network host not found/);
    await fails(t, [...r, '--add-host', 'nocolon', image, 'true'], 125, /^vmrun: invalid --add-host "nocolon"/);
  }
  t.same(passtProcesses(), [], 'no passt or pasta left');
});

t.test("what a run's volumes cannot be gets a one-line error and 125 before anything starts, in both runtimes", async (t) => {
  const image = await ociRef('busybox');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-cli-vol-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const runtime of canContainer ? ['vm', 'container'] : ['vm']) {
    const r = ['--runtime', runtime];
    await fails(t, [...r, '-v', `${dir}/missing:/data`, image, 'true'], 125, /^vmrun: invalid mount config for type "bind": bind source path does not exist: .*\/missing \(create it first, or fix the path\)\n$/);
    await fails(t, [...r, '-v', 'named:/data', image, 'true'], 125, /^vmrun: named volumes are not supported/);
    await fails(t, [...r, '-v', `${dir}:relative`, image, 'true'], 125, /^vmrun: invalid mount target "relative": it must be an absolute path/);
    await fails(t, [...r, '-v', `${dir}:/data:rx`, image, 'true'], 125, /^vmrun: invalid volume mode "rx"/);
    await fails(t, [...r, '-v', `${dir}:/data`, '--tmpfs', '/data', image, 'true'], 125, /^vmrun: duplicate mount point: \/data/);
    await fails(t, [...r, '--mount', 'type=volume,target=/data', image, 'true'], 125, /^vmrun: --mount type=volume is not supported/);
    await fails(t, [...r, '--mount', `type=bind,target=/data`, image, 'true'], 125, /^vmrun: invalid --mount .*source is required/);
    await fails(t, [...r, '--tmpfs', '/data:size=lots', image, 'true'], 125, /^vmrun: invalid tmpfs option "size=lots"/);
  }
  t.same(virtiofsdProcesses(), [], 'no virtiofsd left');
});

t.test('a VM that cannot start leaves no virtiofsd and no share behind', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-cli-vol-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // The kernel is no kernel, so the run fails after its virtiofsd started (or, on a host whose
  // KVM cannot run a guest, at the unpack VM); `fails` finds any share directory left in TMPDIR.
  await fails(t, ['--runtime', 'vm', '--network', 'none', '--kernel', '/etc/passwd', '-v', `${dir}:/data`, await ociRef('busybox'), 'true'], 125, /./);
  t.same(virtiofsdProcesses(), [], 'no virtiofsd left');
});

t.test('--help and --version exit 0', async (t) => {
  const help = await vmrun(['--help'], { env });
  t.equal(help.code, 0);
  t.match(help.stdout.toString(), /Usage: vmrun \[run\] \[OPTIONS\] IMAGE/);
  const runHelp = await vmrun(['run', '--help'], { env });
  t.match(runHelp.stdout.toString(), /--runtime <runtime>/);
  const version = await vmrun(['--version'], { env });
  t.equal(version.code, 0);
  t.match(version.stdout.toString(), /^\d+\.\d+\.\d+\n$/);
});

t.test('vmrun version names node, the kernel, the agent and runc', async (t) => {
  const o = await vmrun(['version'], { env });
  t.equal(o.code, 0, o.stderr);
  t.match(o.stdout.toString(), /^vmrun: .*\nnode: v\d+.*\nkernel: .*\nagent: agent-[0-9a-f]{16}\.cpio\nrunc: .*\n$/);
});

t.test('container runtime', { skip: !canContainer && 'needs root and runc' }, async (t) => {
  const image = await ociRef('busybox');

  t.test('a command missing from the image is 127 with runc\'s message', async (t) => {
    const n = name();
    await fails(t, ['--runtime', 'container', '--name', n, image, 'no-such-command'], 127, /^vmrun: exec: "no-such-command": executable file not found in \$PATH\n$/, { names: [n] });
  });

  t.test('without runc on PATH: 125 and how to get it', async (t) => {
    await fails(t, ['--runtime', 'container', image, 'true'], 125, /runc is not installed or not on PATH: apt-get install runc/, { env: { ...env, PATH: '/nonexistent' } });
  });

  t.test('an unknown user is 125 with runc\'s message', async (t) => {
    const n = name();
    await fails(t, ['--runtime', 'container', '--name', n, '-u', 'nosuchuser', image, 'id'], 125, /unable to find user nosuchuser: no matching entries in passwd file/, { names: [n] });
  });

  t.test('a run that works leaves nothing behind either', async (t) => {
    const n = name();
    const o = await vmrun(['--runtime', 'container', '--name', n, '-m', '64m', '--cpus', '0.5', image, 'sh', '-c', 'echo ok; exit 3'], { env });
    t.equal(o.code, 3, o.stderr);
    t.equal(o.stdout.toString(), 'ok\n');
    t.equal(o.stderr, '');
    t.same(leftovers(tmp, [n]), []);
  });

  t.test('--timeout: 124, and the container is gone', async (t) => {
    const n = name();
    const o = await vmrun(['--runtime', 'container', '--name', n, '--timeout', '1', image, 'sleep', '100'], { env });
    t.equal(o.code, 124);
    t.same(leftovers(tmp, [n]), []);
  });

  t.test('two runs of an image not yet unpacked: it is unpacked once, for both', async (t) => {
    const cache = fs.mkdtempSync(path.join(tmp, 'cache-'));
    t.teardown(() => fs.rmSync(cache, { recursive: true, force: true }));
    const cacheEnv = { ...env, VMRUN_CACHE_DIR: cache };
    const runs = await Promise.all(['a', 'b'].map((x) => vmrun(['--runtime', 'container', '--log-level', 'info', image, 'echo', x], { env: cacheEnv })));
    t.same(runs.map((o) => o.stdout.toString()), ['a\n', 'b\n']);
    t.equal(runs.filter((o) => o.stderr.includes('image unpacked')).length, 1, 'exactly one of them unpacked');
    t.same(fs.readdirSync(path.join(cache, 'layer-dirs')).filter((f) => !f.endsWith('.lock')).length, 1, 'one directory, no temporary left');
  });

  t.test('two images on one base store the base once; image prune frees the layers no image names', async (t) => {
    const cache = fs.mkdtempSync(path.join(tmp, 'cache-'));
    t.teardown(() => fs.rmSync(cache, { recursive: true, force: true }));
    const cacheEnv = { ...env, VMRUN_CACHE_DIR: cache };
    const dirs = () => fs.readdirSync(path.join(cache, 'layer-dirs')).filter((f) => !f.endsWith('.lock')).sort();
    const loaded = await vmrun(['load', '-q', '--name', 'test/busybox', '-i', await layoutOf('busybox')], { env: cacheEnv });
    t.equal(loaded.code, 0, loaded.stderr);
    const base = await vmrun(['--runtime', 'container', '--log-level', 'info', 'test/busybox:latest', 'echo', 'base'], { env: cacheEnv });
    t.equal(base.stdout.toString(), 'base\n', base.stderr);
    t.equal(dirs().length, 1, 'busybox: one layer');
    // layered is busybox's layer and three more: only those three are unpacked.
    const layered = await vmrun(['--runtime', 'container', '--log-level', 'info', `oci:${await layoutOf('layered')}`, 'true'], { env: cacheEnv });
    t.equal(layered.code, 0, layered.stderr);
    t.match(layered.stderr, /"layers":3[,}][^\n]*image unpacked/, 'three layers unpacked, not four');
    t.equal(dirs().length, 4, 'four layer directories for five layers');
    // While a container of layered runs, its layers are its root: prune leaves them.
    const running = vmrun(['--runtime', 'container', `oci:${await layoutOf('layered')}`, 'sh', '-c', 'echo up; sleep 3'], { env: cacheEnv });
    await until(() => fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.startsWith('overlay ') && l.includes(tmp)), 60_000, 'the container is up');
    const busy = await vmrun(['image', 'prune'], { env: cacheEnv });
    t.equal(busy.code, 0, busy.stderr);
    t.equal(dirs().length, 4, 'a running container\'s layers are not pruned');
    t.equal((await running).stdout.toString(), 'up\n');
    const pruned = await vmrun(['image', 'prune'], { env: cacheEnv });
    t.equal(pruned.code, 0, pruned.stderr);
    t.match(pruned.stdout.toString(), /^Total reclaimed space: [1-9][0-9.]*[kMG]?B\n$/);
    t.equal(dirs().length, 1, 'then only the stored image\'s layer is left');
    const again = await vmrun(['--runtime', 'container', '--log-level', 'info', 'test/busybox:latest', 'echo', 'again'], { env: cacheEnv });
    t.equal(again.stdout.toString(), 'again\n', again.stderr);
    t.notMatch(again.stderr, /image unpacked/, 'the stored image runs without unpacking');
  });

  t.test('an image that claims another\'s diff_ids with blobs of its own is not served its cached root', async (t) => {
    const cache = fs.mkdtempSync(path.join(tmp, 'cache-'));
    t.teardown(() => fs.rmSync(cache, { recursive: true, force: true }));
    const cacheEnv = { ...env, VMRUN_CACHE_DIR: cache };
    const real = await vmrun(['--runtime', 'container', image, 'true'], { env: cacheEnv });
    t.equal(real.code, 0, real.stderr);
    // Keyed by the ChainID alone, this would find busybox's directory and run in it.
    const impostor = await vmrun(['--runtime', 'container', await ociRef('impostor'), 'true'], { env: cacheEnv });
    t.equal(impostor.code, 125);
    t.match(impostor.stderr, /^vmrun: [^\n]*diff_id[^\n]*\n$/, 'its own unpack refuses it, in one line');
    t.equal(fs.readdirSync(path.join(cache, 'layer-dirs')).length, 1, 'only busybox\'s directory is cached');
  });

  t.test('two runs may not share a name', async (t) => {
    const n = name();
    const first = vmrun(['--runtime', 'container', '--name', n, image, 'sleep', '2'], { env });
    await new Promise((r) => setTimeout(r, 700));
    const second = await vmrun(['--runtime', 'container', '--name', n, image, 'true'], { env });
    t.equal(second.code, 125);
    t.equal(second.stderr, `vmrun: a container named ${n} already exists: choose another --name\n`);
    t.equal((await first).code, 0, 'the first run was not disturbed');
    t.same(leftovers(tmp, [n]), []);
  });
});
