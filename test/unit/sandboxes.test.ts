// Sandboxes that outlive the CLI (`run -d`) and the commands that reach them, on the container
// runtime (the VM's turn is in test/kvm/sandbox.test.ts): ps, exec, logs, stop, kill, rm, wait,
// cp (and a sandbox that answers cp with a hostile archive), names that two CLIs race for, and a
// supervisor killed outright.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';
import tarStream from 'tar-stream';

import { ociRef, until, vmrun } from '../helpers/cli';

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-sandboxes-'));
const env = { ...process.env, VMRUN_STATE_DIR: stateDir };
t.teardown(() => fs.rmSync(stateDir, { recursive: true, force: true }));
const cli = (args: string[], options: { stdin?: Buffer } = {}) => vmrun(args, { env, ...options });
const ids = () => fs.readdirSync(stateDir).filter((e) => e !== 'names');
const runcContainers = () => execFileSync('runc', ['--root', '/run/vmrun/runc', 'list', '-q'], { encoding: 'utf8' }).split('\n').filter(Boolean);

t.test('run -d, then exec, logs, stop, wait and rm', async (t) => {
  const image = await ociRef('busybox');
  const started = await cli(['run', '-d', '--runtime', 'container', '--network', 'none', '--name', 'svc', '-e', 'FROM_RUN=1', image, 'sh', '-c', 'echo started; trap "echo got-term; exit 5" TERM; while :; do sleep 0.1; done']);
  t.equal(started.code, 0, started.stderr);
  const id = started.stdout.toString().trim();
  t.match(id, /^[0-9a-f]{64}$/, 'the id, as docker prints it');
  t.match((await cli(['ps'])).stdout.toString(), new RegExp(`^SANDBOX ID .*\\n${id.slice(0, 12)} .*Up .* container +svc\\n$`), 'ps lists it as running');

  const exec = await cli(['exec', 'svc', 'sh', '-c', 'echo $FROM_RUN; echo to-err >&2; exit 4']);
  t.same([exec.code, exec.stdout.toString(), exec.stderr], [4, '1\n', 'to-err\n'], "exec: the command's streams and exit code, the sandbox's environment");
  const piped = await cli(['exec', '-i', '-u', '1000', '-w', '/tmp', '-e', 'X=2', id.slice(0, 6), 'sh', '-c', 'cat; echo $X; pwd; id -u'], { stdin: Buffer.from('in\n') });
  t.same([piped.code, piped.stdout.toString()], [0, 'in\n2\n/tmp\n1000\n'], 'exec -i -u -w -e, found by an id prefix');
  const missing = await cli(['exec', 'svc', 'no-such-command']);
  t.same([missing.code, missing.stderr], [127, 'vmrun: exec: "no-such-command": executable file not found in $PATH\n'], "docker's 127");

  t.same([(await cli(['logs', 'svc'])).stdout.toString()], ['started\n'], 'logs');
  const removeRunning = await cli(['rm', 'svc']);
  t.same([removeRunning.code, removeRunning.stderr], [125, 'vmrun: cannot remove running sandbox svc: stop it first (vmrun stop svc) or use rm -f\n']);

  t.equal((await cli(['stop', 'svc'])).code, 0);
  t.match((await cli(['ps', '-a'])).stdout.toString(), /Exited \(5\)/, 'the trap ran: exit 5');
  t.equal((await cli(['wait', 'svc'])).stdout.toString(), '5\n', 'wait prints the exit code');
  t.equal((await cli(['logs', 'svc'])).stdout.toString(), 'started\ngot-term\n');
  const afterStop = await cli(['exec', 'svc', 'true']);
  t.same([afterStop.code, afterStop.stderr], [125, 'vmrun: sandbox svc is not running (exited): start another with vmrun run -d\n']);
  t.equal((await cli(['rm', 'svc'])).code, 0);
  t.same(ids(), [], 'nothing left of it');
  t.notOk(runcContainers().includes(`vmrun-${id.slice(0, 12)}`), 'its container is gone');
  const gone = await cli(['logs', 'svc']);
  t.same([gone.code, gone.stderr], [125, 'vmrun: no such sandbox: svc (vmrun ps -a lists them)\n']);
});

