/** Small stream ends shared by the run API, sandboxes and the benchmark. */
import { PassThrough, Writable } from 'node:stream';

/** A stream that takes everything and keeps nothing. */
export function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

/** A stream that keeps everything written to it, read back as UTF-8 text. */
export function collector(): { stream: PassThrough; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new PassThrough();
  stream.on('data', (b: Buffer) => chunks.push(b));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}
