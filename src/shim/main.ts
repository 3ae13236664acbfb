#!/usr/bin/env node
/**
 * containerd-shim-vmrun-v2: containerd's runtime v2 shim for vmrun (`runtime_type =
 * "io.containerd.vmrun.v2"`). containerd runs it as
 *   containerd-shim-vmrun-v2 -namespace NS -address SOCK -publish-binary CONTAINERD -id ID [-debug] start
 * in the bundle's directory: it starts the shim's server (this program again, as `serve`, in a
 * session of its own so that it outlives containerd's restarts), prints the ttrpc address it
 * listens on (all it may print: containerd reads the whole output as the address) and exits. For
 * a shim that died, `... -id ID -bundle DIR delete` cleans up and prints a DeleteResponse.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { create, toBinary } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';

import { configureLog, log } from '../log';
import { exitOf, unixListening } from '../sidecar';
import { teardownAll } from '../teardown';
import { DeleteResponseSchema } from './gen/github.com/containerd/containerd/runtime/v2/task/shim_pb';
import { unmountRootfs } from './rootfs';

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  action: string;
}

/** Where containerd's own shims listen: /run/containerd/s/, named by a hash of what the shim serves. */
const SOCKET_DIR = '/run/containerd/s';

/** The shim library's flags that take a value, ours or not (-socket: containerd 1.7's). */
const VALUED_FLAGS = new Set(['namespace', 'address', 'publish-binary', 'id', 'bundle', 'socket']);

/** Go's flag syntax, as containerd passes it: -name value, -name=value, --name; then the action. */
export function parseShimFlags(argv: string[]): ShimFlags {
  const flags: ShimFlags = { namespace: '', address: '', publishBinary: '', id: '', bundle: '', debug: false, action: '' };
  const names: Record<string, keyof ShimFlags> = { namespace: 'namespace', address: 'address', 'publish-binary': 'publishBinary', id: 'id', bundle: 'bundle', debug: 'debug' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('-')) {
      flags.action = arg;
      break;
    }
    const [name, inline] = arg.replace(/^--?/, '').split(/=(.*)/s, 2);
    const key = names[name];
    if (key === 'debug' || (!key && !VALUED_FLAGS.has(name))) {
      flags.debug ||= key === 'debug' && (inline === undefined || inline === 'true');
      continue; // another shim flag (-v) is not ours to refuse
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`flag -${name} needs a value`);
    if (key) (flags[key] as string) = value;
  }
  return flags;
}

/** The socket of the shim serving `id` in `namespace` for the containerd at `address`, as containerd names its own. */
export function shimSocket(flags: Pick<ShimFlags, 'address' | 'namespace' | 'id'>): string {
  const digest = createHash('sha256').update(path.join(flags.address, flags.namespace, flags.id)).digest('hex');
  return path.join(SOCKET_DIR, digest);
}

async function start(flags: ShimFlags): Promise<void> {
  const socket = shimSocket(flags);
  const address = `unix://${socket}`;
  if (!unixListening(socket)) {
    fs.mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o711 });
    // containerd made the log FIFO and reads it into its own log; by hand there is none.
    const logFd = openLog();
    const child = spawn(process.execPath, [__filename, ...process.argv.slice(2, -1), 'serve'], {
      cwd: process.cwd(),
      detached: true,
      stdio: ['ignore', 'ignore', logFd ?? 'ignore'],
    });
    if (logFd !== undefined) fs.closeSync(logFd);
    await untilListening(socket, exitOf(child)).catch((err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    });
    child.unref();
  }
  fs.writeFileSync('address', address);
  process.stdout.write(address);
}

/** How long the server gets to listen: a node start that loads the VMM's code, on a loaded host. */
const SERVE_START_MS = 60_000;

async function untilListening(socket: string, exited: Promise<number | null>): Promise<void> {
  let code: number | null | undefined;
  void exited.then((c) => (code = c));
  const deadline = Date.now() + SERVE_START_MS;
  while (!unixListening(socket)) {
    if (code !== undefined) throw new Error(`the vmrun shim's server exited (${code}) before it listened: see containerd's log`);
    if (Date.now() > deadline) throw new Error(`the vmrun shim's server did not listen within ${SERVE_START_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function openLog(): number | undefined {
  try {
    return fs.openSync('log', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
}

/** After a shim died: its VM died with it (the VMM follows its parent); the rootfs and socket stay. */
async function cleanupDead(flags: ShimFlags): Promise<void> {
  await unmountRootfs(path.join(flags.bundle || process.cwd(), 'rootfs'));
  fs.rmSync(shimSocket(flags), { force: true });
  const response = create(DeleteResponseSchema, { pid: 0, exitStatus: 128 + 9, exitedAt: timestampNow() });
  process.stdout.write(toBinary(DeleteResponseSchema, response));
}

async function main(): Promise<void> {
  const flags = parseShimFlags(process.argv.slice(2));
  if (flags.debug) configureLog({ level: 'debug' });
  if (!flags.id || !flags.namespace) throw new Error('it is run by containerd: it needs -namespace, -address and -id, then start or delete');
  if (flags.action === 'start') return start(flags);
  if (flags.action === 'delete') return cleanupDead(flags);
  // The server alone loads the VMM's side: start and delete stay quick.
  if (flags.action === 'serve') return (await import('./serve')).serve(flags, shimSocket(flags));
  throw new Error(`unknown action ${JSON.stringify(flags.action)}: containerd asks for start or delete`);
}

if (require.main === module) {
  process.on('uncaughtException', (err) => {
    log.error({ err: err.message }, 'vmrun shim failed');
    teardownAll();
    process.exitCode = 1;
  });
  main().catch((err: unknown) => {
    process.stderr.write(`containerd-shim-vmrun-v2: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
