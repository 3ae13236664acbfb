// Property-based fuzzing (fast-check) of what vmrun parses from registries and image layouts:
// manifests, indexes and configs as JSON of any shape, descriptors, platforms, references and
// WWW-Authenticate challenges. Each either parses or fails with vmrun's own error (one line for
// the user), never with a TypeError or RangeError from a shape it did not expect.
import fc from 'fast-check';
import t from 'tap';

import { VmrunError } from '../../src/errors';
import { parseImageConfig } from '../../src/image/config';
import { descriptors, parseJsonObject } from '../../src/image/layout';
import { parseReference } from '../../src/image/reference';
import { parseChallenges } from '../../src/image/registry/auth';
import { choosePlatform, parsePlatform } from '../../src/image/registry/platform';

/** Runs `parse`; true when it returned or threw a VmrunError. */
function clean(parse: () => unknown): boolean {
  try {
    parse();
    return true;
  } catch (err) {
    return err instanceof VmrunError;
  }
}

// JSON of any shape, and JSON shaped almost like the real documents (right keys, wrong values).
const anyJson = fc.jsonValue({ maxDepth: 4 });
const nearDescriptor = fc.record(
  { mediaType: fc.oneof(fc.string(), anyJson), digest: fc.oneof(fc.constant(`sha256:${'a'.repeat(64)}`), fc.string(), anyJson), size: fc.oneof(fc.nat(), fc.double(), anyJson), platform: anyJson, annotations: anyJson },
  { requiredKeys: [] },
);
const nearConfig = fc.record(
  { os: fc.oneof(fc.constant('linux'), anyJson), architecture: fc.oneof(fc.constant('amd64'), anyJson), config: anyJson, rootfs: fc.oneof(fc.record({ type: fc.constant('layers'), diff_ids: fc.array(fc.oneof(fc.string(), anyJson)) }), anyJson) },
  { requiredKeys: [] },
);

t.test('documents of any shape: parsed, or refused with vmrun\'s error', async (t) => {
  fc.assert(
    fc.property(fc.oneof(anyJson, nearConfig, fc.array(nearDescriptor)), (value) => {
      const bytes = Buffer.from(JSON.stringify(value) ?? 'null');
      return (
        clean(() => parseJsonObject(bytes, 'a manifest')) &&
        clean(() => parseImageConfig(value, 'a config')) &&
        clean(() => descriptors(value, 'a manifest')) &&
        clean(() => choosePlatform(descriptors(value, 'an index'), { os: 'linux', architecture: 'amd64' }, 'an image'))
      );
    }),
    { numRuns: 3000 },
  );
  t.pass('3000 documents');
});

t.test('bytes that are not JSON at all: refused with vmrun\'s error', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => clean(() => parseJsonObject(Buffer.from(bytes), 'a manifest'))), { numRuns: 3000 });
  t.pass('3000 byte strings');
});

t.test('references, platforms and auth challenges from any text: parsed, or refused with vmrun\'s error', async (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[a-z0-9.:/@_-]{0,80}$/)), (text) => {
      return clean(() => parseReference(text)) && clean(() => parsePlatform(text)) && clean(() => parseChallenges(text));
    }),
    { numRuns: 5000 },
  );
  t.pass('5000 strings');
});
