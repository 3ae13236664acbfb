import pino from 'pino';

/**
 * The process-wide logger: JSON lines on stderr, silent below `warn` unless VMRUN_LOG_LEVEL
 * (or the CLI's --log-level) says otherwise.
 */
export const log = pino(
  { name: 'vmrun', level: process.env.VMRUN_LOG_LEVEL ?? 'warn' },
  pino.destination({ fd: 2, sync: true }),
);
