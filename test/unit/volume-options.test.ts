import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { UsageError } from '../../src/errors';
import { parseMount, parseTmpfs, parseVolume, parseVolumeFlags, shareTag, withRealSources } from '../../src/volumes/options';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-volopts-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
fs.mkdirSync(path.join(dir, 'src'));
fs.writeFileSync(path.join(dir, 'file.conf'), 'x');

t.test("-v takes docker's forms", async (t) => {
  t.same(parseVolume(`${dir}/src:/data`), { kind: 'bind', source: `${dir}/src`, target: '/data', readOnly: false });
  t.same(parseVolume(`${dir}/src:/data/:ro`), { kind: 'bind', source: `${dir}/src`, target: '/data', readOnly: true }, 'ro, the target normalised');
  t.same(parseVolume('./src:/data:rw', dir), { kind: 'bind', source: `${dir}/src`, target: '/data', readOnly: false }, 'relative to the working directory');
  t.same(parseVolume(`${dir}/src:/data:ro,Z`), { kind: 'bind', source: `${dir}/src`, target: '/data', readOnly: true }, "docker's no-op modes beside ro");
  t.same(parseVolume(`${dir}/src:/data:cached`), { kind: 'bind', source: `${dir}/src`, target: '/data', readOnly: false });
  t.same(parseVolume(`${dir}/file.conf:/etc/app.conf`), { kind: 'bind', source: `${dir}/file.conf`, target: '/etc/app.conf', readOnly: false }, 'a single file');
});

t.test('-v refuses what cannot be bound, naming the problem', async (t) => {
  const bad: [string, RegExp][] = [
    ['/nope-vmrun-test:/data', /bind source path does not exist: \/nope-vmrun-test/],
    [`${dir}/src`, /invalid volume specification/],
    [`${dir}/src:/a:ro:x`, /invalid volume specification/],
    [`${dir}/src:/data:x`, /invalid volume mode "x"/],
    [`${dir}/src:/data:ro,rw`, /invalid volume mode "ro,rw"/],
    [`${dir}/src:/data:shared`, /invalid volume mode "shared"/],
    ['name:/data', /named volumes are not supported/],
    [`${dir}/src:data`, /must be an absolute path/],
    [`${dir}/src:/`, /cannot replace the root/],
    [`${dir}/src:/a/..`, /cannot replace the root/],
    ['/dev/null:/null', /only directories and regular files/],
  ];
  for (const [spec, why] of bad) t.throws(() => parseVolume(spec), Object.assign(new UsageError('x'), { message: why }), spec);
});

t.test('--mount: bind and tmpfs, with docker\'s aliases', async (t) => {
  t.same(parseMount(`type=bind,src=${dir}/src,dst=/d,readonly`), { kind: 'bind', source: `${dir}/src`, target: '/d', readOnly: true });
  t.same(parseMount(`type=bind,source=${dir}/src,target=/d,readonly=false`), { kind: 'bind', source: `${dir}/src`, target: '/d', readOnly: false });
  t.same(parseMount('type=tmpfs,destination=/t,tmpfs-size=1048576,tmpfs-mode=1770'), { kind: 'tmpfs', target: '/t', options: ['noexec', 'nosuid', 'nodev', 'size=1048576', 'mode=1770'] });
  t.throws(() => parseMount('type=volume,target=/d'), { message: /type=volume is not supported/ });
  t.throws(() => parseMount('target=/d'), { message: /type=volume is not supported/ }, 'docker\'s default type is a volume');
  t.throws(() => parseMount(`type=bind,source=${dir}/src`), { message: /target is required/ });
  t.throws(() => parseMount(`type=bind,source=${dir}/src,target=/d,target=/e`), { message: /given twice/ });
  t.throws(() => parseMount(`type=bind,source=${dir}/src,target=/d,colour=red`), { message: /unknown field colour/ });
  t.throws(() => parseMount(`type=bind,source=${dir}/src,target=/d,bind-propagation=shared`), { message: /bind-propagation=shared is not supported/ });
  t.throws(() => parseMount(`type=bind,source=${dir}/src,target=/d,readonly=maybe`), { message: /readonly takes true or false/ });
});

t.test('--tmpfs: docker\'s defaults first, then the user\'s words', async (t) => {
  t.same(parseTmpfs('/run'), { kind: 'tmpfs', target: '/run', options: ['noexec', 'nosuid', 'nodev'] });
  t.same(parseTmpfs('/run:exec,size=64m,uid=1000'), { kind: 'tmpfs', target: '/run', options: ['noexec', 'nosuid', 'nodev', 'exec', 'size=64m', 'uid=1000'] });
  for (const bad of ['/run:size=lots', '/run:bind', '/run:size=1m;rm', 'run', '/run:,']) t.throws(() => parseTmpfs(bad), UsageError, bad);
});

t.test('several volumes: one target each, parents first, at most 8 binds', async (t) => {
  const volumes = parseVolumeFlags({ volume: [`${dir}/src:/a/b/c`, `${dir}/src:/a:ro`], tmpfs: ['/a/b'] });
  t.same(volumes.map((v) => v.target), ['/a', '/a/b', '/a/b/c'], 'by depth');
  t.throws(() => parseVolumeFlags({ volume: [`${dir}/src:/a`], tmpfs: ['/a/'] }), { message: /duplicate mount point: \/a/ });
  t.throws(() => parseVolumeFlags({ volume: Array.from({ length: 9 }, (_, i) => `${dir}/src:/v${i}`) }), { message: /at most 8/ });
  t.equal(shareTag(3), 'vol3');
});

t.test('sources are resolved when the run starts, symlinks followed', async (t) => {
  fs.symlinkSync(path.join(dir, 'src'), path.join(dir, 'link'));
  const [v] = withRealSources(parseVolumeFlags({ volume: [`${dir}/link:/data`] }));
  t.same(v, { kind: 'bind', source: fs.realpathSync(path.join(dir, 'src')), target: '/data', readOnly: false });
  fs.rmSync(path.join(dir, 'link'));
  fs.symlinkSync(path.join(dir, 'gone'), path.join(dir, 'link'));
  t.throws(() => withRealSources([{ kind: 'bind', source: `${dir}/link`, target: '/d', readOnly: false }]), { message: /does not exist/ });
});
