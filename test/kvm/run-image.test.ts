// Images run in microVMs as `docker run` runs them: the process, its streams, its exit code, and
// the layers unpacked by the guest exactly, however hostile they are.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';

import t from 'tap';

import { AgentError, ImageError } from '../../src/errors';
import type { Image } from '../../src/image/layout';
import { layerDiskPath } from '../../src/vm/layer-disks';
import { processResources } from '../helpers/guest';
import { run, testImage } from '../helpers/run';

const sh = (script: string) => ({ command: ['sh', '-c', script] });
/** Whether layer `index` (from 0) of `image` is in the cache. */
const cached = (image: Image, index: number) => fs.existsSync(layerDiskPath(image, index));

t.test('the image default command runs; a first run unpacks, a second reuses the disk and is faster', async (t) => {
  const image = await testImage('busybox', 'latest', true);
  const first = await run(image);
  t.equal(first.code, 0, first.error?.message ?? '');
  t.equal(first.stdout.toString(), 'hello from busybox\n');
  t.ok(first.result?.layers?.unpack, 'the first run unpacked the image');
  t.ok(image.layers.every((_, i) => cached(image, i)), 'and cached its layers');
  const second = await run(image);
  t.equal(second.stdout.toString(), 'hello from busybox\n');
  t.notOk(second.result?.layers?.unpack, 'the second run used the cached layers');
  t.ok(second.ms < first.ms, `second run ${second.ms.toFixed(0)} ms < first ${first.ms.toFixed(0)} ms`);
  t.comment(`host milestones of the second run (ms): ${JSON.stringify(second.result?.host)}; guest (ms of boot): ${JSON.stringify(second.result?.guest)}`);
});

t.test('stdout and stderr stay apart', async (t) => {
  const o = await run(await testImage('busybox', 'latest'), sh('echo to-out; echo to-err >&2; echo more-out'));
  t.equal(o.stdout.toString(), 'to-out\nmore-out\n');
  t.equal(o.stderr, 'to-err\n');
});

t.test('exit codes pass through: 0, 7, 137 for SIGKILL, 127 and 126 with docker messages', async (t) => {
  const image = await testImage('busybox', 'latest');
  t.equal((await run(image, sh('exit 0'))).code, 0);
  t.equal((await run(image, { command: ['exit-with', '7'] })).code, 7);
  t.equal((await run(image, sh('kill -9 $$'))).code, 137);
  const notFound = await run(image, { command: ['no-such-command'] });
  t.equal(notFound.code, 127);
  t.type(notFound.error, AgentError);
  t.match(notFound.error?.message, /exec: "no-such-command": executable file not found in \$PATH/);
  const notExec = await run(image, { command: ['/bin/not-exec'] });
  t.equal(notExec.code, 126);
  t.match(notExec.error?.message, /permission denied/);
});

t.test('1 MiB of random bytes through cat arrives identical', async (t) => {
  const data = randomBytes(1 << 20);
  const o = await run(await testImage('busybox', 'latest'), { command: ['cat'], stdin: data });
  t.equal(o.code, 0);
  t.equal(o.stdout.length, data.length);
  t.ok(o.stdout.equals(data), 'byte for byte');
});

