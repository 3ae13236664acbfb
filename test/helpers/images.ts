/**
 * The small OCI image layouts that the unpacker and run tests use, built by
 * test/fixtures/build-images.sh (cached across runs; see that script for what each one holds), and
 * a Python image from build-python.sh.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import { packageRoot } from '../../src/paths';

const script = path.join(packageRoot, 'test', 'fixtures', 'build-images.sh');

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
  | 'bad-diffid'
  | 'impostor'
  | 'many-layers';

const builds = new Map<string, Promise<string>>();

/** Runs a fixture script that prints a path, at most once per process (again after a failure). */
function buildOnce(script: string, what: string): Promise<string> {
  let built = builds.get(script);
  if (!built) {
    built = promisify(execFile)('bash', [script], { encoding: 'utf8', maxBuffer: 1 << 20 }).then(
      ({ stdout }) => stdout.trim(),
      (err: Error & { stderr?: string }) => {
        builds.delete(script);
        throw new Error(`building ${what} failed: ${err.stderr?.trim() || err.message}`, { cause: err });
      },
    );
    builds.set(script, built);
  }
  return built;
}

/** The directory holding every test layout; the script runs at most once per process. */
export function testImages(): Promise<string> {
  return buildOnce(script, 'the test images');
}

/**
 * An OCI layout (tag latest) of Python 3.11 from this machine's Debian packages, built by
 * test/fixtures/build-python.sh: a stand-in for python:3.10 that needs no network.
 */
export function pythonLayout(): Promise<string> {
  return buildOnce(path.join(packageRoot, 'test', 'fixtures', 'build-python.sh'), 'the python image');
}

/** The path of one layout (built if need be). */
export async function layoutOf(name: TestLayout): Promise<string> {
  return path.join(await testImages(), name);
}
