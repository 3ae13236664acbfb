import fs from 'node:fs';
import path from 'node:path';

/** The package's root directory (holding package.json), from src/ under ts-node or dist/src/ when built. */
export const packageRoot: string = (() => {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no package.json above ${__dirname}`);
})();
