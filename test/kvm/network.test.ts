// Each run's network, in both runtimes with the same results: passt behind the VM's virtio-net,
// pasta in the container's namespace. Outbound connections, published ports, /etc/hosts names,
// --network none, and docker's one-line errors for what cannot be set up, leaving nothing behind.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';

import t, { type Test } from 'tap';

import { pythonLayout } from '../helpers/images';
import { both, exact, ociRef, vmrun } from '../helpers/cli';

const RUNTIMES = ['vm', 'container'] as const;

/** An HTTP server on the host's loopback that answers every request with `body`. */
async function loopbackServer(t: Test, body: string): Promise<number> {
  const server = http.createServer((_, res) => res.end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/** A free TCP port on this host. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** passt or pasta processes still running. */
function passtProcesses(): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', '(^|/)pas(st|ta)(\\.avx2)? '], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Connects to 127.0.0.1:`port` until it answers, and returns what `request` gets back. */
async function fetchWhenUp(port: number, request: string, ms = 120_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      let data = '';
      socket.on('connect', () => socket.end(request));
      socket.on('data', (b) => (data += b.toString()));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(''));
    });
    if (reply !== '' || Date.now() > end) return reply;
    await new Promise((r) => setTimeout(r, 200));
  }
}

t.test('the process reaches the host through host-gateway, and nothing of its loopback without it', async (t) => {
  const image = await ociRef('busybox');
  const port = await loopbackServer(t, 'hello from the host\n');
  await both(t, ['--add-host', 'host.docker.internal:host-gateway', image, 'wget', '-q', '-O', '-', `http://host.docker.internal:${port}/`], {
    code: 0,
    stdout: exact('hello from the host\n'),
  });
  // The gateway's address leads nowhere without host-gateway: the host's loopback stays closed.
  // (nc: busybox's static wget crashes on a refused connection.)
  await both(t, [image, 'sh', '-c', `printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 10.0.2.2 ${port} | head -c 4; echo .`], { code: 0, stdout: exact('.\n') });
  t.same(passtProcesses(), [], 'no passt or pasta left');
});

t.test('interfaces: eth0 and lo with the network, lo alone with --network none', async (t) => {
  const image = await ociRef('busybox');
  const show = 'ls /sys/class/net; cat /sys/class/net/lo/operstate; ip -4 -o addr show | sed "s/  */ /g" | cut -d" " -f2,4; ip -4 route | grep ^default | cut -d" " -f1-5';
  await both(t, [image, 'sh', '-c', show], {
    code: 0,
    stdout: exact('eth0\nlo\nunknown\nlo 127.0.0.1/8\neth0 10.0.2.15/24\ndefault via 10.0.2.2 dev eth0\n'),
  });
  await both(t, ['--network', 'none', image, 'sh', '-c', 'ls /sys/class/net; ip -4 -o addr show | sed "s/  */ /g" | cut -d" " -f2,4'], {
    code: 0,
    stdout: exact('lo\nlo 127.0.0.1/8\n'),
  });
  await both(t, [image, 'cat', '/sys/class/net/eth0/mtu'], { code: 0, stdout: exact('1500\n') });
});

t.test('a server in the image answers on the published port', async (t) => {
  const image = await ociRef('busybox');
  for (const runtime of RUNTIMES) {
    const port = await freePort();
    const run = vmrun(['--runtime', runtime, '-p', `127.0.0.1:${port}:8080`, image, 'sh', '-c', 'echo hello-from-the-image | nc -l -p 8080']);
    const reply = await fetchWhenUp(port, 'hi\n');
    t.equal(reply, 'hello-from-the-image\n', `${runtime}: the reply through 127.0.0.1:${port}`);
    const o = await run;
    t.equal(o.code, 0, `${runtime}: the server exited 0 (stderr: ${o.stderr.trim()})`);
  }
  t.same(passtProcesses(), [], 'no passt or pasta left');
});

t.test('-p CONTAINERPORT picks a free host port and says which', async (t) => {
  const image = await ociRef('busybox');
  for (const runtime of RUNTIMES) {
    let picked = 0;
    const run = vmrun(['--runtime', runtime, '-p', '8080', image, 'sh', '-c', 'echo picked | nc -l -p 8080'], {
      onStderr: (text) => {
        picked ||= Number(/8080\/tcp published on 0\.0\.0\.0:(\d+)/.exec(text)?.[1] ?? 0);
      },
    });
    for (let i = 0; i < 600 && !picked; i++) await new Promise((r) => setTimeout(r, 100));
    t.ok(picked > 0, `${runtime}: the picked port was printed`);
    t.equal(await fetchWhenUp(picked, 'x\n'), 'picked\n', `${runtime}: and it answers`);
    t.equal((await run).code, 0);
  }
});

t.test('--add-host names resolve through the C library, as in docker', async (t) => {
  const image = `oci:${await pythonLayout()}:latest`;
  await both(t, ['--add-host', 'db.internal:10.9.8.7', '--add-host', 'v6host:fd00::7', image, 'python3', '-c', 'import socket; print(socket.gethostbyname("db.internal")); print(socket.getaddrinfo("v6host", 1)[0][4][0])'], {
    code: 0,
    stdout: exact('10.9.8.7\nfd00::7\n'),
  });
  await both(t, ['--dns', '192.0.2.53', image, 'grep', '^nameserver', '/etc/resolv.conf'], { code: 0, stdout: exact('nameserver 192.0.2.53\n') });
});

t.test('python3 -m http.server in the python image answers through -p', async (t) => {
  const image = `oci:${await pythonLayout()}:latest`;
  for (const runtime of RUNTIMES) {
    const port = await freePort();
    let child: { kill(signal: NodeJS.Signals): boolean } | undefined;
    const run = vmrun(['--runtime', runtime, '-p', `${port}:8000`, '-w', '/usr/lib/python3.11', image, 'python3', '-m', 'http.server', '8000'], {
      onStart: (c) => (child = c),
    });
    const reply = await fetchWhenUp(port, 'GET / HTTP/1.0\r\n\r\n');
    t.match(reply, /^HTTP\/1\.0 200 OK\r\n[\s\S]*Directory listing for \/[\s\S]*json\//, `${runtime}: a directory listing of the working directory`);
    child?.kill('SIGTERM');
    const o = await run;
    t.equal(o.code, 143, `${runtime}: stopped by SIGTERM (stderr: ${o.stderr.trim().slice(-300)})`);
  }
  t.same(passtProcesses(), [], 'no passt or pasta left');
});

t.test("what cannot be set up gets docker's one-line error and exit 125, and leaves nothing", async (t) => {
  const image = await ociRef('busybox');
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '0.0.0.0', resolve));
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as net.AddressInfo).port;
  await both(t, ['-p', `${port}:80`, image, 'true'], { code: 125, stdout: exact(''), stderr: new RegExp(`^vmrun: port ${port}/tcp on 0\\.0\\.0\\.0 is already in use: publish another host port \\(-p OTHER:80\\)\\n$`) });
  await both(t, ['-p', '80:99999', image, 'true'], { code: 125, stderr: /^vmrun: invalid -p "80:99999": container port "99999" is not a port/ });
  await both(t, ['-p', '192.0.2.99:8080:80', image, 'true'], { code: 125, stderr: exact('vmrun: 192.0.2.99 is not an address of this host: publish on one of its addresses, or leave the address out\n') });
  await both(t, ['--network', 'host', image, 'true'], { code: 125, stderr: /^vmrun: network host not found/ });
  t.same(passtProcesses(), [], 'no passt or pasta left');
});
