/**
 * Pull progress as docker shows it: one line per layer (short digest, state, bytes done of total,
 * rate), redrawn in place with ANSI cursor moves on a terminal; on anything else, one plain line
 * when a layer is done.
 */
import type { BlobEvent } from './registry/blob';

const REDRAW_MS = 100;
const BAR_WIDTH = 30;

/** docker's HumanSize: SI units, about three significant digits. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${Number(value.toPrecision(3))}${units[unit]}`;
}

interface Line {
  id: string;
  total: number;
  state: string;
  done: number;
  startedAt?: number;
}

const STATES: Record<BlobEvent['state'], string> = {
  waiting: 'Waiting',
  downloading: 'Downloading',
  verifying: 'Verifying Checksum',
  exists: 'Already exists',
  done: 'Pull complete',
};

export class ProgressDisplay {
  private readonly lines: Line[] = [];
  private drawn = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly out: NodeJS.WritableStream,
    /** Redraw in place (a terminal), or print a line as each layer finishes. */
    private readonly tty: boolean,
  ) {}

  /** Adds a layer line; returns what to call with that layer's events. */
  layer(digest: string, total: number): (event: BlobEvent) => void {
    const line: Line = { id: digest.slice('sha256:'.length, 'sha256:'.length + 12), total, state: 'Pulling fs layer', done: 0 };
    this.lines.push(line);
    this.schedule(true);
    return (event) => {
      const changed = STATES[event.state] !== line.state;
      line.state = STATES[event.state];
      if (event.state === 'downloading') {
        line.startedAt ??= Date.now();
        line.done = event.done;
      }
      if (!this.tty && (event.state === 'done' || event.state === 'exists')) this.out.write(`${line.id}: ${line.state}\n`);
      this.schedule(changed);
    };
  }

  /** Draws the final state and stops redrawing. */
  finish(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.draw();
  }

  private schedule(now: boolean): void {
    if (!this.tty) return;
    if (now) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.draw();
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.draw();
      }, REDRAW_MS);
    }
  }

  private draw(): void {
    if (!this.tty) return;
    let text = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const line of this.lines) text += `\r\x1b[2K${render(line)}\n`;
    this.drawn = this.lines.length;
    this.out.write(text);
  }
}

function render(line: Line): string {
  if (line.state !== STATES.downloading) return `${line.id}: ${line.state}`;
  const filled = line.total ? Math.min(BAR_WIDTH, Math.floor((line.done / line.total) * BAR_WIDTH)) : 0;
  const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled ? '>' : ''}${' '.repeat(BAR_WIDTH - filled)}]`;
  const seconds = (Date.now() - (line.startedAt ?? Date.now())) / 1000;
  const rate = seconds > 0 ? `  ${humanSize(line.done / seconds)}/s` : '';
  return `${line.id}: Downloading ${bar} ${humanSize(line.done)}/${humanSize(line.total)}${rate}`;
}
