import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The package's root directory (holding package.json), from src/ under ts-node or dist/src/ when built. */
export const packageRoot: string = (() => {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no package.json above ${__dirname}`);
})();

/** vmrun's cache (kernels, agent, unpacked image disks): $VMRUN_CACHE_DIR, else $XDG_CACHE_HOME/vmrun. */
export function cacheDir(): string {
  if (process.env.VMRUN_CACHE_DIR) return process.env.VMRUN_CACHE_DIR;
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'vmrun');
}

/** Where `name` is found on PATH as an executable file, as a shell would find it. */
export function executableOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const file = path.join(dir || '.', name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}
