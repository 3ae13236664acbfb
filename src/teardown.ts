/**
 * What this process has running outside itself (VMs, containers) that an unexpected failure must
 * not leave behind. Each run registers how to stop what it started; the CLI's last-resort handler
 * (an uncaught exception, an unhandled rejection) stops them all, and each run then unwinds
 * through its own cleanup (unmounts, temporary files, locks) as it does after any failure. Once
 * that has happened, whatever starts later is stopped as soon as it registers.
 */
const stops = new Set<() => void>();
let tornDown = false;

/** Registers `stop` until the returned function is called. */
export function onTeardown(stop: () => void): () => void {
  if (tornDown) safely(stop);
  stops.add(stop);
  return () => stops.delete(stop);
}

/** Whether teardownAll has run: work still unwinding must not leave results behind. */
export function tornDownAlready(): boolean {
  return tornDown;
}

/** Stops everything registered now and from now on. */
export function teardownAll(): void {
  tornDown = true;
  for (const stop of [...stops]) safely(stop);
}

/** A stop that throws must not keep the others from running. */
function safely(stop: () => void): void {
  try {
    stop();
  } catch {
    // the others still need stopping
  }
}
