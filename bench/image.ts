/**
 * Image benchmark (issue 3's targets), every comparison measured side by side in one run:
 *   - unpack: the guest agent unpacking an image's layers (time taken inside the guest) against
 *     GNU tar unpacking the same blobs on the host;
 *   - start: a cached image running `true` (boot, agent, process, teardown) against a bare boot
 *     of the same kernel whose init is `busybox reboot -f` (boot, reset), alternating;
 *   - stdout: bytes per second from a guest process's stdout to the host, against a host pipe
 *     from the same command, alternating.
 *
 *   node dist/bench/image.js [--runs N] [--json]
 *   node dist/bench/image.js --big [--runs N] [--json]
 * With --big, only the unpack, of a ~1 GB image of 12 layers (bench/build-image.sh big), in a VM
 * and in a container (each from an empty cache, start to finish as `vmrun run` waits for it)
 * against GNU tar, all on the filesystem that holds the layer disks.
 * Where the host has no KVM, run it through the rig: npm run bench:image
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';

import { ensureGuestKernel } from '../src/guest/kernel';
import { openLayout, type Image } from '../src/image/layout';
import { packageRoot } from '../src/paths';
import { runImage } from '../src/run/run-image';
import { ensureLayerDirs, layerDirPath } from '../src/container/layer-dirs';
import { ensureLayerDisks, layerDiskPath, layerDisksRoot, tarSize } from '../src/vm/layer-disks';
import { DEFAULT_CMDLINE, Machine } from '../src/vm/machine';
import { median, sinceMs } from './stats';

const STDOUT_MIB = 64;

/** Runs one of this package's build scripts; its output, the path it built. */
function script(file: string, ...args: string[]): string {
  return execFileSync('bash', [path.join(packageRoot, file), ...args], { encoding: 'utf8' }).trim();
}

/** A sink that counts bytes and notes when the first arrived. */
function counter(): { sink: Writable; bytes: () => number; firstAt: () => bigint | undefined } {
  let bytes = 0;
  let firstAt: bigint | undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      firstAt ??= process.hrtime.bigint();
      bytes += chunk.length;
      done();
    },
  });
  return { sink, bytes: () => bytes, firstAt: () => firstAt };
}

/** A VM unpacking the image from an empty cache: the guest's time, and the host's from start to end. */
async function vmUnpackMs(image: Image): Promise<{ guestMs: number; hostMs: number }> {
  image.layers.forEach((_, i) => fs.rmSync(layerDiskPath(image, i), { force: true }));
  const { unpack } = await ensureLayerDisks(image);
  if (unpack?.guestMs === undefined) throw new Error('the agent did not report its unpack time');
  return { guestMs: unpack.guestMs, hostMs: unpack.hostMs };
}

/** The container runtime unpacking the image from an empty cache, start to end. */
async function containerUnpackMs(image: Image): Promise<number> {
  image.layers.forEach((_, i) => fs.rmSync(layerDirPath(image, i), { recursive: true, force: true }));
  const { unpack } = await ensureLayerDirs(image);
  if (!unpack) throw new Error('the container runtime unpacked nothing');
  execFileSync('sync');
  return unpack.hostMs;
}

/** GNU tar unpacking the same blobs onto the filesystem that holds the image disks, then syncing. */
function hostTarMs(image: Image): number {
  const dir = fs.mkdtempSync(path.join(layerDisksRoot(), '.bench-tar-'));
  const start = process.hrtime.bigint();
  for (const layer of image.layers) {
    const filter = { gzip: ['-z'], zstd: ['--zstd'], none: [] }[layer.compression];
    execFileSync('tar', ['-x', ...filter, '--numeric-owner', '--xattrs', '-f', layer.path, '-C', dir]);
  }
  execFileSync('sync', ['-f', dir]);
  const ms = sinceMs(start);
  fs.rmSync(dir, { recursive: true, force: true });
  return ms;
}

async function imageStartMs(image: Image): Promise<number> {
  const devNull = () => new Writable({ write: (_c, _e, done) => done() });
  const start = process.hrtime.bigint();
  const result = await runImage({ image, command: ['true'], stdio: { stdout: devNull(), stderr: devNull() } });
  if (result.exitCode !== 0) throw new Error(`true exited ${result.exitCode}`);
  return sinceMs(start);
}

async function bareBootMs(kernel: string, initrd: string): Promise<number> {
  const start = process.hrtime.bigint();
  // The kernel hands what follows `--` to init as arguments: init resets the machine at once.
  const cmdline = `${DEFAULT_CMDLINE} quiet rdinit=/bin/busybox -- reboot -f`;
  const vm = await Machine.boot({ kernel, initrd, cmdline, memoryMiB: 1024, vcpus: 1 });
  vm.console.resume();
  const exit = await vm.wait();
  if (exit.kind !== 'reset') throw new Error(`bare boot ended as ${exit.kind}`);
  return sinceMs(start);
}

async function guestStdoutMiBps(image: Image): Promise<number> {
  const out = counter();
  const devNull = new Writable({ write: (_c, _e, done) => done() });
  const count = STDOUT_MIB * 16;
  await runImage({ image, command: ['dd', 'if=/dev/zero', 'bs=65536', `count=${count}`], stdio: { stdout: out.sink, stderr: devNull } });
  const end = process.hrtime.bigint();
  if (out.bytes() !== count * 65536) throw new Error(`guest stdout delivered ${out.bytes()} bytes`);
  return out.bytes() / (1 << 20) / (Number(end - out.firstAt()!) / 1e9);
}

