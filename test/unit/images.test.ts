import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';

import { agentCachePath } from '../../src/guest/agent';
import { kernelCachePath } from '../../src/guest/kernel';

const root = path.join(__dirname, '..', '..');

function tempCache(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-cache-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the kernel cache key follows the config', async (t) => {
  const cache = tempCache(t);
  const env = { ...process.env, VMRUN_CACHE_DIR: cache };
  const dir = execFileSync('bash', ['images/kernel/build.sh', '--path'], { cwd: root, env, encoding: 'utf8' }).trim();
  t.match(dir, new RegExp(`^${cache}/kernel/6\\.1\\.[0-9.-]+-[0-9a-f]{16}$`), 'keyed by source version and hash');
  t.notOk(fs.existsSync(dir), '--path builds nothing');

  // The same script beside another config gets another key.
  const copy = path.join(cache, 'kernel-copy');
  fs.mkdirSync(copy);
  fs.copyFileSync(path.join(root, 'images/kernel/build.sh'), path.join(copy, 'build.sh'));
  fs.writeFileSync(path.join(copy, 'microvm.config'), fs.readFileSync(path.join(root, 'images/kernel/microvm.config'), 'utf8') + 'CONFIG_IKCONFIG=y\n');
  const other = execFileSync('bash', [path.join(copy, 'build.sh'), '--path'], { env, encoding: 'utf8' }).trim();
  t.not(other, dir);
});

t.test('vmrun finds cached guest artefacts where their build scripts put them, without running them', async (t) => {
  const cache = tempCache(t);
  const env = { ...process.env, VMRUN_CACHE_DIR: cache };
  const script = (name: string) => execFileSync('bash', [`images/${name}/build.sh`, '--path'], { cwd: root, env, encoding: 'utf8' }).trim();
  const saved = process.env.VMRUN_CACHE_DIR;
  process.env.VMRUN_CACHE_DIR = cache;
  t.teardown(() => {
    if (saved === undefined) delete process.env.VMRUN_CACHE_DIR;
    else process.env.VMRUN_CACHE_DIR = saved;
  });
  t.equal(kernelCachePath(), script('kernel'), 'the kernel: same source version and key');
  t.equal(`${agentCachePath()}.cpio`, script('agent'), 'the agent: same key');
});

t.test('the probe initramfs holds init, busybox and /dev/console, and is cached', async (t) => {
  const env = { ...process.env, VMRUN_CACHE_DIR: tempCache(t) };
  const image = execFileSync('bash', ['images/probe/build.sh'], { cwd: root, env, encoding: 'utf8' }).trim();
  const listing = execFileSync('sh', ['-c', `zcat '${image}' | cpio -t -v --quiet`], { encoding: 'utf8' });
  t.match(listing, /^-rwxr-xr-x .* init$/m);
  t.match(listing, /^-rwxr-xr-x .* bin\/busybox$/m);
  t.match(listing, /^crw------- .* 5, +1 .* dev\/console$/m);
  const again = execFileSync('bash', ['images/probe/build.sh'], { cwd: root, env, encoding: 'utf8' }).trim();
  t.equal(again, image, 'a second build returns the cached image');
});
