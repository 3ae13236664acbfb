/** The end of a guest's serial console, kept for error messages and the debug log. */
import { log } from '../log';
import type { Machine } from './machine';

/** Console bytes kept to explain a VM that died before its agent could. */
const CONSOLE_TAIL_BYTES = 4096;

/** Reads `vm`'s console (an unread console stalls the guest) and returns its last lines on demand. */
export function consoleTail(vm: Machine): () => string {
  let tail = '';
  vm.console.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    log.debug({ console: text }, 'guest console');
    tail = (tail + text).slice(-CONSOLE_TAIL_BYTES);
  });
  return () => {
    const lines = tail.trim().split('\n').map((l) => l.trim()).filter(Boolean);
    return lines.length ? lines.slice(-3).join(' | ') : '(empty)';
  };
}
