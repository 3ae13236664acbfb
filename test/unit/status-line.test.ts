import t from 'tap';

import { unpackProgress } from '../../src/status-line';

// Layers 3, 4 and 7 of an image are missing: 10, 30 and 60 bytes of blob.
const layers = [
  { number: 3, size: 10 },
  { number: 4, size: 30 },
  { number: 7, size: 60 },
];

t.test('progress counts the blobs of the layers before and the bytes of the current one', async (t) => {
  t.equal(unpackProgress(layers, 3, 0), 'layer 1 of 3, 0%');
  t.equal(unpackProgress(layers, 4, 15), 'layer 2 of 3, 25%');
  t.equal(unpackProgress(layers, 7, 60), 'layer 3 of 3, 100%');
});

t.test('what the agent makes up never draws more than the truth allows', async (t) => {
  t.equal(unpackProgress(layers, 5, 1), undefined, 'a layer that is not being unpacked');
  t.equal(unpackProgress(layers, 3, 1e15), 'layer 1 of 3, 10%', 'bytes beyond the blob count as the blob');
});

t.test('empty blobs are done at once', async (t) => {
  t.equal(unpackProgress([{ number: 1, size: 0 }], 1, 0), 'layer 1 of 1, 100%');
});
