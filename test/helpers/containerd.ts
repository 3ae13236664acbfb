/**
 * A private containerd for tests (Debian's containerd package): its own root, state, sockets and
 * namespace under a temporary directory, the CRI plugin off, and vmrun's shim on its PATH
 * through `vmrun shim install`. ctr talks to it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { CLI } from './cli';

export const RUNTIME = 'io.containerd.vmrun.v2';
const NAMESPACE = 'vmrun-test';

export interface CtrResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Containerd {
  dir: string;
  socket: string;
  /** The task state directory of a task: its bundle (config.json, rootfs, address). */
  bundle(id: string): string;
  ctr(args: string[], options?: { stdin?: string; timeoutMs?: number }): Promise<CtrResult>;
  /** Kills containerd (SIGKILL, as a crash would) and starts it again on the same state. */
  restart(): Promise<void>;
  /** Its log so far, for a failure's message. */
  log(): string;
  stop(): Promise<void>;
}

export async function startContainerd(): Promise<Containerd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmrun-containerd-'));
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [CLI, 'shim', 'install', '--dir', bin], (err) => (err ? reject(err) : resolve())),
  );
  const socket = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(
    config,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, 'containerd.log');
  let daemon: ChildProcess | undefined;
  const launch = async () => {
    const out = fs.openSync(logFile, 'a');
    daemon = spawn('containerd', ['--config', config], { stdio: ['ignore', out, out], env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    fs.closeSync(out);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await ctr(['version'], { timeoutMs: 20_000 }).catch(() => undefined);
      if (r?.code === 0) return;
      if (Date.now() > deadline) throw new Error(`containerd did not come up: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const kill = async () => {
    const d = daemon;
    if (!d || d.exitCode !== null) return;
    const gone = new Promise((r) => d.once('exit', r));
    d.kill('SIGKILL');
    await gone;
  };
  const ctr = (args: string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<CtrResult> =>
    new Promise((resolve) => {
      const child = execFile('ctr', ['--address', socket, '--namespace', NAMESPACE, ...args], { timeout: options.timeoutMs ?? 600_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 255) : 0;
        resolve({ code, stdout, stderr });
      });
      child.stdin?.end(options.stdin ?? '');
    });
  await launch();
  return {
    dir,
    socket,
    bundle: (id) => path.join(dir, 'state', 'io.containerd.runtime.v2.task', NAMESPACE, id),
    ctr,
    restart: async () => {
      await kill();
      await launch();
    },
    log: () => fs.readFileSync(logFile, 'utf8').slice(-3000),
    stop: async () => {
      // Tasks first, while containerd can still reach their shims.
      const tasks = await ctr(['task', 'ls', '-q']);
      for (const id of tasks.stdout.split('\n').filter(Boolean)) {
        await ctr(['task', 'kill', '-s', 'SIGKILL', id]);
        await ctr(['task', 'delete', '-f', id]);
      }
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
