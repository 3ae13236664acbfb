/**
 * A one-line status for long work (unpacking an image) on a terminal: the task and the time it
 * has taken so far, redrawn in place, erased when the work ends. Nothing at all when stderr is
 * not a terminal.
 */
const REDRAW_MS = 250;

export async function withStatusLine<T>(task: string, work: () => Promise<T>): Promise<T> {
  const stderr = process.stderr;
  if (!stderr.isTTY) return work();
  const start = performance.now();
  const draw = () => stderr.write(`\r\x1b[K${task} ${((performance.now() - start) / 1000).toFixed(1)}s`);
  draw();
  const timer = setInterval(draw, REDRAW_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    stderr.write('\r\x1b[K');
  }
}

/** What an unpack is about, for its status line: `Unpacking NAME (3 layers, 19.6 MiB)`. */
export function unpackTask(image: { name: string; layers: { size: number }[] }): string {
  const mib = image.layers.reduce((sum, l) => sum + l.size, 0) / (1 << 20);
  return `Unpacking ${image.name} (${image.layers.length} layer${image.layers.length === 1 ? '' : 's'}, ${mib.toFixed(1)} MiB)`;
}
