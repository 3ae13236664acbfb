/**
 * `vmrun bench IMAGE [COMMAND...]`: what a VM costs over a container, for this image, on this
 * host. Wiring only: the benchmark is src/bench/.
 */
import { InvalidArgumentError, type Command } from 'commander';

import { RUNTIME_LABELS, type RuntimeLabel } from '../bench/figures';
import { openImage } from '../run/resolve-image';

interface BenchFlags {
  runs: number;
  concurrency: number;
  density: number;
  memory: number;
  runtimes: RuntimeLabel[];
  qemu: string;
  json?: boolean;
  chart?: string;
}

function count(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer of at least ${min}`);
    return n;
  };
}

function runtimeList(value: string): RuntimeLabel[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(RUNTIME_LABELS as readonly string[]).includes(n));
  if (!names.length || unknown.length) throw new InvalidArgumentError(`expected a comma-separated list of ${RUNTIME_LABELS.join(', ')}`);
  return names as RuntimeLabel[];
}

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('measure what a microVM costs over a runc container (and QEMU), for IMAGE on this host')
    .argument('<image>', 'oci:DIR[:REF] (an OCI image layout) or a registry reference')
    .argument('[command...]', 'the command to run (default: the image\'s); after -- when it has options of its own')
    .option('-n, --runs <N>', 'runs of each runtime, after one warm-up', count(1), 10)
    .option('--concurrency <K>', 'instances started at once per round', count(1), 1)
    .option('--density <K>', 'idle instances (sleep) held at once for memory density and exec latency; 0: skip', count(0), 4)
    .option('--memory <MiB>', 'guest RAM of each VM', count(32), 1024)
    .option('--runtimes <list>', `which to run, comma-separated (${RUNTIME_LABELS.join(',')})`, runtimeList, [...RUNTIME_LABELS])
    .option('--qemu <path>', 'the QEMU binary', 'qemu-system-x86_64')
    .option('--json', 'print the report as JSON')
    .option('--chart <file>', 'draw the report to FILE.svg, or FILE.png (needs rsvg-convert)')
    .action(async (imageRef: string, command: string[], flags: BenchFlags) => {
      const [{ runBench }, { formatTable }, { writeChart }] = await Promise.all([import('../bench/run-bench'), import('../bench/table'), import('../bench/chart')]);
      const image = await openImage(imageRef, { pull: 'missing' });
      const report = await runBench({
        image,
        imageRef,
        command,
        runs: flags.runs,
        concurrency: flags.concurrency,
        density: flags.density,
        memoryMiB: flags.memory,
        qemu: flags.qemu,
        runtimes: flags.runtimes,
        progress: (line) => process.stderr.write(`bench: ${line}\n`),
      });
      if (flags.chart) await writeChart(report, flags.chart);
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatTable(report));
      // Every runtime failing is a failed benchmark; some failing is a report that says so.
      process.exitCode = Object.values(report.runtimes).every((r) => r.status === 'failed') ? 1 : 0;
    });
}
