/**
 * A run's life as `docker run` leads it: the user's signals go to the process; one that is not
 * obeyed within a grace period is followed by SIGKILL, then by tearing the VM or container down.
 * `--timeout` kills the run the same way and makes its exit code 124, as timeout(1) does.
 */
import type { RunControl } from '../agent/process-io';

export const TIMEOUT_EXIT_CODE = 124;
const GRACE_MS = 10_000;
/** After SIGKILL, how long the agent gets to report before the VM or container is torn down. */
const STOP_AFTER_KILL_MS = 5_000;

export interface SuperviseOptions {
  timeoutMs?: number;
  graceMs?: number;
  /** Subscribes to the user's signals (Ctrl-C, SIGTERM, ...); returns how to unsubscribe. */
  onSignal?: (handler: (signal: NodeJS.Signals) => void) => () => void;
  /** Called with the run's control once it runs (e.g. to forward terminal sizes). */
  onStart?: (control: RunControl) => void;
}

export async function supervise(run: (onStart: (control: RunControl) => void) => Promise<{ exitCode: number }>, options: SuperviseOptions): Promise<number> {
  let control: RunControl | undefined;
  const pending: NodeJS.Signals[] = [];  // arrived before the process ran
  const timers: NodeJS.Timeout[] = [];
  let timedOut = false;
  let killing = false;
  const deliver = (signal: NodeJS.Signals) => (control ? control.signal(signal) : pending.push(signal));
  const kill = () => {
    if (killing) return;
    killing = true;
    deliver('SIGKILL');
    timers.push(setTimeout(() => control?.stop(), STOP_AFTER_KILL_MS));
  };
  let graceStarted = false;
  const unsubscribe = options.onSignal?.((signal) => {
    deliver(signal);
    if (!graceStarted) {
      graceStarted = true;
      timers.push(setTimeout(kill, options.graceMs ?? GRACE_MS));
    }
  });
  if (options.timeoutMs !== undefined) {
    timers.push(setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs));
  }
  try {
    const result = await run((c) => {
      control = c;
      for (const signal of pending.splice(0)) c.signal(signal);
      options.onStart?.(c);
    });
    return timedOut ? TIMEOUT_EXIT_CODE : result.exitCode;
  } catch (err) {
    if (timedOut) return TIMEOUT_EXIT_CODE;
    throw err;
  } finally {
    for (const timer of timers) clearTimeout(timer);
    unsubscribe?.();
  }
}
