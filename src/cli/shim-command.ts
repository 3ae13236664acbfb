/** `vmrun shim install`: containerd's runtime io.containerd.vmrun.v2 (src/shim/). */
import type { Command } from 'commander';

export function registerShimCommand(program: Command): void {
  const shim = program.command('shim').description('containerd\'s runtime v2 shim: run containerd\'s containers (ctr, Docker, Kubernetes) in vmrun VMs');
  shim
    .command('install')
    .description('put containerd-shim-vmrun-v2 on containerd\'s PATH and print the configuration to add')
    .option('--dir <dir>', 'where to put it: a directory on containerd\'s PATH', '/usr/local/bin')
    .action(async (flags: { dir: string }) => {
      const { configLines, installShim } = await import('../shim/install');
      console.log(`installed ${installShim(flags.dir)}\n\n${configLines()}`);
    });
}
