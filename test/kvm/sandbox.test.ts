// Sandboxes that stay: one VM (or container) created once, many commands exec'd in it, each
// with its own stdio, exit code, user, environment and working directory, sharing the
// sandbox's files. Both runtimes, the same results. Then the CLI's `run -d` and its commands with a VM
// (test/unit/sandboxes.test.ts has them with a container).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import t from 'tap';

import { ociRef, vmrun } from '../helpers/cli';
import { Sandbox } from '../../src/run/sandbox';

for (const runtime of ['vm', 'container'] as const) {
  t.test(`${runtime}: many commands in one sandbox`, async (t) => {
    const sb = await Sandbox.create({ image: await ociRef('busybox'), runtime, network: { mode: 'none' }, env: ['FROM_SANDBOX=1'] });
    t.teardown(() => sb.close());

    t.same(await sb.exec(['sh', '-c', 'echo out; echo err >&2; exit 3']), { exitCode: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false }, 'stdout, stderr and the exit code apart');
    t.equal((await sb.exec(['id'], { user: '1000' })).stdout, 'uid=1000(app) gid=1000(app) groups=29(audio),50(staff),1000(app)\n', 'a user of the image');
    t.equal((await sb.exec(['sh', '-c', 'echo $FROM_SANDBOX $FOO; pwd'], { env: { FOO: 'bar' }, workdir: '/new/dir' })).stdout, '1 bar\n/new/dir\n', "the sandbox's env with the exec's on top; a working directory made");
    t.equal((await sb.exec(['cat'], { stdin: 'piped in' })).stdout, 'piped in', 'stdin');

    // Files stay between commands: the sandbox's root is one.
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await sb.writeFile('/tmp/data', bytes);
    t.equal((await sb.exec(['sh', '-c', 'wc -c < /tmp/data; md5sum < /tmp/data'])).stdout.split('\n')[0].trim(), '256', 'a file written by one command is there for the next');
    await sb.writeFile('/tmp/text', 'hello\n');
    t.equal(await sb.readFile('/tmp/text'), 'hello\n', 'readFile');
    await t.rejects(sb.readFile('/no/such/file'), /reading \/no\/such\/file in the sandbox failed: .*No such file/, 'a missing file: an error naming it');

    await t.rejects(sb.exec(['no-such-command']), { message: 'exec: "no-such-command": executable file not found in $PATH', exitCode: 127 }, "docker's 127");
    t.match(await sb.exec(['sleep', '1000'], { timeoutMs: 300 }), { exitCode: 137, timedOut: true }, 'timeoutMs kills the command');

    // Commands at once, each with its own streams.
    const many = await Promise.all([1, 2, 3, 4].map((i) => sb.exec(['sh', '-c', `sleep 0.$i; echo ${i}; echo e${i} >&2`])));
    t.same(many.map((r) => r.stdout + r.stderr), ['1\ne1\n', '2\ne2\n', '3\ne3\n', '4\ne4\n'], 'four at once, none mixed up');

    // The sandbox's end ends what runs in it.
    const long = sb.exec(['sleep', '1000']);
    await new Promise((r) => setTimeout(r, 500));
    sb.kill();
    await t.rejects(long, 'a command running when the sandbox is killed does not outlive it');
    await sb.close();
    await t.rejects(sb.exec(['true']), /the sandbox is closed/, 'no command after close');
  });
}

t.test('vm: run -d hosts the VM past the CLI; exec, logs, stop and rm reach it', async (t) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-sandboxes-'));
  t.teardown(() => fs.rmSync(stateDir, { recursive: true, force: true }));
  const cli = (args: string[]) => vmrun(args, { env: { ...process.env, VMRUN_STATE_DIR: stateDir } });
  const started = await cli(['run', '-d', '--network', 'none', '--name', 'vm1', await ociRef('busybox'), 'sh', '-c', 'echo started; trap "echo got-term; exit 5" TERM; while :; do sleep 0.1; done']);
  t.equal(started.code, 0, started.stderr);
  t.match((await cli(['ps'])).stdout.toString(), /Up .* vm +vm1\n$/);
  const exec = await cli(['exec', '-u', '1000', 'vm1', 'sh', '-c', 'id -u; echo err >&2; exit 4']);
  t.same([exec.code, exec.stdout.toString(), exec.stderr], [4, '1000\n', 'err\n'], 'exec in the VM');
  t.equal((await cli(['stop', 'vm1'])).code, 0);
  t.equal((await cli(['wait', 'vm1'])).stdout.toString(), '5\n', 'the trap ran');
  t.equal((await cli(['logs', 'vm1'])).stdout.toString(), 'started\ngot-term\n');
  t.equal((await cli(['rm', 'vm1'])).code, 0);
  t.same(fs.readdirSync(stateDir).filter((e) => e !== 'names'), [], 'nothing left');
});

t.test('vm: a VMM that dies leaves state that ps tells truthfully and rm cleans up', async (t) => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-sandboxes-'));
  t.teardown(() => fs.rmSync(stateDir, { recursive: true, force: true }));
  const cli = (args: string[]) => vmrun(args, { env: { ...process.env, VMRUN_STATE_DIR: stateDir } });
  const started = await cli(['run', '-d', '--network', 'none', await ociRef('busybox'), 'sleep', '1000']);
  t.equal(started.code, 0, started.stderr);
  const id = started.stdout.toString().trim();
  const { supervisor } = JSON.parse(fs.readFileSync(path.join(stateDir, id, 'state.json'), 'utf8')) as { supervisor: { pid: number } };
  const [vmm] = pgrep(['-P', String(supervisor.pid), '-f', 'vmrun-vmm']);
  t.match(vmm, /^\d+$/, 'the VMM is a child of the supervisor');
  process.kill(Number(vmm), 'SIGKILL');
  t.equal((await cli(['wait', id])).stdout.toString(), '125\n', 'the run failed: 125');
  t.match((await cli(['ps', '-a'])).stdout.toString(), /Exited \(125\)/);
  t.equal((await cli(['rm', id])).code, 0);
  t.same(fs.readdirSync(stateDir).filter((e) => e !== 'names'), [], 'nothing left');
  t.same(pgrep(['-f', 'vmrun-vmm']), [], 'no VMM left');
});

/** pgrep's pids (none: pgrep exits 1). */
function pgrep(args: string[]): string[] {
  try {
    return execFileSync('pgrep', args, { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
