/**
 * The host's ends of the agent's vsock connections. The VMM turns a guest connection to host port
 * P into a connection to the Unix socket `<socketPath>_<P>` (Firecracker's convention); we listen
 * on one such socket per port before the VM boots. Each port takes one connection: the agent
 * makes exactly one, so a second is the guest misbehaving and is closed.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { AgentPort } from '../agent/channels';
import { log } from '../log';

export class AgentListener {
  /** Give this to the VMM as the vsock's Unix socket path. */
  readonly socketPath: string;
  private readonly servers = new Map<number, net.Server>();
  private readonly accepted = new Map<number, Promise<net.Socket>>();

  private constructor(dir: string) {
    this.socketPath = path.join(dir, 'vsock');
  }

  /** Listens for every agent port in `dir`, a private directory of the caller's. */
  static async open(dir: string): Promise<AgentListener> {
    const listener = new AgentListener(dir);
    await listener.listen([AgentPort.Control, AgentPort.Stdin, AgentPort.Stdout, AgentPort.Stderr]);
    return listener;
  }

  /** Listens on more ports (an exec's), each for one connection. */
  async listen(ports: number[]): Promise<void> {
    for (const port of ports) {
      const server = net.createServer();
      let resolveSocket!: (socket: net.Socket) => void;
      this.accepted.set(port, new Promise((resolve) => (resolveSocket = resolve)));
      let taken = false;
      server.on('connection', (socket) => {
        if (taken) return socket.destroy();
        taken = true;
        // Until its reader attaches its own: a reset connection ends the stream like any other end.
        socket.on('error', () => {});
        resolveSocket(socket);
      });
      this.servers.set(port, server);
      const at = `${this.socketPath}_${port}`;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(at, () => resolve());
      });
      // A jailed VMM has a uid of its own: it is let in to the sockets there at boot, not to
      // those made later (an exec's). The directory is this VM's alone.
      fs.chmodSync(at, 0o666);
      // A failed accept (out of descriptors) costs that connection only; the agent's absence is noticed elsewhere.
      server.on('error', (err) => log.debug({ port, err: err.message }, 'agent listener error'));
    }
  }

  /** The agent's connection on `port`, once it makes it. */
  accept(port: number): Promise<net.Socket> {
    const socket = this.accepted.get(port);
    if (!socket) throw new Error(`no listener on agent port ${port}`);
    return socket;
  }

  /** Stops listening on `ports` (all of them by default); connections made stay. */
  close(ports: number[] = [...this.servers.keys()]): void {
    for (const port of ports) {
      this.servers.get(port)?.close();
      this.servers.delete(port);
      this.accepted.delete(port);
      fs.rmSync(`${this.socketPath}_${port}`, { force: true });
    }
  }
}
