/**
 * The small OCI image layouts that the unpacker and run tests use, built by
 * test/fixtures/build-images.sh (cached across runs; see that script for what each one holds).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const script = path.join(__dirname, '..', 'fixtures', 'build-images.sh');

/** The names of the layouts the script builds. */
export type TestLayout =
  | 'busybox'
  | 'layered'
  | 'layered-zstd'
  | 'layered-plain'
  | 'hostile-traversal'
  | 'hostile-symlink'
  | 'hostile-hardlink'
  | 'corrupt-blob'
  | 'bad-diffid';

let built: Promise<string> | undefined;

/** The directory holding every test layout; the script runs at most once per process. */
export function testImages(): Promise<string> {
  built ??= promisify(execFile)('bash', [script], { encoding: 'utf8', maxBuffer: 1 << 20 }).then(
    ({ stdout }) => stdout.trim(),
    (err: Error & { stderr?: string }) => {
      built = undefined;
      throw new Error(`building the test images failed: ${err.stderr?.trim() || err.message}`, { cause: err });
    },
  );
  return built;
}

/** The path of one layout (built if need be). */
export async function layoutOf(name: TestLayout): Promise<string> {
  return path.join(await testImages(), name);
}