t.test('environment: image values, user values winning, PATH, HOSTNAME and HOME', async (t) => {
  const o = await run(await testImage('busybox', 'latest'), { command: ['env'], env: ['FOO=from-user', 'BAR=1'], hostname: 'vmhost' });
  const env = o.stdout.toString().trim().split('\n').sort();
  t.same(env, ['BAR=1', 'FOO=from-user', 'HOME=/root', 'HOSTNAME=vmhost', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin'].sort());
  t.equal((await run(await testImage('busybox', 'latest'), { command: ['hostname'], hostname: 'vmhost' })).stdout.toString(), 'vmhost\n');
});

t.test('users and groups resolve in the image', async (t) => {
  const image = await testImage('busybox', 'latest');
  const id = async (user?: string) => (await run(image, { command: ['id'], user })).stdout.toString().trim();
  t.equal(await id(), 'uid=0(root) gid=0(root) groups=0(root)');
  // The kernel keeps supplementary groups sorted; an explicit group means no supplementary ones (runc).
  t.equal(await id('app'), 'uid=1000(app) gid=1000(app) groups=29(audio),50(staff),1000(app)');
  t.equal(await id('1000:50'), 'uid=1000(app) gid=50(staff) groups=50(staff)');
  t.equal(await id('4242'), 'uid=4242 gid=0(root) groups=0(root)');
  const home = await run(image, { command: ['sh', '-c', 'echo $HOME'], user: 'app' });
  t.equal(home.stdout.toString(), '/home/app\n');
  const unknown = await run(image, { command: ['id'], user: 'nosuchuser' });
  t.not(unknown.code, 0);
  t.match(unknown.error?.message, /nosuchuser/);
});

t.test('entrypoint, cmd and workdir follow docker', async (t) => {
  const image = await testImage('busybox', 'entrypoint');
  t.equal((await run(image)).stdout.toString(), 'ep default-arg\n', 'Entrypoint ++ Cmd');
  t.equal((await run(image, { command: ['mine'] })).stdout.toString(), 'ep mine\n', 'arguments replace Cmd');
  const pwd = await run(image, { entrypoint: 'pwd' });
  t.equal(pwd.stdout.toString(), '/work/dir\n', '--entrypoint clears Cmd; the missing WorkingDir was created');
  const who = await run(image, { entrypoint: 'id', command: ['-un'] });
  t.equal(who.stdout.toString(), 'app\n', 'the image User applies');
  t.equal((await run(image, { entrypoint: 'pwd', workdir: '/tmp' })).stdout.toString(), '/tmp\n');
});

t.test('signals reach the process', async (t) => {
  const image = await testImage('busybox', 'latest');
  const script = 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.1; done';
  let sent = false;
  const o = await run(image, sh(script), (text, control) => {
    if (!sent && text.includes('ready')) {
      sent = true;
      control.signal('SIGTERM');
    }
  });
  t.equal(o.stdout.toString(), 'ready\ngot-term\n');
  t.equal(o.code, 3);
  let killed = false;
  const k = await run(image, sh('echo ready; sleep 1000'), (text, control) => {
    if (!killed && text.includes('ready')) {
      killed = true;
      control.signal('SIGKILL');
    }
  });
  t.equal(k.code, 137);
});

t.test('a TTY run gets a terminal of the asked size; --read-only keeps the root read-only', async (t) => {
  const image = await testImage('busybox', 'latest');
  const tty = await run(image, { ...sh('tty; stty size'), tty: { rows: 33, cols: 101 } });
  t.equal(tty.stdout.toString().replace(/\r/g, ''), '/dev/pts/0\n33 101\n');
  const ro = await run(image, { ...sh('touch /new-file 2>&1; echo status=$?'), readOnly: true });
  t.match(ro.stdout.toString(), /Read-only file system[\s\S]*status=1/);
  const rw = await run(image, sh('touch /new-file && echo made'));
  t.equal(rw.stdout.toString(), 'made\n', 'the writable layer takes writes');
  const after = await run(image, sh('ls /new-file 2>/dev/null || echo gone'));
  t.equal(after.stdout.toString(), 'gone\n', 'and dies with its VM: the cached disk is untouched');
});

// What the layered image must look like once unpacked, whatever the layers' compression.
const LAYERED_CHECK = [
  'cat /data/keep',
  'ls -a /data | tr "\\n" " "; echo',
  'ls /opq | tr "\\n" " "; echo',
  'ls /opq2 | tr "\\n" " "; echo',
  // Inode numbers differ between disks unpacked apart: whether the two names share one is what counts.
  'stat -c "%h %a %Y" /lower/target',
  '[ /lower/target -ef /hardlink ] && stat -c "%h %a %Y" /hardlink',
  'stat -c "%a %u:%g" /setuid-file /owned-file',
  'stat -c "%F %t,%T" /fifo /dev-null-copy',
  'readlink /link-abs; readlink /link-rel; cat /link-abs /link-rel',
  'stat -c %Y /mtime-dir',
  'cat /newdir/file >/dev/null && echo newdir-ok',
].join('; ');

t.test('layers unpack exactly: whiteouts, opaque dirs, hardlinks, symlinks, modes, owners, devices, mtimes', async (t) => {
  const listings: string[] = [];
  for (const name of ['layered', 'layered-zstd', 'layered-plain']) {
    const image = await testImage(name, undefined, true);
    t.equal(image.layers[1].compression, { layered: 'gzip', 'layered-zstd': 'zstd', 'layered-plain': 'none' }[name]);
    const o = await run(image, sh(LAYERED_CHECK));
    t.equal(o.code, 0, `${name}: ${o.error?.message ?? o.stderr}`);
    listings.push(o.stdout.toString());
  }
  const lines = listings[0].split('\n');
  t.equal(lines[0], 'keep');
  t.equal(lines[1].trim(), '. .. keep', 'whiteouts removed a file and a directory');
  t.equal(lines[2].trim(), 'upper-1', 'the opaque marker hid the lower files, not the upper one before it');
  t.equal(lines[3].trim(), 'new', 'an opaque marker first in its layer');
  t.equal(lines[4], '2 640 1000000000', 'link count, mode and mtime');
  t.equal(lines[5], lines[4], 'the hardlink shares the lower layer file inode');
  t.equal(lines[6], '4755 0:0', 'setuid bit kept');
  t.equal(lines[7], '644 1234:5678', 'numeric owner kept');
  t.equal(lines[8], 'fifo 0,0');
  t.equal(lines[9], 'character special file 1,3');
  t.same(lines.slice(10, 14), ['/data/keep', 'data/keep', 'keep', 'keep']);
  t.equal(lines[14], '1500000000', 'directory mtime kept after its contents were written');
  t.equal(lines[15], 'newdir-ok');
  t.equal(listings[1], listings[0], 'zstd layers unpack the same');
  t.equal(listings[2], listings[0], 'uncompressed layers unpack the same');
});

t.test('xattrs survive unpacking', async (t) => {
  // busybox has no getfattr: read the attribute from /proc-free ground truth, the disk itself.
  const image = await testImage('layered');
  const o = await run(image, sh('cat /xattr-file >/dev/null && echo present'));
  t.equal(o.stdout.toString(), 'present\n');
  const { execFileSync } = await import('node:child_process');
  // The layer that brought the file holds it in /diff; the others do not have it.
  const listings = image.layers.map((_, i) => execFileSync('debugfs', ['-R', 'ea_list /diff/xattr-file', layerDiskPath(image, i)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  t.ok(listings.some((listing) => /user\.vmrun.*hello/.test(listing)), listings.join(' | '));
});

t.test('hostile layers: traversal and hardlink escapes are refused, symlinks resolve inside the root', async (t) => {
  for (const name of ['hostile-traversal', 'hostile-hardlink']) {
    const image = await testImage(name, undefined, true);
    const o = await run(image, sh('echo ran'));
    t.equal(o.code, 125, `${name} fails`);
    t.type(o.error, AgentError);
    t.match(o.error?.message, /layer 2/, `${name}: the message names the layer: ${o.error?.message}`);
    t.notOk(cached(image, 1), `${name}: the layer is not cached`);
  }
  const image = await testImage('hostile-symlink', undefined, true);
  const o = await run(image, sh('ls /planted-through-abs /planted-through-rel'));
  t.equal(o.code, 0, o.error?.message ?? o.stderr);
  t.equal(o.stdout.toString(), '/planted-through-abs\n/planted-through-rel\n', 'files written through symlinks landed inside the root');
});

t.test('corrupt layers fail clearly and leave no cached disk', async (t) => {
  const corrupt = await testImage('corrupt-blob', 'latest', true);
  const o = await run(corrupt, sh('true'));
  t.equal(o.code, 125);
  t.type(o.error, ImageError);
  t.match(o.error?.message, /layer 1 is corrupt/);
  t.notOk(cached(corrupt, 0));
  const badDiff = await testImage('bad-diffid', 'latest', true);
  const b = await run(badDiff, sh('true'));
  t.equal(b.code, 125);
  t.type(b.error, AgentError);
  t.match(b.error?.message, /layer 1.*diff_id|diff_id.*layer 1/i);
  t.notOk(cached(badDiff, 0));
});

t.test('two VMs of one image at once, the image unpacked once for both', async (t) => {
  const image = await testImage('busybox', 'latest', true);
  const [a, b] = await Promise.all([run(image, sh('echo a')), run(image, sh('echo b'))]);
  t.equal(a.stdout.toString(), 'a\n');
  t.equal(b.stdout.toString(), 'b\n');
  t.equal([a, b].filter((o) => o.result?.layers?.unpack).length, 1, 'exactly one of them unpacked');
  const [c, d] = await Promise.all([run(image, sh('sleep 1; echo c')), run(image, sh('sleep 1; echo d'))]);
  t.same([c.stdout.toString(), d.stdout.toString()], ['c\n', 'd\n'], 'two VMs share the cached disk at once');
});

t.test('runs leave nothing behind: fds, threads and socket directories return to where they were', async (t) => {
  const image = await testImage('busybox', 'latest');
  await run(image, sh('true'));  // warm-up: the addon's and libuv's own threads start once
  const tmpBefore = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('vmrun-')).length;
  const before = processResources();
  for (let i = 0; i < 5; i++) t.equal((await run(image, sh('echo x; exit 3'))).code, 3);
  t.equal((await run(image, { command: ['no-such-command'] })).code, 127);
  t.same(processResources(), before, 'same fds and threads');
  t.equal(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('vmrun-')).length, tmpBefore, 'no socket directories left');
});
