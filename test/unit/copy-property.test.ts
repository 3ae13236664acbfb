// Property-based fuzzing (fast-check) of what `vmrun cp` does with a tar stream from a sandbox,
// which a hostile guest writes: whatever entries it holds (absolute paths, `..`, symlinks to the
// host's files and entries through them, hard links out, devices, names outside the one asked
// for), the host's files outside the copy are never touched, and the destination either holds a
// complete copy or nothing at all.
import { Readable } from 'node:stream';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import fc from 'fast-check';
import t from 'tap';
import tarStream from 'tar-stream';

import { SandboxError } from '../../src/errors';
import { extractUntrusted } from '../../src/sandboxes/copy';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-copy-property-'));
t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));

type Entry = { name: string; type: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'; target: string; body: string };

async function archiveOf(entries: Entry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const e of entries) {
    const header: Partial<tarStream.Header> & { name: string } = { name: e.name, type: e.type, mode: e.type === 'directory' ? 0o755 : 0o644 };
    if (e.type === 'symlink' || e.type === 'link') header.linkname = e.target;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.type === 'file') pack.entry(header, e.body, done);
      else pack.entry(header, done);
    });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Every path under `dir` with its contents or link target, to compare before and after. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isSymbolicLink()) out[p] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) walk(p);
      else out[p] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

let round = 0;
function world() {
  const dir = path.join(root, String(round++));
  const outside = path.join(dir, 'outside');
  const parent = path.join(dir, 'parent');
  fs.mkdirSync(outside, { recursive: true });
  fs.mkdirSync(parent);
  fs.writeFileSync(path.join(outside, 'secret'), 'HOST');
  return { dir, outside, parent };
}

const part = fc.constantFrom('data', 'x', '..', '.', 'link', 'sub', 'outside', 'secret', '');
const name = fc.array(part, { minLength: 1, maxLength: 4 }).chain((parts) =>
  fc.constantFrom(parts.join('/'), `/${parts.join('/')}`, `./${parts.join('/')}`, `data/${parts.join('/')}`, `./data/${parts.join('/')}`),
);

t.test('no archive writes outside the copy; a refused one leaves nothing', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          name: name.filter((n) => n.length > 0),
          type: fc.constantFrom<Entry['type'][]>('file', 'directory', 'symlink', 'link', 'character-device', 'fifo'),
          target: fc.constantFrom('/outside', '../outside', '../../outside/secret', 'data', 'data/x', '/etc/passwd', 'x', '../..'),
          body: fc.constantFrom('a', 'PWNED'),
        }),
        { minLength: 1, maxLength: 8 },
      ),
      async (entries: Entry[]) => {
        const { dir, outside, parent } = world();
        // The outside directory is reachable at the absolute and relative targets above.
        const before = snapshot(outside);
        const archive = await archiveOf(entries.map((e) => ({ ...e, target: e.target.replace('/outside', outside) })));
        let ok = true;
        try {
          await extractUntrusted(Readable.from([archive]), parent, 'data', 'copy', { bytes: 1 << 20, entries: 100 });
        } catch (err) {
          ok = false;
          if (!(err instanceof SandboxError)) throw err;
        }
        t.same(snapshot(outside), before, 'the host files outside are untouched');
        const left = fs.readdirSync(parent);
        if (!ok) t.same(left, [], 'a refused archive leaves nothing');
        else t.same(left, ['copy'], 'a complete copy, and nothing else');
        t.same(fs.readdirSync(dir).sort(), ['outside', 'parent'], 'nothing beside them');
      },
    ),
    { numRuns: 150 },
  );
});

t.test('the classic escapes are refused by name', async (t) => {
  const cases: [string, Entry[]][] = [
    ['an absolute path', [{ name: '/tmp/x', type: 'file', target: '', body: 'x' }]],
    ['a path with ..', [{ name: 'data/../../x', type: 'file', target: '', body: 'x' }]],
    ['a symlink, then a file through it', [
      { name: 'data', type: 'directory', target: '', body: '' },
      { name: 'data/l', type: 'symlink', target: '/tmp', body: '' },
      { name: 'data/l/pwned', type: 'file', target: '', body: 'x' },
    ]],
    ['a hard link out', [{ name: 'data', type: 'link', target: '/etc/passwd', body: '' }]],
    ['a device', [{ name: 'data', type: 'character-device', target: '', body: '' }]],
    ['a name not asked for', [{ name: 'other', type: 'file', target: '', body: 'x' }]],
  ];
  for (const [what, entries] of cases) {
    const { parent } = world();
    await t.rejects(extractUntrusted(Readable.from([await archiveOf(entries)]), parent, 'data', 'copy', { bytes: 1 << 20, entries: 100 }), { name: 'SandboxError', message: /^the sandbox sent an archive that is refused: / }, what);
    t.same(fs.readdirSync(parent), [], `${what}: nothing left`);
  }
  const { parent } = world();
  const big = [{ name: 'data', type: 'directory' as const, target: '', body: '' }, ...Array.from({ length: 3 }, (_, i) => ({ name: `data/${i}`, type: 'file' as const, target: '', body: 'x'.repeat(600) }))];
  await t.rejects(extractUntrusted(Readable.from([await archiveOf(big)]), parent, 'data', 'copy', { bytes: 1000, entries: 100 }), /more than 1000 bytes/, 'over the byte budget');
  await t.rejects(extractUntrusted(Readable.from([await archiveOf(big)]), parent, 'data', 'copy', { bytes: 1 << 20, entries: 2 }), /more than 2 entries/, 'over the entry budget');
  t.same(fs.readdirSync(parent), []);
  await extractUntrusted(Readable.from([await archiveOf(big)]), parent, 'data', 'copy', { bytes: 1 << 20, entries: 100 });
  t.same(fs.readdirSync(path.join(parent, 'copy')).sort(), ['0', '1', '2'], 'within budget: the copy');
});
