// One behaviour, two runtimes: every case runs through the CLI in a microVM and in a runc
// container, and the two must agree byte for byte on stdout, stderr and the exit code (which
// must also be what docker gives).
import { randomBytes } from 'node:crypto';

import t from 'tap';

import { both, exact, ociRef, vmrun } from '../helpers/cli';

t.test('the image command, stdout and stderr apart', async (t) => {
  const image = await ociRef('busybox');
  await both(t, [image], { code: 0, stdout: exact('hello from busybox\n'), stderr: exact('') });
  await both(t, [image, 'sh', '-c', 'echo out; echo err >&2; echo out2'], { code: 0, stdout: exact('out\nout2\n'), stderr: exact('err\n') });
});

t.test('exit codes: 0, 7, 137, and docker\'s 127 and 126 with one line from vmrun', async (t) => {
  const image = await ociRef('busybox');
  await both(t, [image, 'true'], { code: 0 });
  await both(t, [image, 'exit-with', '7'], { code: 7 });
  await both(t, [image, 'sh', '-c', 'kill -9 $$'], { code: 137 });
  await both(t, [image, 'no-such-command'], { code: 127, stderr: exact('vmrun: exec: "no-such-command": executable file not found in $PATH\n') });
  await both(t, [image, '/bin/not-exec'], { code: 126, stderr: exact('vmrun: exec: "/bin/not-exec": permission denied\n') });
});

t.test('environment, host name and the files docker provides', async (t) => {
  const image = await ociRef('busybox');
  await both(t, ['-e', 'FOO=from-user', '-e', 'BAR=1', '--hostname', 'matrix', image, 'sh', '-c', 'env | sort'], {
    code: 0,
    stdout: exact('BAR=1\nFOO=from-user\nHOME=/root\nHOSTNAME=matrix\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\nPWD=/\nSHLVL=1\n'),
  });
  await both(t, ['--hostname', 'matrix', image, 'sh', '-c', 'hostname; cat /etc/hostname /etc/hosts /etc/resolv.conf'], { code: 0, stdout: /^matrix\nmatrix\n127\.0\.0\.1\tlocalhost\n/ });
  await both(t, [image, 'sh', '-c', 'ls -a /dev; ls /dev/pts; test -w /dev/stdout && echo stdout-openable; ls -a /; ls /proc/self/fd'], { code: 0 });
});

t.test('users, groups and HOME resolve in the image the same way', async (t) => {
  const image = await ociRef('busybox');
  await both(t, [image, 'id'], { code: 0, stdout: exact('uid=0(root) gid=0(root) groups=0(root)\n') });
  await both(t, ['-u', 'app', image, 'sh', '-c', 'id; echo $HOME'], { code: 0, stdout: exact('uid=1000(app) gid=1000(app) groups=29(audio),50(staff),1000(app)\n/home/app\n') });
  await both(t, ['-u', '1000:50', image, 'id'], { code: 0, stdout: exact('uid=1000(app) gid=50(staff) groups=50(staff)\n') });
  await both(t, ['-u', '4242', image, 'id'], { code: 0, stdout: exact('uid=4242 gid=0(root) groups=0(root)\n') });
  await both(t, ['-u', 'nosuchuser', image, 'id'], { code: 125, stderr: exact('vmrun: unable to find user nosuchuser: no matching entries in passwd file\n') });
});

t.test('working directory and entrypoint', async (t) => {
  await both(t, ['-w', '/new/dir', await ociRef('busybox'), 'pwd'], { code: 0, stdout: exact('/new/dir\n') });
  const image = await ociRef('busybox', 'entrypoint');
  await both(t, [image], { code: 0, stdout: exact('ep default-arg\n') });
  await both(t, ['--entrypoint', 'pwd', image], { code: 0, stdout: exact('/work/dir\n') });
});

t.test('stdin is piped through with -i, and is empty without', async (t) => {
  const image = await ociRef('busybox');
  const data = randomBytes(256 << 10);
  const o = await both(t, ['-i', image, 'cat'], { code: 0 }, { stdin: data });
  t.ok(o.stdout.equals(data), 'byte for byte');
  await both(t, [image, 'wc', '-c'], { code: 0, stdout: /^\s*0\n$/ }, { stdin: Buffer.from('ignored\n') });
});

t.test('SIGTERM to vmrun reaches the process, which traps it', async (t) => {
  const image = await ociRef('busybox');
  let sent = false;
  const onStdout = (text: string, child: { kill(signal: NodeJS.Signals): boolean }) => {
    if (!sent && text.includes('ready')) sent = child.kill('SIGTERM');
  };
  for (const runtime of ['vm', 'container']) {
    sent = false;
    const o = await vmrun(['--runtime', runtime, image, 'sh', '-c', 'trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.1; done'], { onStdout });
    t.equal(o.stdout.toString(), 'ready\ngot-term\n', `${runtime}: trapped`);
    t.equal(o.code, 3, `${runtime}: exit code of the trap`);
  }
});

t.test('--read-only: the root refuses writes, the same way', async (t) => {
  const image = await ociRef('busybox');
  await both(t, ['--read-only', image, 'sh', '-c', 'touch /new-file 2>&1; echo status=$?; echo x > /etc/hosts; echo status=$?'], {
    code: 0,
    stdout: exact('touch: /new-file: Read-only file system\nstatus=1\nstatus=1\n'),
    stderr: exact('sh: can\'t create /etc/hosts: Read-only file system\n'),
  });
  await both(t, [image, 'sh', '-c', 'touch /new-file && echo made'], { code: 0, stdout: exact('made\n') });
});

t.test('-m: a process allocating past the limit is killed', async (t) => {
  await both(t, ['-m', '64m', await ociRef('busybox'), 'tail', '/dev/zero'], { code: 137 });
});

t.test('--timeout kills the run and exits 124', async (t) => {
  await both(t, ['--timeout', '3', await ociRef('busybox'), 'sleep', '1000'], { code: 124 });
});

t.test('-t: a terminal of the default size when vmrun has none', async (t) => {
  await both(t, ['-t', await ociRef('busybox'), 'sh', '-c', 'tty; stty size'], { code: 0, stdout: exact('/dev/pts/0\r\n24 80\r\n') });
});

t.test('an image of 41 layers (more than a VM has device slots) stacks them all, in order', async (t) => {
  const expected = Array.from({ length: 40 }, (_, i) => i + 1).filter((i) => i % 5 !== 4);
  await both(t, [await ociRef('many-layers'), 'sh', '-c', 'ls /layers | sort -n | xargs; cat /layers/40'], { code: 0, stdout: exact(`${expected.join(' ')}\n40\n`) });
});

t.test('--kernel that is not a kernel: 125 and one line', async (t) => {
  const o = await vmrun(['--kernel', '/etc/passwd', await ociRef('busybox')]);
  t.equal(o.code, 125);
  t.match(o.stderr, /^vmrun: [^\n]*\/etc\/passwd[^\n]*\n$/, 'the message names the file');
});

t.test('a reader of stdout that goes away: the process meets SIGPIPE, as in a shell pipeline', async (t) => {
  const image = await ociRef('busybox');
  for (const runtime of ['vm', 'container']) {
    // Like `| head -c 1`: the first output read, then the pipe closed.
    const o = await vmrun(['--runtime', runtime, image, 'yes'], { onStdout: (_, child) => child.stdout?.destroy() });
    t.equal(o.code, 141, `${runtime}: yes was killed by SIGPIPE (stderr: ${o.stderr.trim()})`);
    t.equal(o.stderr, '', `${runtime}: nothing said`);
  }
});
