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
  private readonly servers = new Map<AgentPort, net.Server>();
  private readonly accepted = new Map<AgentPort, Promise<net.Socket>>();

  private constructor(dir: string) {
    this.socketPath = path.join(dir, 'vsock');
  }

  /** Listens for every agent port in `dir`, a private directory of the caller's. */
  static async open(dir: string): Promise<AgentListener> {
    const listener = new AgentListener(dir);
    for (const port of [AgentPort.Control, AgentPort.Stdin, AgentPort.Stdout, AgentPort.Stderr]) {
      const server = net.createServer();
      let resolveSocket!: (socket: net.Socket) => void;
      listener.accepted.set(port, new Promise((resolve) => (resolveSocket = resolve)));
      let taken = false;
      server.on('connection', (socket) => {
        if (taken) return socket.destroy();
        taken = true;
        // Until its reader attaches its own: a reset connection ends the stream like any other end.
        socket.on('error', () => {});
        resolveSocket(socket);
      });
      listener.servers.set(port, server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(`${listener.socketPath}_${port}`, () => resolve());
      });
      // A failed accept (out of descriptors) costs that connection only; the agent's absence is noticed elsewhere.
      server.on('error', (err) => log.debug({ port, err: err.message }, 'agent listener error'));
    }
    return listener;
  }

  /** The agent's connection on `port`, once it makes it. */
  accept(port: AgentPort): Promise<net.Socket> {
    return this.accepted.get(port)!;
  }

  close(): void {
    for (const [port, server] of this.servers) {
      server.close();
      fs.rmSync(`${this.socketPath}_${port}`, { force: true });
    }
  }
}
