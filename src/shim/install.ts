/**
 * `vmrun shim install`: puts containerd-shim-vmrun-v2 where containerd looks for the runtime
 * io.containerd.vmrun.v2 (its PATH), as a two-line launcher of this vmrun's shim, and says what
 * to add to containerd's and Kubernetes' configuration. `vmrun doctor` checks it.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { UsageError } from '../errors';
import { executableOnPath, packageRoot } from '../paths';

export const SHIM_BINARY = 'containerd-shim-vmrun-v2';
export const RUNTIME_TYPE = 'io.containerd.vmrun.v2';
export const DEFAULT_SHIM_DIR = '/usr/local/bin';

/** This vmrun's shim program, as built (also when this module runs from its TypeScript source). */
const SHIM_MAIN = path.join(packageRoot, 'dist', 'src', 'shim', 'main.js');

function launcher(): string {
  return `#!/bin/sh\n# containerd's runtime ${RUNTIME_TYPE}: vmrun's shim (written by \`vmrun shim install\`).\nexec ${quote(process.execPath)} ${quote(SHIM_MAIN)} "$@"\n`;
}

/** Writes DIR/containerd-shim-vmrun-v2 (atomically); returns its path. */
export function installShim(dir: string = DEFAULT_SHIM_DIR): string {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`cannot install the shim in ${dir}: no such directory (create it, or give --dir a directory on containerd's PATH)`);
  const target = path.join(dir, SHIM_BINARY);
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, launcher(), { mode: 0o755 });
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new UsageError(`cannot install the shim in ${dir}: ${(err as Error).message} (run as root, or give --dir a writable directory on containerd's PATH)`);
  }
  return target;
}

/** containerd's and Kubernetes' configuration for the runtime. */
export function configLines(): string {
  return [
    '# containerd 1.6+ (/etc/containerd/config.toml, version = 2): a CRI runtime named vmrun',
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.vmrun]',
    `  runtime_type = "${RUNTIME_TYPE}"`,
    '',
    '# ctr and Docker 23+ need no configuration:',
    `#   ctr run --runtime ${RUNTIME_TYPE} IMAGE ID [COMMAND]`,
    `#   docker run --runtime ${RUNTIME_TYPE} IMAGE [COMMAND]`,
    '',
    '# Kubernetes: a RuntimeClass whose handler is that runtime\'s name',
    'apiVersion: node.k8s.io/v1',
    'kind: RuntimeClass',
    'metadata:',
    '  name: vmrun',
    'handler: vmrun',
  ].join('\n');
}

/** Where containerd would find the shim, and that it is this vmrun's; throws saying what is wrong. */
export function checkShim(): string {
  const found = executableOnPath(SHIM_BINARY);
  if (!found) throw new Error(`${SHIM_BINARY} is not on PATH: containerd cannot run ${RUNTIME_TYPE}`);
  const text = fs.readFileSync(found, 'utf8').slice(0, 4096);
  if (!text.includes(SHIM_MAIN)) throw new Error(`${found} is not this vmrun's shim (it does not start ${SHIM_MAIN})`);
  // Without its flags the shim says what it needs and exits 1: a launcher that runs at all.
  try {
    execFileSync(found, [], { stdio: 'pipe', timeout: 10_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '');
    if (!stderr.includes('is run by containerd')) throw new Error(`${found} does not run: ${stderr.trim() || (err as Error).message}`);
  }
  return `${found}, for containerd's runtime ${RUNTIME_TYPE}`;
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
