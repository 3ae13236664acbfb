// Each run's network, in both runtimes with the same results: passt behind the VM's virtio-net,
// pasta in the container's namespace. Outbound connections, published ports, /etc/hosts names,
// --network none, and docker's one-line errors for what cannot be set up, leaving nothing behind.
import http from 'node:http';
import net from 'node:net';

import t, { type Test } from 'tap';

import { pythonLayout } from '../helpers/images';
import { hostIpv6 } from '../../src/network/user-net';
import { both, exact, ociRef, passtProcesses, vmrun } from '../helpers/cli';

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

/**
 * Connects to 127.0.0.1:`port` until it answers, and returns what `request` gets back. passt
 * accepts at once and gives up on a guest that does not answer (still booting) after 10 s, so a
 * try that hears nothing for 15 s is abandoned.
 */
async function fetchWhenUp(port: number, request: string, ms = 120_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const reply = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      let data = '';
      socket.setTimeout(15_000, () => socket.destroy());
      socket.on('connect', () => socket.end(request));
      socket.on('data', (b) => (data += b.toString()));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(''));
    });
    if (reply !== '' || Date.now() > end) return reply;
    await new Promise((r) => setTimeout(r, 200));
  }
}

t.test('the process reaches the host through host-gateway', async (t) => {
  const image = await ociRef('busybox');
  const port = await loopbackServer(t, 'hello from the host\n');
  await both(t, ['--add-host', 'host.docker.internal:host-gateway', image, 'wget', '-q', '-O', '-', `http://host.docker.internal:${port}/`], {
    code: 0,
    stdout: exact('hello from the host\n'),
  });
});

t.test('eth0 and lo, the route and MTU, and nothing of the host loopback; lo alone with --network none', async (t) => {
  const image = await ociRef('busybox');
  const port = await loopbackServer(t, 'the host loopback\n');
  const show = [
    'ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/eth0/mtu',
    'ip -4 -o addr show | sed "s/  */ /g" | cut -d" " -f2,4; ip -4 route | grep ^default | cut -d" " -f1-5',
    // Without host-gateway the gateway's address leads nowhere. (nc: busybox's static wget
    // crashes on a refused connection.)
    `printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 10.0.2.2 ${port} 2>/dev/null | head -c 4; echo .`,
    // IPv6 as the host has it: its address and gateway, mirrored by passt and pasta alike.
    'ip -6 -o addr show dev eth0 scope global | sed "s/  */ /g" | cut -d" " -f2,4; ip -6 route | grep ^default | cut -d" " -f1-5',
  ].join('; ');
  const v6 = hostIpv6();
  if (process.env.VMRUN_RIG === '1') t.ok(v6, 'the rig has IPv6 (its NIC has an fd99::/64 prefix)');
  t.comment(v6 ? `the host's IPv6: ${v6.address}/${v6.prefix} via ${v6.gateway}` : 'this host has no IPv6 default route: the guest gets IPv4 alone');
  await both(t, [image, 'sh', '-c', show], {
    code: 0,
    stdout: exact(`eth0\nlo\nunknown\n1500\nlo 127.0.0.1/8\neth0 10.0.2.15/24\ndefault via 10.0.2.2 dev eth0\n.\n${v6 ? `eth0 ${v6.address}/${v6.prefix}\ndefault via ${v6.gateway} dev eth0\n` : ''}`),
  });
  await both(t, ['--network', 'none', image, 'sh', '-c', 'ls /sys/class/net; ip -4 -o addr show | sed "s/  */ /g" | cut -d" " -f2,4'], {
    code: 0,
    stdout: exact('lo\nlo 127.0.0.1/8\n'),
  });
  t.same(passtProcesses(), [], 'no passt or pasta left');
});

t.test('servers in the image answer on published ports: one given, one picked and printed', async (t) => {
  const image = await ociRef('busybox');
  for (const runtime of RUNTIMES) {
    const port = await freePort();
    let picked = 0;
    const run = vmrun(['--runtime', runtime, '-p', `127.0.0.1:${port}:8080`, '-p', '8081', image, 'sh', '-c', 'echo picked | nc -l -p 8081 & echo hello-from-the-image | nc -l -p 8080; wait'], {
      onStderr: (text) => {
        picked ||= Number(/8081\/tcp published on 0\.0\.0\.0:(\d+)/.exec(text)?.[1] ?? 0);
      },
    });
    t.equal(await fetchWhenUp(port, 'hi\n'), 'hello-from-the-image\n', `${runtime}: the reply through 127.0.0.1:${port}`);
    t.ok(picked > 0, `${runtime}: the picked port was printed`);
    t.equal(await fetchWhenUp(picked, 'x\n'), 'picked\n', `${runtime}: and it answers`);
    const o = await run;
    t.equal(o.code, 0, `${runtime}: the servers exited 0 (stderr: ${o.stderr.trim()})`);
  }
  t.same(passtProcesses(), [], 'no passt or pasta left');
});

