import t from 'tap';

import { UsageError } from '../../src/errors';
import { GUEST_NETWORK, parseAddHost, parseNetworkFlags, parsePublish } from '../../src/network/options';

t.test("-p takes docker's forms", async (t) => {
  t.same(parsePublish('8080:80'), [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  t.same(parsePublish('80'), [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 80, protocol: 'tcp' }], 'a container port alone: a host port to pick');
  t.same(parsePublish('127.0.0.1:8080:80/udp'), [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'udp' }]);
  t.same(parsePublish('127.0.0.1::80'), [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, protocol: 'tcp' }]);
  t.same(parsePublish('[::1]:8080:80'), [{ hostIp: '::1', hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  t.same(
    parsePublish('8000-8001:80-81').map((p) => [p.hostPort, p.containerPort]),
    [[8000, 80], [8001, 81]],
    'ranges of equal length, port by port',
  );
});

t.test('-p refuses what docker refuses, naming the problem', async (t) => {
  const bad: [string, RegExp][] = [
    ['', /not a port/],
    ['abc', /not a port/],
    ['0', /not a port/],
    ['65536', /not a port/],
    ['80/sctp', /protocol sctp/],
    ['1.2.3:80:80', /not an IP address/],
    ['1:2:3:4', /too many colons/],
    ['8000-8002:80-81', /differ in length/],
    ['90-80', /not a port/],
    ['1-2000', /over 1024 ports/],
  ];
  for (const [spec, why] of bad) {
    t.throws(() => parsePublish(spec), UsageError, spec);
    t.throws(() => parsePublish(spec), { message: why }, spec);
  }
});

t.test('--add-host: NAME:IP, NAME=IP and host-gateway', async (t) => {
  t.same(parseAddHost('db:10.1.2.3'), { name: 'db', address: '10.1.2.3' });
  t.same(parseAddHost('db=10.1.2.3'), { name: 'db', address: '10.1.2.3' });
  t.same(parseAddHost('v6:[fd00::1]'), { name: 'v6', address: 'fd00::1' });
  t.same(parseAddHost('host.docker.internal:host-gateway'), { name: 'host.docker.internal', address: GUEST_NETWORK.gateway });
  for (const spec of ['db', 'db:', ':1.2.3.4', 'db:999.1.1.1', 'a b:1.2.3.4']) t.throws(() => parseAddHost(spec), /invalid --add-host/, spec);
});

t.test('--network, and what goes with it', async (t) => {
  t.same(parseNetworkFlags({}).network, { mode: 'bridge', publish: [], hostLoopback: false }, "docker's bridge by default");
  t.same(parseNetworkFlags({ network: 'none' }).network, { mode: 'none' });
  t.throws(() => parseNetworkFlags({ network: 'host' }), /network host not found/);
  t.throws(() => parseNetworkFlags({ network: 'none', publish: ['80'] }), /publishes no ports/);
  t.throws(() => parseNetworkFlags({ publish: ['8080:80', '8080:81'] }), /published twice/);
  t.same(parseNetworkFlags({ publish: ['80', '81'] }).network, {
    mode: 'bridge',
    publish: parsePublish('80').concat(parsePublish('81')),
    hostLoopback: false,
  }, 'two ports to pick are not the same port');
  const gw = parseNetworkFlags({ addHost: ['h:host-gateway'] }).network;
  t.ok(gw.mode === 'bridge' && gw.hostLoopback, 'host-gateway opens the way to the host loopback');
  t.throws(() => parseNetworkFlags({ dns: ['dns.example'] }), /not an IP address/);
  t.same(parseNetworkFlags({ dns: ['1.1.1.1', '::1'] }).dns, ['1.1.1.1', '::1']);
});
