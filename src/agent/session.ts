/**
 * One conversation with the guest agent over its control connection: the host sends the spec
 * and, while the process runs, signals and terminal sizes; the agent answers with milestones and
 * how the run ended. Everything the agent says is checked and bounded.
 */
import type net from 'node:net';

import { AgentError } from '../errors';
import { encodeFrame, FrameReader, FrameType, type Frame } from './frames';

const MAX_PHASES = 64;
const MAX_MESSAGE_CHARS = 2000;

export class AgentSession {
  /** Guest milestones (`agent`, `unpacked`, `exec`, ...), in nanoseconds of guest CLOCK_BOOTTIME. */
  readonly phases: Record<string, number> = {};
  /** Called with each PROGRESS report of an unpack: layer `number` has `bytes` of its blob read. */
  onProgress?: (number: number, bytes: number) => void;
  /** The exit code the agent reported; rejects with AgentError when the run could not happen. */
  readonly outcome: Promise<number>;
  /** Resolves once the agent says the process exec'ed (PHASE exec); rejects as `outcome` when it never did. */
  readonly started: Promise<void>;

  private readonly reader = new FrameReader();
  private settle!: { resolve: (code: number) => void; reject: (err: Error) => void };
  private markStarted!: () => void;
  private settled = false;

  /**
   * `explainLoss`, when given, says why the connection was lost better than the session can (the
   * container runtime asks runc); the session fails with its answer.
   */
  constructor(
    private readonly socket: net.Socket,
    explainLoss?: (lost: AgentError) => Promise<Error>,
  ) {
    this.outcome = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // A run that failed before it waited for the outcome (its network, say) closes the session,
    // which then fails too: that is no news to anybody.
    this.outcome.catch(() => {});
    this.started = new Promise((resolve, reject) => {
      this.markStarted = resolve;
      this.outcome.then(() => reject(new AgentError('the process ended before the agent said it started')), reject);
    });
    this.started.catch(() => {});
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.reader.push(chunk)) this.onFrame(frame);
      } catch (err) {
        this.fail(err as Error);
      }
    });
    const lost = (err: AgentError) => {
      if (!explainLoss) return this.fail(err);
      explainLoss(err).then(
        (why) => this.fail(why),
        () => this.fail(err),
      );
    };
    socket.on('error', () => lost(new AgentError('the guest agent dropped its control connection')));
    socket.on('close', () => lost(new AgentError('the guest agent closed its control connection before the process ended')));
  }

  /** The milestones in milliseconds. */
  phasesMs(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.phases).map(([k, ns]) => [k, ns / 1e6]));
  }

  send(type: FrameType, payload?: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame(type, payload));
  }

  /** Ends the conversation; the agent takes this as leave to power off. */
  close(): void {
    this.socket.destroy();
  }

  /** Ends the conversation with `err` unless it has already ended. */
  fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.settle.reject(err);
    this.socket.destroy();
  }

  private onFrame({ type, payload }: Frame): void {
    if (this.settled) return;  // nothing the agent says after its outcome matters
    switch (type) {
      case FrameType.Phase: {
        const match = /^([a-z][a-z0-9_-]{0,31}) ([0-9]{1,20})$/.exec(payload.toString('latin1'));
        if (!match) throw new AgentError('the guest agent sent a malformed PHASE frame');
        if (Object.keys(this.phases).length < MAX_PHASES) this.phases[match[1]] = Number(match[2]);
        if (match[1] === 'exec') this.markStarted();
        return;
      }
      case FrameType.Progress: {
        const match = /^([0-9]{1,3}) ([0-9]{1,16})$/.exec(payload.toString('latin1'));
        if (!match) throw new AgentError('the guest agent sent a malformed PROGRESS frame');
        this.onProgress?.(Number(match[1]), Number(match[2]));
        return;
      }
      case FrameType.Exit:
        if (payload.length !== 4) throw new AgentError('the guest agent sent a malformed EXIT frame');
        this.settled = true;
        this.settle.resolve(payload.readInt32LE(0));
        return;
      case FrameType.Error: {
        if (payload.length < 4) throw new AgentError('the guest agent sent a malformed ERROR frame');
        const code = payload.readInt32LE(0);
        const message = oneLine(payload.subarray(4).toString('utf8'));
        this.settled = true;
        this.settle.reject(new AgentError(message || 'the guest agent failed without saying why', code >= 1 && code <= 255 ? code : 125));
        return;
      }
      default:
        throw new AgentError(`the guest agent sent a frame of unknown type ${type}`);
    }
  }
}

/** A message from the guest, made safe to print: one line, no control characters, bounded. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim().slice(0, MAX_MESSAGE_CHARS);
}
