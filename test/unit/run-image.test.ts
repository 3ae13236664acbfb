// runImage resolves its image as the CLI does: a registry reference is pulled (as --pull says),
// `oci:DIR[:REF]` and a layout directory are opened. The VM itself needs KVM (test/kvm/); here a
// kernel that is no kernel ends each run after the image was resolved.
import { PassThrough } from 'node:stream';

import t from 'tap';

import { ImageError, VmrunError } from '../../src/errors';
import { getImage } from '../../src/image/store';
import { runImage } from '../../src/run/run-image';
import { layoutOf } from '../helpers/images';
import { freshStore, pushLayout, startRegistry } from '../helpers/registry';

const stdio = () => ({ stdin: null, stdout: new PassThrough(), stderr: new PassThrough() });
const run = (image: string, extra: object = {}) => runImage({ image, kernel: '/etc/passwd', network: { mode: 'none' }, stdio: stdio(), ...extra });

t.test('a registry reference is pulled, then run', async (t) => {
  freshStore(t);
  const registry = await startRegistry();
  t.teardown(() => registry.stop());
  await pushLayout(registry, await layoutOf('busybox'), 'latest', 'tools/busybox:1.0');
  const ref = `${registry.host}/tools/busybox:1.0`;
  await t.rejects(run(ref, { pull: 'never' }), { message: /not found locally/ }, '--pull never: not there yet');
  const err = await run(ref).catch((e: unknown) => e);
  t.ok(err instanceof VmrunError && !(err instanceof ImageError), `the image resolved; the run failed later (${(err as Error).message})`);
  const image = await getImage(ref, { pull: 'never' });
  t.ok(image.layers.length > 0, 'and it is in the store');
});

t.test('oci:DIR:REF and a layout directory are opened', async (t) => {
  const layout = await layoutOf('busybox');
  for (const image of [`oci:${layout}:latest`, layout]) {
    const err = await runImage({ image, ref: 'latest', kernel: '/etc/passwd', network: { mode: 'none' }, stdio: stdio() }).catch((e: unknown) => e);
    t.ok(err instanceof VmrunError && !(err instanceof ImageError), `${image}: resolved (${(err as Error).message})`);
  }
  await t.rejects(run('/nonexistent-layout-dir'), ImageError, 'neither a layout nor a valid reference');
});
