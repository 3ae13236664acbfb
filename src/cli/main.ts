#!/usr/bin/env node
/**
 * The vmrun command line: commander wiring only. Each command turns its flags into a call of the
 * library and its result into an exit code; errors become one line on stderr.
 */
import { Command, InvalidArgumentError } from 'commander';

import { VmrunError } from '../errors';

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

const program = new Command('vmrun')
  .description('Run container images inside their own KVM microVM')
  .version(require('../../../package.json').version as string);

program
  .command('boot')
  .description('boot a kernel in a microVM with its serial console on this terminal')
  .option('--kernel <path>', 'bzImage or ELF vmlinux (default: the project guest kernel, built if needed)')
  .option('--initrd <path>', 'initramfs to hand the kernel')
  .option('--append <cmdline>', 'kernel command line')
  .option('-m, --memory <MiB>', 'guest memory in MiB', integer, 128)
  .option('--cpus <n>', 'number of vCPUs', integer, 1)
  .action(async (opts: { kernel?: string; initrd?: string; append?: string; memory: number; cpus: number }) => {
    const { Machine } = await import('../vm/machine');
    const kernel = opts.kernel ?? (await (await import('../guest/kernel')).ensureGuestKernel()).bzImage;
    const vm = await Machine.boot({ kernel, initrd: opts.initrd, cmdline: opts.append, memoryMiB: opts.memory, vcpus: opts.cpus });
    vm.console.pipe(process.stdout);
    process.stdin.pipe(vm.consoleInput);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => vm.kill());
    const exit = await vm.wait();
    process.stdin.unpipe(vm.consoleInput);
    process.stdin.destroy();
    // reset is how a guest powers off; anything else is a failure of some kind.
    process.exitCode = exit.kind === 'reset' ? 0 : exit.kind === 'stopped' ? 130 : 1;
    if (exit.kind === 'error' || exit.kind === 'triple-fault') console.error(`vmrun: ${exit.detail}`);
  });

program
  .command('kernel')
  .description('build the guest kernel if needed and print where it is cached')
  .action(async () => {
    const { ensureGuestKernel } = await import('../guest/kernel');
    const kernel = await ensureGuestKernel();
    console.log(`${kernel.bzImage}\n${kernel.vmlinux}`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`vmrun: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = err instanceof VmrunError ? err.exitCode : 125;
});
