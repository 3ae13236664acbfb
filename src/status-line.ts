/**
 * A one-line status for long work (unpacking an image) on a terminal: the task, how far it has
 * got when it says, and the time it has taken so far, redrawn in place, erased when the work
 * ends. Nothing at all when stderr is not a terminal.
 */
const REDRAW_MS = 250;

/** Runs `work`, which may say how far it has got through `report` (a few words, or ''). */
export async function withStatusLine<T>(task: string, work: (report: (detail: string) => void) => Promise<T>): Promise<T> {
  const stderr = process.stderr;
  if (!stderr.isTTY) return work(() => {});
  const start = performance.now();
  let detail = '';
  const draw = () => stderr.write(`\r\x1b[K${task}${detail ? `: ${detail}` : ''} ${((performance.now() - start) / 1000).toFixed(1)}s`);
  draw();
  const timer = setInterval(draw, REDRAW_MS);
  try {
    return await work((text) => (detail = text));
  } finally {
    clearInterval(timer);
    stderr.write('\r\x1b[K');
  }
}

/** The image layers an unpack makes: `number` is the layer's place in the image, from 1. */
export interface UnpackLayer {
  number: number;
  size: number;
}

/**
 * Runs an unpack of the layers `missing` (indexes) of `image` under a status line, `Unpacking
 * NAME (3 layers, 19.6 MiB): layer 2 of 3, 41%`. `work` passes on the agent's reports that
 * layer `number` (from 1) has `bytes` of its blob read.
 */
export function withUnpackStatus<T>(
  image: { name: string; layers: { size: number }[] },
  missing: number[],
  work: (progress: (number: number, bytes: number) => void) => Promise<T>,
): Promise<T> {
  const layers = missing.map((i) => ({ number: i + 1, size: image.layers[i].size }));
  const mib = sizeOf(layers) / (1 << 20);
  const task = `Unpacking ${image.name} (${layers.length} layer${layers.length === 1 ? '' : 's'}, ${mib.toFixed(1)} MiB)`;
  return withStatusLine(task, (report) =>
    work((number, bytes) => {
      const detail = unpackProgress(layers, number, bytes);
      if (detail) report(detail);
    }),
  );
}

/**
 * How far an unpack of `layers` has got once layer `number` has `bytes` of its blob read:
 * `layer 2 of 3, 41%`. The agent's word only draws the line: undefined for a layer it made up.
 */
export function unpackProgress(layers: UnpackLayer[], number: number, bytes: number): string | undefined {
  const at = layers.findIndex((l) => l.number === number);
  if (at < 0) return undefined;
  const total = sizeOf(layers);
  const done = sizeOf(layers.slice(0, at)) + Math.min(bytes, layers[at].size);
  return `layer ${at + 1} of ${layers.length}, ${total > 0 ? Math.floor((100 * done) / total) : 100}%`;
}

function sizeOf(layers: UnpackLayer[]): number {
  return layers.reduce((sum, l) => sum + l.size, 0);
}
