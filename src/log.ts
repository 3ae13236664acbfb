import fs from 'node:fs';

import pino from 'pino';

export type LogFormat = 'json' | 'pretty';

let format: LogFormat = 'json';

/** pino's JSON lines, as they are or as one readable line each: `12:00:01.234 WARN msg key=value`. */
const sink = {
  write(line: string): void {
    try {
      fs.writeSync(2, format === 'json' ? line : pretty(line));
    } catch {
      // stderr is gone (a closed pipe) or full: a log line is not worth failing for
    }
  },
};

/**
 * The process-wide logger: on stderr, silent below `warn` unless VMRUN_LOG_LEVEL (or the CLI's
 * --log-level) says otherwise.
 */
export const log = pino({ name: 'vmrun', level: process.env.VMRUN_LOG_LEVEL ?? 'warn' }, sink);

export function configureLog(options: { level?: string; format?: LogFormat }): void {
  if (options.level) log.level = options.level;
  if (options.format) format = options.format;
}

function pretty(line: string): string {
  const { level, time, msg, pid: _pid, hostname: _hostname, name: _name, ...rest } = JSON.parse(line) as Record<string, unknown>;
  const when = new Date(time as number).toISOString().slice(11, 23);
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return [when, (pino.levels.labels[level as number] ?? String(level)).toUpperCase(), msg, ...fields].filter(Boolean).join(' ') + '\n';
}
