/**
 * The task events a shim owes containerd (TaskCreate, TaskStart, TaskExit, TaskDelete,
 * ExecAdded, ExecStarted), published through containerd's own binary, as it asks in its
 * -publish-binary flag: `containerd --address ADDR publish --topic T --namespace NS`, the event
 * on stdin as a protobuf Any. One at a time, in order; retried while containerd is away (it
 * may be restarting), then given up with a log line.
 */
import { spawn } from 'node:child_process';

import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { AnySchema } from '@bufbuild/protobuf/wkt';

import { log } from '../log';

export interface EventsTarget {
  binary: string;
  address: string;
  namespace: string;
}

const ATTEMPTS = 10;
const RETRY_MS = 1000;

export class EventPublisher {
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly target: EventsTarget) {}

  /** `topic` such as /tasks/exit; the event's type URL is its full protobuf name, as containerd's typeurl writes it. */
  publish<D extends DescMessage>(topic: string, schema: D, event: MessageInitShape<D>): void {
    const any = create(AnySchema, { typeUrl: schema.typeName, value: toBinary(schema, create(schema, event)) });
    const bytes = toBinary(AnySchema, any);
    this.queue = this.queue.then(() => this.send(topic, bytes));
  }

  /** Resolves once every event so far is published or given up. */
  flushed(): Promise<void> {
    return this.queue;
  }

  private async send(topic: string, bytes: Uint8Array): Promise<void> {
    let why = '';
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      why = await this.once(topic, bytes);
      if (!why) return;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    log.warn({ topic, why }, 'publishing a task event failed');
  }

  /** One try: '' when published, else why not. */
  private once(topic: string, bytes: Uint8Array): Promise<string> {
    const { binary, address, namespace } = this.target;
    return new Promise((resolve) => {
      const child = spawn(binary, ['--address', address, 'publish', '--topic', topic, '--namespace', namespace], { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.stdin.on('error', () => {});
      child.stdin.end(bytes);
      child.on('error', (err) => resolve(err.message));
      child.on('close', (code) => resolve(code === 0 ? '' : stderr.trim() || `exit ${code}`));
    });
  }
}
