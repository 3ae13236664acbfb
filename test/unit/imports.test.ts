// Imports run one way: cli (and containerd's shim) -> sandboxes -> run -> vm / container -> agent -> shared pieces -> image. A module
// that reaches up (the container runtime into the VM's code, the agent protocol into run/) is a
// layering bug; this lists every one.
import fs from 'node:fs';
import path from 'node:path';

import t from 'tap';

const src = path.join(__dirname, '..', '..', 'src');

/** What each layer (a folder of src/) must never import. */
const FORBIDDEN: Record<string, string[]> = {
  image: ['cli', 'shim', 'sandboxes', 'run', 'vm', 'container', 'agent', 'guest', 'bench'],
  agent: ['cli', 'shim', 'sandboxes', 'run', 'vm', 'container', 'bench'],
  guest: ['cli', 'shim', 'run', 'vm', 'container', 'agent', 'bench'],
  vm: ['cli', 'shim', 'sandboxes', 'run', 'container', 'bench'],
  container: ['cli', 'shim', 'sandboxes', 'run', 'vm', 'bench'],
  run: ['cli', 'shim', 'bench', 'sandboxes'],
  sandboxes: ['cli', 'shim', 'bench'],
  // containerd's shim sits beside the CLI: it drives VMs, never the CLI.
  shim: ['cli', 'bench', 'sandboxes'],
};

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

t.test('no module imports from a layer above its own', async (t) => {
  const wrong: string[] = [];
  let checked = 0;
  for (const file of sources(src)) {
    const layer = path.relative(src, file).split(path.sep)[0];
    const forbidden = FORBIDDEN[layer];
    if (!forbidden) continue;
    for (const [, spec] of fs.readFileSync(file, 'utf8').matchAll(/^(?:import|export)\b[^;]*?from '(\.[^']+)'/gms)) {
      checked++;
      const target = path.relative(src, path.resolve(path.dirname(file), spec)).split(path.sep)[0];
      if (forbidden.includes(target)) wrong.push(`${path.relative(src, file)} imports ${spec}`);
    }
  }
  t.ok(checked > 50, `${checked} relative imports checked`);
  t.same(wrong, []);
});
