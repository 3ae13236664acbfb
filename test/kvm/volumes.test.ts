// Host paths and tmpfs mounts in a run, in both runtimes with the same results: a VM's binds are
// virtio-fs devices served by a virtiofsd each, a container's are runc's bind mounts. Files cross
// both ways with their contents and owners, `:ro` is refused by the host, a single file can be
// bound, and a symlink in the share never leads to the host's files.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { exact, ociRef, virtiofsdProcesses, vmrun } from '../helpers/cli';

const RUNTIMES = ['vm', 'container'] as const;

t.test('binds both ways, read-only, a single file, tmpfs; symlinks stay inside the share', async (t) => {
  const image = await ociRef('busybox');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-volumes-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const rw = path.join(dir, 'rw');
  const ro = path.join(dir, 'ro');
  fs.mkdirSync(rw, { mode: 0o777 });
  fs.chmodSync(rw, 0o777);
  fs.mkdirSync(ro);
  fs.writeFileSync(path.join(ro, 'from-host'), 'read me\n');
  fs.writeFileSync(path.join(dir, 'single.conf'), 'one file\n');
  // A secret of the host's, outside every share, and links to it inside one.
  const secret = path.join(dir, 'secret');
  fs.writeFileSync(secret, 'HOST SECRET\n');
  fs.symlinkSync(secret, path.join(ro, 'abs-link'));
  fs.symlinkSync('../secret', path.join(ro, 'rel-link'));

  const script = [
    'cat /ro/from-host /etc/single.conf',
    // Written as the user the process runs as: the host sees that owner.
    'echo written inside > /data/out',
    'touch /ro/nope 2>&1 | sed "s/.*: //"',
    'cat /ro/abs-link /ro/rel-link 2>&1 | sed "s/.*: //"',
    'grep " /scratch " /proc/mounts | cut -d" " -f3,4 | tr , "\\n" | grep -E "^tmpfs|nosuid|nodev|noexec|size" | tr "\\n" " "; echo',
    // A file the host writes while the process runs shows up.
    'echo ready; while [ ! -e /data/late ]; do sleep 0.1; done; cat /data/late',
  ].join('; ');
  const outputs: string[] = [];
  for (const runtime of RUNTIMES) {
    const run = await vmrun(
      ['--runtime', runtime, '--network', 'none', '-u', '1234:2345', '-v', `${rw}:/data`, '-v', `${ro}:/ro:ro`, '--mount', `type=bind,source=${dir}/single.conf,target=/etc/single.conf,readonly`, '--tmpfs', '/scratch:size=1m', image, 'sh', '-c', script],
      { onStdout: (soFar) => soFar.includes('ready\n') && !fs.existsSync(path.join(rw, 'late')) && fs.writeFileSync(path.join(rw, 'late'), 'late from the host\n') },
    );
    t.equal(run.code, 0, `${runtime}: exit code (stderr: ${run.stderr.trim()})`);
    outputs.push(run.stdout.toString());
    const out = path.join(rw, 'out');
    t.equal(fs.existsSync(out) && fs.readFileSync(out, 'utf8'), 'written inside\n', `${runtime}: the file written inside is on the host`);
    const st = fs.existsSync(out) ? fs.statSync(out) : undefined;
    t.same(st && [st.uid, st.gid], [1234, 2345], `${runtime}: with the process's owner`);
    t.same(fs.readdirSync(ro).sort(), ['abs-link', 'from-host', 'rel-link'], `${runtime}: nothing written through :ro`);
    fs.rmSync(out, { force: true });
    fs.rmSync(path.join(rw, 'late'), { force: true });
  }
  t.match(outputs[0], exact(
    'read me\none file\nRead-only file system\nNo such file or directory\nNo such file or directory\ntmpfs rw nosuid nodev noexec size=1024k \nready\nlate from the host\n',
  ), 'vm: stdout');
  t.equal(outputs[1], outputs[0], 'same stdout');
  t.notOk(outputs.join('').includes('HOST SECRET'), 'the host\'s secret never shows');
  t.same(virtiofsdProcesses(), [], 'no virtiofsd left');
  t.same(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('vmrun-fs-')), [], 'no share directory left');
});
