#!/usr/bin/env node
/**
 * The vmrun command line: commander wiring only. Each command turns its flags into a call of the
 * library and its result into an exit code; every error becomes one line on stderr and an exit
 * code here, in one place: docker's 125 for vmrun's own failures (bad flags included), the
 * error's own code otherwise (126/127 when the command cannot run).
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';

import { VmrunError } from '../errors';
import { log } from '../log';
import { teardownAll } from '../teardown';
import { registerImageCommands } from './image-commands';
import { registerBenchCommand } from './bench-command';
import { registerInfoCommands } from './info-commands';
import { registerSuperviseCommand } from './detach';
import { registerRunCommand } from './run-command';
import { registerSandboxCommands } from './sandbox-commands';
import { registerShimCommand } from './shim-command';

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

const program = new Command('vmrun')
  .description('Run container images inside their own KVM microVM, or as runc containers')
  .usage('[run] [OPTIONS] IMAGE [COMMAND [ARG...]]\n       vmrun COMMAND [OPTIONS]')
  .version(require('../../../package.json').version as string)
  // Options after a subcommand's operands belong to it (for run: to the image's command).
  .enablePositionalOptions()
  // Errors are reported below, not by commander; subcommands inherit both settings.
  .exitOverride()
  .configureOutput({ outputError: () => {} });

registerRunCommand(program);
registerSuperviseCommand(program);
registerSandboxCommands(program);
registerInfoCommands(program);
registerBenchCommand(program);
registerImageCommands(program);
registerShimCommand(program);

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

/** How long the work in progress gets to unwind after an internal error before vmrun exits anyway. */
const UNWIND_MS = 15_000;
let internalError = false;

/**
 * The last resort: an exception nothing caught or a rejection nobody handled is a bug of vmrun's.
 * One line, then everything this process runs is stopped and unwinds through its own cleanup,
 * and vmrun exits 125.
 */
function onInternalError(err: unknown): void {
  if (internalError) return;
  internalError = true;
  process.exitCode = 125;
  try {
    log.debug({ err }, 'internal error');
    console.error(`vmrun: internal error: ${firstLine(err)} (a bug in vmrun; --log-level debug shows where)`);
  } finally {
    teardownAll();
    setTimeout(() => process.exit(125), UNWIND_MS).unref();
  }
}
process.on('uncaughtException', onInternalError);
process.on('unhandledRejection', onInternalError);
// vmrun's own output going nowhere (a closed pipe) is no failure of the command; a run's relay
// notices for itself (src/agent/process.ts).
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

program
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    const { message, exitCode } = outcomeOf(err);
    if (internalError) return;  // what failed after it is its consequence
    if (message) console.error(`vmrun: ${message}`);
    process.exitCode = exitCode;
  })
  .finally(() => {
    if (internalError) process.exit(125);
  });

/** The one line and the exit code of whatever ended a command. */
function outcomeOf(err: unknown): { message?: string; exitCode: number } {
  if (err instanceof CommanderError) {
    // --help and --version end this way too, having printed what was asked.
    if (err.exitCode === 0) return { exitCode: 0 };
    return { message: err.message.replace(/^error: /, ''), exitCode: 125 };
  }
  return { message: firstLine(err), exitCode: err instanceof VmrunError ? err.exitCode : 125 };
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}