async function hostPipeMiBps(): Promise<number> {
  const out = counter();
  const dd = spawn('dd', ['if=/dev/zero', 'bs=65536', `count=${STDOUT_MIB * 16}`], { stdio: ['ignore', 'pipe', 'ignore'] });
  dd.stdout.pipe(out.sink);
  await new Promise((resolve) => out.sink.on('finish', resolve));
  const end = process.hrtime.bigint();
  return out.bytes() / (1 << 20) / (Number(end - out.firstAt()!) / 1e9);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1] || 3) || 3;
  const json = args.includes('--json');
  if (args.includes('--big')) return bigUnpack(runs, json);
  const kernel = await ensureGuestKernel();
  const probe = script('images/probe/build.sh');
  const stdlibs = await openLayout(script('bench/build-image.sh'));
  const busybox = await openLayout(path.join(script('test/fixtures/build-images.sh'), 'busybox'), 'latest');
  await ensureLayerDisks(busybox);

  const samples: Record<string, number[]> = { guestUnpackMs: [], hostTarMs: [], imageStartMs: [], bareBootMs: [], guestStdoutMiBps: [], hostPipeMiBps: [] };
  // Warm-up: page cache, addon, agent.
  await imageStartMs(busybox);
  await bareBootMs(kernel.bzImage, probe);
  for (let i = 0; i < runs; i++) {
    samples.guestUnpackMs.push((await vmUnpackMs(stdlibs)).guestMs);
    samples.hostTarMs.push(hostTarMs(stdlibs));
    samples.imageStartMs.push(await imageStartMs(busybox));
    samples.bareBootMs.push(await bareBootMs(kernel.bzImage, probe));
    samples.guestStdoutMiBps.push(await guestStdoutMiBps(busybox));
    samples.hostPipeMiBps.push(await hostPipeMiBps());
  }
  const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])) as Record<keyof typeof samples, number>;
  const result = {
    host: { kernel: os.release(), cpu: os.cpus()[0]?.model, nestedKvm: process.env.VMRUN_RIG === '1' },
    runs,
    unpackImage: { layers: stdlibs.layers.length, compressedMiB: stdlibs.layers.reduce((s, l) => s + l.size, 0) / (1 << 20) },
    medians: m,
    samples,
    ratios: {
      unpackGuestOverHostTar: m.guestUnpackMs / m.hostTarMs,
      imageStartOverBareBoot: m.imageStartMs / m.bareBootMs,
      guestStdoutOverHostPipe: m.guestStdoutMiBps / m.hostPipeMiBps,
    },
  };
  if (json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`image benchmark, ${runs} runs each, alternating; host ${result.host.kernel}${result.host.nestedKvm ? ', NESTED KVM (20-50x slower than real KVM)' : ''}`);
  console.log(`unpack ${result.unpackImage.layers} layers (${result.unpackImage.compressedMiB.toFixed(1)} MiB gzip): guest ${m.guestUnpackMs.toFixed(0)} ms, host GNU tar ${m.hostTarMs.toFixed(0)} ms, ratio ${result.ratios.unpackGuestOverHostTar.toFixed(2)} (target <= 1.3)`);
  console.log(`start: cached image running true ${m.imageStartMs.toFixed(0)} ms, bare boot ${m.bareBootMs.toFixed(0)} ms, ratio ${result.ratios.imageStartOverBareBoot.toFixed(2)} (target <= 1.10)`);
  console.log(`stdout: guest ${m.guestStdoutMiBps.toFixed(0)} MiB/s, host pipe ${m.hostPipeMiBps.toFixed(0)} MiB/s, ratio ${result.ratios.guestStdoutOverHostPipe.toFixed(2)} (target >= 0.25)`);
}

/** Unpacking the ~1 GB image: VM, container and GNU tar, alternating. */
async function bigUnpack(runs: number, json: boolean): Promise<void> {
  const image = await openLayout(script('bench/build-image.sh', 'big'));
  const tarMiB = image.layers.reduce((sum, l) => sum + tarSize(l), 0) / (1 << 20);
  const samples: Record<string, number[]> = { vmMs: [], vmGuestMs: [], containerMs: [], tarMs: [] };
  for (let i = 0; i < runs; i++) {
    const vm = await vmUnpackMs(image);
    samples.vmMs.push(vm.hostMs);
    samples.vmGuestMs.push(vm.guestMs);
    samples.containerMs.push(await containerUnpackMs(image));
    samples.tarMs.push(hostTarMs(image));
  }
  const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)])) as Record<keyof typeof samples, number>;
  const result = {
    host: { kernel: os.release(), cpu: os.cpus()[0]?.model, nestedKvm: process.env.VMRUN_RIG === '1' },
    runs,
    image: { layers: image.layers.length, compressedMiB: image.layers.reduce((s, l) => s + l.size, 0) / (1 << 20), tarMiB },
    medians: m,
    samples,
    ratios: { vmOverTar: m.vmMs / m.tarMs, vmGuestOverTar: m.vmGuestMs / m.tarMs, containerOverTar: m.containerMs / m.tarMs },
  };
  if (json) return console.log(JSON.stringify(result, null, 2));
  const { compressedMiB } = result.image;
  console.log(`unpack of ${image.layers.length} layers, ${compressedMiB.toFixed(0)} MiB gzip, ${tarMiB.toFixed(0)} MiB of tar; ${runs} runs each, alternating; host ${result.host.kernel}${result.host.nestedKvm ? ', NESTED KVM' : ''}`);
  console.log(`VM ${m.vmMs.toFixed(0)} ms (guest ${m.vmGuestMs.toFixed(0)} ms), container ${m.containerMs.toFixed(0)} ms, GNU tar ${m.tarMs.toFixed(0)} ms`);
  console.log(`VM/tar ${result.ratios.vmOverTar.toFixed(2)} (guest alone ${result.ratios.vmGuestOverTar.toFixed(2)}; target <= 1.3), container/tar ${result.ratios.containerOverTar.toFixed(2)}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
