/**
 * The shim's server, started by `start` (src/shim/main.ts) in a session of its own: the Task
 * service on ttrpc at `socket` until containerd's Shutdown, or SIGTERM, ends it and its task.
 */
import fs from 'node:fs';

import { log } from '../log';
import { EventPublisher } from './events';
import { Task } from './gen/github.com/containerd/containerd/runtime/v2/task/shim_pb';
import type { ShimFlags } from './main';
import { TaskService } from './task-service';
import { TtrpcServer } from './ttrpc';

export async function serve(flags: ShimFlags, socket: string): Promise<void> {
  const events = new EventPublisher({ binary: flags.publishBinary, address: flags.address, namespace: flags.namespace });
  let ending: Promise<void> | undefined;
  const end = () => {
    ending ??= (async () => {
      server.close();
      fs.rmSync(socket, { force: true });
      await service.teardown();
      await events.flushed();
      process.exit(0);
    })();
  };
  const service = new TaskService({ id: flags.id, events, shutdown: () => setImmediate(end) });
  const server = new TtrpcServer().register(Task, service);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, end);
  fs.rmSync(socket, { force: true });
  await new Promise<void>((resolve, reject) => server.server.once('error', reject).listen(socket, resolve));
  log.info({ socket, id: flags.id }, 'vmrun shim serving');
}
