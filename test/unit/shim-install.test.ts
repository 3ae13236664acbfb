// `vmrun shim install` and the doctor's check of it (src/shim/install.ts): the launcher it writes
// runs this vmrun's shim, which without containerd's flags says so and exits 1.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { checkShim, configLines, installShim, SHIM_BINARY } from '../../src/shim/install';

t.test('the launcher runs the shim, and the doctor finds it on PATH', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-shim-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const installed = installShim(dir);
  t.equal(installed, path.join(dir, SHIM_BINARY));
  t.equal(fs.statSync(installed).mode & 0o777, 0o755, 'executable');
  t.same(fs.readdirSync(dir), [SHIM_BINARY], 'no temporary file left');
  const r = spawnSync(installed, [], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(r.stderr, /^containerd-shim-vmrun-v2: it is run by containerd: it needs -namespace, -address and -id/);
  const path0 = process.env.PATH;
  t.teardown(() => void (process.env.PATH = path0));
  process.env.PATH = `${dir}:${path0}`;
  t.match(checkShim(), new RegExp(`^${installed}, for containerd's runtime io\\.containerd\\.vmrun\\.v2$`));
  fs.writeFileSync(installed, '#!/bin/sh\nexec true\n');
  t.throws(() => checkShim(), /is not this vmrun's shim/, 'another program of that name is not taken for it');
  t.match(configLines(), /runtime_type = "io\.containerd\.vmrun\.v2"/);
  t.match(configLines(), /handler: vmrun/);
});

t.test('a directory that is not there, or not writable, is refused in one line with the fix', async (t) => {
  t.throws(() => installShim('/nonexistent-dir'), /^cannot install the shim in \/nonexistent-dir: no such directory \(create it, or give --dir/);
  t.throws(() => installShim('/proc'), /\(run as root, or give --dir a writable directory/);
});
