/** Image references parse and normalise as docker's (distribution/reference) do. */
import t from 'tap';

import { InvalidReferenceError } from '../../src/errors';
import { canonicalReference, familiarName, parseReference } from '../../src/image/reference';

const DIGEST = 'sha256:' + 'ab'.repeat(32);

t.test('names normalise as docker normalises them', async (t) => {
  const cases: [string, string][] = [
    ['python:3.10', 'docker.io/library/python:3.10'],
    ['busybox', 'docker.io/library/busybox:latest'],
    ['user/repo', 'docker.io/user/repo:latest'],
    ['user/repo/deeper:v1', 'docker.io/user/repo/deeper:v1'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1'],
    ['localhost/x', 'localhost/x:latest'],
    ['localhost:5000/x:tag', 'localhost:5000/x:tag'],
    ['127.0.0.1:5000/team/app:1.2.3', '127.0.0.1:5000/team/app:1.2.3'],
    ['registry.example.com/app', 'registry.example.com/app:latest'],
    ['Registry.Example.com/app', 'Registry.Example.com/app:latest'],
    // An uppercase first component is a host to docker, even without a dot.
    ['Foo/bar', 'Foo/bar:latest'],
    ['[::1]:5000/app:v1', '[::1]:5000/app:v1'],
    ['a_b.c-d__e---f:Tag_1.x-y', 'docker.io/library/a_b.c-d__e---f:Tag_1.x-y'],
    [`busybox@${DIGEST}`, `docker.io/library/busybox@${DIGEST}`],
    [`busybox:1.36@${DIGEST}`, `docker.io/library/busybox@${DIGEST}`],
    ['localhost:5000', 'docker.io/library/localhost:5000'],
  ];
  for (const [input, expected] of cases) t.equal(canonicalReference(parseReference(input)), expected, input);
});

t.test('the parts: domain, path, tag and digest', async (t) => {
  t.same(parseReference('python:3.10'), { domain: 'docker.io', path: 'library/python', tag: '3.10', digest: undefined });
  t.same(parseReference(`host:5000/a/b@${DIGEST}`), { domain: 'host:5000', path: 'a/b', tag: undefined, digest: DIGEST });
  t.same(parseReference(`a:t@${DIGEST}`), { domain: 'docker.io', path: 'library/a', tag: 't', digest: DIGEST });
});

t.test('familiar names drop docker.io and library/', async (t) => {
  t.equal(familiarName(parseReference('python')), 'python');
  t.equal(familiarName(parseReference('user/app')), 'user/app');
  t.equal(familiarName(parseReference('docker.io/library/a/b')), 'library/a/b');
  t.equal(familiarName(parseReference('127.0.0.1:5000/app')), '127.0.0.1:5000/app');
});

t.test('each malformed form gets its own one-line message', async (t) => {
  const cases: [string, string][] = [
    ['', 'invalid reference "": it is empty; expected [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST]'],
    ['Busybox', 'invalid reference "Busybox": repository name "Busybox" must be lowercase'],
    ['host.io/Foo', 'invalid reference "host.io/Foo": repository name "Foo" must be lowercase'],
    ['busybox:', 'invalid reference "busybox:": tag "" is malformed: 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -'],
    ['busybox:.x', 'invalid reference "busybox:.x": tag ".x" is malformed: 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -'],
    [`busybox:${'a'.repeat(129)}`, `invalid reference "busybox:${'a'.repeat(129)}": tag "${'a'.repeat(129)}" is malformed: 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -`],
    ['busybox@sha256:abc', 'invalid reference "busybox@sha256:abc": digest "sha256:abc" is malformed: expected sha256:<64 hex digits>'],
    [`busybox@sha512:${'a'.repeat(128)}`, `invalid reference "busybox@sha512:${'a'.repeat(128)}": digest "sha512:${'a'.repeat(128)}" is not supported: expected sha256:<64 lowercase hex digits>`],
    ['a//b', 'invalid reference "a//b": the repository name has an empty path component (a leading, trailing or double /)'],
    ['a/b/', 'invalid reference "a/b/": the repository name has an empty path component (a leading, trailing or double /)'],
    ['host.io/', 'invalid reference "host.io/": the repository name is empty'],
    ['-a', 'invalid reference "-a": path component "-a" is malformed: lowercase letters and digits, separated by ., _, __ or -'],
    ['a..b', 'invalid reference "a..b": path component "a..b" is malformed: lowercase letters and digits, separated by ., _, __ or -'],
    ['a___b', 'invalid reference "a___b": path component "a___b" is malformed: lowercase letters and digits, separated by ., _, __ or -'],
    ['a b', 'invalid reference "a b": path component "a b" is malformed: lowercase letters and digits, separated by ., _, __ or -'],
    ['-host.io:5000/a', 'invalid reference "-host.io:5000/a": registry host "-host.io:5000" is malformed: expected HOST or HOST:PORT'],
    ['host:port/a', 'invalid reference "host:port/a": registry host "host:port" is malformed: expected HOST or HOST:PORT'],
    ['ab'.repeat(32), `invalid reference "${'ab'.repeat(32)}": a 64-digit hex string is an image ID, not a repository name`],
    [`a/${'b'.repeat(250)}`, `invalid reference "a/${'b'.repeat(250)}": the repository name is 262 characters, over the limit of 255`],
  ];
  for (const [input, message] of cases) {
    t.throws(() => parseReference(input), { name: InvalidReferenceError.name, message }, JSON.stringify(input).slice(0, 40));
    t.notOk(message.includes('\n'), 'one line');
  }
});