t.test('two CLIs racing for one name: one wins, the other gets one line', async (t) => {
  const image = await ociRef('busybox');
  const args = ['run', '-d', '--runtime', 'container', '--network', 'none', '--name', 'racer', image, 'sleep', '1000'];
  const [a, b] = await Promise.all([cli(args), cli(args)]);
  t.same([a.code, b.code].sort(), [0, 125]);
  t.match((a.code === 0 ? b : a).stderr, /^vmrun: the name "racer" is already in use by sandbox [0-9a-f]{12}: remove it \(vmrun rm racer\) or choose another --name\n$/);
  t.equal(ids().length, 1, 'the loser left nothing');
  const kill = await cli(['kill', 'racer']);
  t.equal(kill.code, 0, kill.stderr);
  t.equal((await cli(['wait', 'racer'])).stdout.toString(), '137\n', 'kill: SIGKILL, 137');
  t.equal((await cli(['rm', 'racer'])).code, 0);
});

t.test('a killed supervisor: ps says Dead, rm -f cleans up; --rm removes a sandbox when it ends', async (t) => {
  const image = await ociRef('busybox');
  // With the default network: pasta runs beside the container, and the root is an overlay mount.
  const started = await cli(['run', '-d', '--runtime', 'container', '--name', 'victim', image, 'sleep', '1000']);
  t.equal(started.code, 0, started.stderr);
  const id = started.stdout.toString().trim();
  const state = JSON.parse(fs.readFileSync(path.join(stateDir, id, 'state.json'), 'utf8')) as { supervisor: { pid: number }; workDir: string };
  const mountsIn = () => fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => l.includes(state.workDir));
  const helpersIn = () => fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(state.workDir);
    } catch {
      return false;
    }
  });
  t.ok(mountsIn().length > 0 && helpersIn().length > 0, 'the run has a mount and helpers in its work directory');
  process.kill(state.supervisor.pid, 'SIGKILL');
  await until(() => !fs.existsSync(`/proc/${state.supervisor.pid}`), 10_000, 'the supervisor gone');
  t.match((await cli(['ps', '-a'])).stdout.toString(), /Dead +container +victim/, 'ps tells the truth');
  t.equal((await cli(['rm', '-f', 'victim'])).code, 0);
  t.same(ids(), []);
  t.notOk(runcContainers().includes(`vmrun-${id.slice(0, 12)}`), 'the orphaned container is gone');
  t.same([mountsIn(), helpersIn(), fs.existsSync(state.workDir)], [[], [], false], 'no mount, no helper process, no work directory left');

  const once = await cli(['run', '-d', '--rm', '--runtime', 'container', '--network', 'none', image, 'true']);
  t.equal(once.code, 0, once.stderr);
  await until(() => ids().length === 0, 30_000, 'the --rm sandbox removed');
  t.pass('--rm: removed once it ended');
});

t.test('bad requests: one line, 125, nothing left', async (t) => {
  const image = await ociRef('busybox');
  const tty = await cli(['run', '-d', '-t', '--runtime', 'container', image, 'sh']);
  t.same([tty.code, tty.stderr], [125, 'vmrun: -d with -i or -t is not supported yet: run it detached without them, then vmrun exec -it NAME sh\n']);
  const noImage = await cli(['run', '-d', '--runtime', 'container', 'oci:/nonexistent', 'true']);
  t.equal(noImage.code, 125);
  t.match(noImage.stderr, /^vmrun: [^\n]*\/nonexistent[^\n]*\n$/);
  const failing = await cli(['run', '-d', '--runtime', 'container', '--network', 'none', '-u', 'nosuchuser', image, 'true']);
  t.same([failing.code, failing.stderr], [125, 'vmrun: unable to find user nosuchuser: no matching entries in passwd file\n'], 'a process that cannot start fails run -d');
  const notFound = await cli(['run', '-d', '--runtime', 'container', '--network', 'none', image, 'no-such-command']);
  t.same([notFound.code, notFound.stderr], [127, 'vmrun: exec: "no-such-command": executable file not found in $PATH\n']);
  t.same(ids(), [], 'and leaves no sandbox');
  const unknown = await cli(['exec', 'nope', 'true']);
  t.same([unknown.code, unknown.stderr], [125, 'vmrun: no such sandbox: nope (vmrun ps -a lists them)\n']);
});