t.test('python: --add-host names resolve through the C library, --dns is the nameserver, http.server answers through -p', async (t) => {
  const image = `oci:${await pythonLayout()}:latest`;
  const resolve = 'import socket; print(socket.gethostbyname("db.internal")); print(socket.getaddrinfo("v6host", 1)[0][4][0])';
  const outputs: string[] = [];
  for (const runtime of RUNTIMES) {
    const port = await freePort();
    let child: { kill(signal: NodeJS.Signals): boolean } | undefined;
    const args = ['--runtime', runtime, '--add-host', 'db.internal:10.9.8.7', '--add-host', 'v6host:fd00::7', '--dns', '192.0.2.53', '-p', `${port}:8000`, '-w', '/usr/lib/python3.11'];
    const script = `python3 -c '${resolve}'; grep ^nameserver /etc/resolv.conf; exec python3 -m http.server 8000`;
    const run = vmrun([...args, image, 'sh', '-c', script], { onStart: (c) => (child = c) });
    const reply = await fetchWhenUp(port, 'GET / HTTP/1.0\r\n\r\n');
    t.match(reply, /^HTTP\/1\.0 200 OK\r\n[\s\S]*Directory listing for \/[\s\S]*json\//, `${runtime}: a directory listing of the working directory`);
    child?.kill('SIGTERM');
    const o = await run;
    t.equal(o.code, 143, `${runtime}: stopped by SIGTERM (stderr: ${o.stderr.trim().slice(-300)})`);
    t.equal(o.stdout.toString(), '10.9.8.7\nfd00::7\nnameserver 192.0.2.53\n', `${runtime}: names and nameserver`);
    outputs.push(o.stdout.toString());
  }
  t.equal(outputs[1], outputs[0], 'the same in both runtimes');
  t.same(passtProcesses(), [], 'no passt or pasta left');
});

t.test('a guest that opens thousands of connections through passt gets what passt allows, and the host and the next run are unharmed', async (t) => {
  const image = `oci:${await pythonLayout()}:latest`;
  let accepted = 0;
  const held: net.Socket[] = [];
  const server = net.createServer((socket) => {
    accepted++;
    held.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of held) s.destroy();
    server.close(() => resolve());
  }));
  const { port } = server.address() as net.AddressInfo;
  const flood = [
    'import resource, socket',
    'resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))',
    'held = []',
    'for i in range(2000):',
    '    try: held.append(socket.create_connection(("host.docker.internal", PORT), timeout=10))',
    '    except OSError as e: break',
    'print(len(held))',
  ].join('\n').replace('PORT', String(port));
  const o = await vmrun(['--runtime', 'vm', '--add-host', 'host.docker.internal:host-gateway', image, 'python3', '-c', flood]);
  t.equal(o.code, 0, `the flood ends as the process does (stderr: ${o.stderr.trim().slice(-300)})`);
  const opened = Number(o.stdout.toString());
  t.ok(opened >= 1000, `the guest held ${opened} connections at once, the host accepted ${accepted}`);
  t.ok(accepted >= opened, 'each one reached the host');
  t.same(passtProcesses(), [], 'its passt ended with it');
  // The next run gets a network of its own, untouched by the flood.
  const body = await loopbackServer(t, 'still here\n');
  const next = await vmrun(['--runtime', 'vm', '--add-host', 'host.docker.internal:host-gateway', await ociRef('busybox'), 'wget', '-q', '-O', '-', `http://host.docker.internal:${body}/`]);
  t.equal(next.stdout.toString(), 'still here\n', 'the next run reaches the host');
});

t.test('a connection from the guest outlives 28 s of silence from the host (Debian 12\'s passt reset it at 24 s)', async (t) => {
  const image = `oci:${await pythonLayout()}:latest`;
  const seconds = 28;
  const server = net.createServer((socket) => {
    let got = 0;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      got += chunk.length;
      if (got >= seconds) socket.end(`got ${got}\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as net.AddressInfo;
  const upload = [
    'import socket, time',
    `s = socket.create_connection(("host.docker.internal", ${port}))`,
    `for i in range(${seconds}):`,
    '    s.sendall(b"x")',
    '    time.sleep(1)',
    'print(s.recv(100).decode(), end="")',
  ].join('\n');
  const o = await vmrun(['--runtime', 'vm', '--add-host', 'host.docker.internal:host-gateway', image, 'python3', '-c', upload]);
  t.same([o.code, o.stdout.toString()], [0, `got ${seconds}\n`], `the host answered at the end (stderr: ${o.stderr.trim().slice(-300)})`);
});
