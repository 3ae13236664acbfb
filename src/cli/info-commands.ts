/** `vmrun version` and `vmrun doctor`. */
import type { Command } from 'commander';

export function registerInfoCommands(program: Command): void {
  program
    .command('version')
    .description('print the versions of vmrun, node, the guest kernel and agent (cache keys) and runc')
    .action(async () => {
      const { versions } = await import('../doctor');
      for (const [name, version] of Object.entries(await versions())) console.log(`${name}: ${version}`);
    });

  program
    .command('doctor')
    .description('check that this host can run images, and say how to fix what is missing')
    .action(async () => {
      const { doctor } = await import('../doctor');
      const checks = await doctor();
      for (const c of checks) {
        console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
        if (!c.ok) console.log(`     fix: ${c.fix}`);
      }
      process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
    });
}
