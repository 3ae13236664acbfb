/** `-e` and `--env-file` as docker reads them (docker/cli opts/env.go, opts/file.go). */
import fs from 'node:fs';

import { UsageError } from '../errors';

/**
 * `NAME=value` stays; a bare `NAME` takes the host's value, or is dropped when the host has none.
 * Entries of --env-file come first, so that -e wins.
 */
export function environment(envFiles: string[], entries: string[], hostEnv: NodeJS.ProcessEnv = process.env): string[] {
  const all = [...envFiles.flatMap((file) => readEnvFile(file)), ...entries];
  return all.flatMap((entry) => {
    if (entry.includes('=')) return [entry];
    const value = hostEnv[entry];
    return value === undefined ? [] : [`${entry}=${value}`];
  });
}

/** One entry a line; blank lines and lines starting with # are skipped; nothing is unquoted. */
function readEnvFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read env file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const entries: string[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trimStart();
    if (line === '' || line.startsWith('#')) continue;
    const name = line.split('=')[0];
    if (name === '' || /\s/.test(name)) throw new UsageError(`${file}, line ${i + 1}: variable name ${JSON.stringify(name)} is empty or has whitespace`);
    entries.push(line);
  }
  return entries;
}