t.test('cp both ways; a sandbox that sends a hostile archive gets nothing written outside', async (t) => {
  const image = await ociRef('busybox');
  const started = await cli(['run', '-d', '--runtime', 'container', '--network', 'none', '--name', 'files', image, 'sleep', '1000']);
  t.equal(started.code, 0, started.stderr);
  const host = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-cp-'));
  t.teardown(() => fs.rmSync(host, { recursive: true, force: true }));
  fs.mkdirSync(path.join(host, 'in', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(host, 'in', 'a.txt'), 'alpha\n');
  fs.writeFileSync(path.join(host, 'in', 'sub', 'b'), 'beta\n');
  fs.symlinkSync('a.txt', path.join(host, 'in', 'link'));
  fs.chmodSync(path.join(host, 'in', 'a.txt'), 0o750);

  t.equal((await cli(['cp', path.join(host, 'in'), 'files:/srv'])).code, 0, 'a directory in, as a new name');
  t.equal((await cli(['exec', 'files', 'sh', '-c', 'cat /srv/a.txt /srv/sub/b; readlink /srv/link; stat -c "%a %u:%g" /srv/a.txt'])).stdout.toString(), 'alpha\nbeta\na.txt\n750 0:0\n', "contents, links and modes kept; owned by the sandbox's root, as docker cp makes them");
  t.equal((await cli(['cp', path.join(host, 'in', 'a.txt'), 'files:/tmp'])).code, 0, 'a file into a directory');
  t.equal((await cli(['exec', 'files', 'cat', '/tmp/a.txt'])).stdout.toString(), 'alpha\n');

  fs.mkdirSync(path.join(host, 'out'));
  const out = await cli(['cp', 'files:/srv', path.join(host, 'out')]);
  t.equal(out.code, 0, out.stderr);
  t.same([fs.readFileSync(path.join(host, 'out', 'srv', 'sub', 'b'), 'utf8'), fs.readlinkSync(path.join(host, 'out', 'srv', 'link'))], ['beta\n', 'a.txt'], 'out, into a directory, links kept as links');
  const copied = fs.statSync(path.join(host, 'out', 'srv', 'a.txt'));
  t.same([copied.mode & 0o7777, copied.uid], [0o750, process.getuid!()], 'the mode kept; owned by the user who copied, as docker cp makes them');
  t.equal((await cli(['cp', 'files:/etc/hostname', path.join(host, 'hostname')])).code, 0, 'a file out, as a new name');
  t.ok(fs.statSync(path.join(host, 'hostname')).isFile());
  const missing = await cli(['cp', 'files:/no/such', path.join(host, 'x')]);
  t.equal(missing.code, 125);
  t.match(missing.stderr, /^vmrun: copying \/no\/such out of the sandbox failed: tar: .*No such file or directory\n$/);

  // The guest's tar replaced by one that sends a symlink to the host's directory, then a file through it.
  const outside = path.join(host, 'outside');
  fs.mkdirSync(outside);
  const pack = tarStream.pack();
  pack.entry({ name: 'data', type: 'directory', mode: 0o755 });
  pack.entry({ name: 'data/link', type: 'symlink', linkname: outside });
  pack.entry({ name: 'data/link/pwned', mode: 0o644 }, 'PWNED');
  pack.finalize();
  const evil: Buffer[] = [];
  for await (const c of pack) evil.push(c as Buffer);
  const plant = await cli(['exec', '-i', 'files', 'sh', '-c', 'cat > /evil.tar && printf "#!/bin/sh\\ncat /evil.tar\\n" > /usr/sbin/tar && chmod +x /usr/sbin/tar && mkdir /data'], { stdin: Buffer.concat(evil) });
  t.equal(plant.code, 0, plant.stderr);
  const dest = path.join(host, 'dest');
  fs.mkdirSync(dest);
  const hostile = await cli(['cp', 'files:/data', dest]);
  t.equal(hostile.code, 125);
  t.match(hostile.stderr, /^vmrun: the sandbox sent an archive that is refused: "data\/link\/pwned" lies through "data\/link", which is not a directory\n$/);
  t.same(fs.readdirSync(outside), [], "nothing written through the guest's symlink");
  t.same(fs.readdirSync(dest), [], 'and nothing left in the destination');
  t.equal((await cli(['rm', '-f', 'files'])).code, 0);
});
