/**
 * The image commands, docker's way: `pull`, `images`, `rmi`, `image prune`, `load`. Commander
 * wiring and printing only; the work is in src/image/store.ts and src/run/prune-layers.ts.
 */
import type { Command } from 'commander';

import { ImageError, VmrunError } from '../errors';
import { humanSize } from '../image/progress';

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerImageCommands(program: Command): void {
  program
    .command('pull')
    .description('pull an image from a registry into the local store')
    .argument('<image>', 'NAME[:TAG|@DIGEST], as docker pull takes it')
    .option('--platform <os/arch[/variant]>', 'the platform to pull from a multi-platform image (default: this host)')
    .option('-q, --quiet', 'print only the image name')
    .option('--insecure-registry <host[:port]>', 'reach this registry over plain HTTP (repeatable; also $VMRUN_INSECURE_REGISTRIES)', collect, [])
    .action(async (image: string, opts: { platform?: string; quiet?: boolean; insecureRegistry: string[] }) => {
      const { pullImage } = await import('../image/store');
      const result = await pullImage(image, { platform: opts.platform, progress: opts.quiet ? false : undefined, insecureRegistries: opts.insecureRegistry });
      if (!opts.quiet) {
        const fetched = result.layers.some((l) => !l.existed);
        console.log(`Digest: ${result.repoDigest}`);
        console.log(`Status: ${fetched ? 'Downloaded newer image' : 'Image is up to date'} for ${image}`);
      }
      console.log(result.reference);
    });

  program
    .command('images')
    .description('list the images in the local store')
    .option('--digests', 'show whole digests')
    .option('--format <format>', "'table', or 'json' for one JSON object per line", 'table')
    .action(async (opts: { digests?: boolean; format: string }) => {
      const { listImages } = await import('../image/store');
      const images = await listImages();
      if (opts.format === 'json') {
        for (const image of images) console.log(JSON.stringify(image));
        return;
      }
      if (opts.format !== 'table') throw new ImageError(`unknown --format ${JSON.stringify(opts.format)}: use table or json`);
      const rows = images.map((image) => [
        image.repository,
        image.tag ?? '<none>',
        opts.digests ? image.digest : image.digest.slice('sha256:'.length, 'sha256:'.length + 12),
        image.created ? ago(image.created) : 'N/A',
        humanSize(image.size),
      ]);
      console.log(table([['REPOSITORY', 'TAG', 'DIGEST', 'CREATED', 'SIZE'], ...rows]));
    });

  program
    .command('rmi')
    .description('remove image names from the local store (vmrun image prune frees their space)')
    .argument('<image...>')
    .action(async (names: string[]) => {
      const { removeImage } = await import('../image/store');
      const failures: string[] = [];
      for (const name of names) {
        try {
          console.log(`Untagged: ${await removeImage(name)}`);
        } catch (err) {
          if (!(err instanceof VmrunError)) throw err;
          failures.push(err.message);
        }
      }
      if (failures.length) throw new ImageError(failures.join('; '));
    });

  program
    .command('image')
    .description('manage images')
    .command('prune')
    .description('delete the blobs and unpacked layers that no image name needs')
    .action(async () => {
      const { pruneImages } = await import('../image/store');
      const { pruneUnpackedLayers } = await import('../run/prune-layers');
      const blobs = await pruneImages();
      console.log(`Total reclaimed space: ${humanSize(blobs + (await pruneUnpackedLayers()))}`);
    });

  program
    .command('load')
    .description('load images from a docker-archive or oci-archive tar (gzip or not), or an OCI layout directory')
    .requiredOption('-i, --input <path>', 'the archive or directory')
    .option('--name <repository>', 'repository for images an OCI layout names by tag alone')
    .option('--platform <os/arch[/variant]>', 'the platform to load from a multi-platform image (default: this host)')
    .option('-q, --quiet', 'print only the image names')
    .action(async (opts: { input: string; name?: string; platform?: string; quiet?: boolean }) => {
      const { loadArchive } = await import('../image/store');
      for (const reference of await loadArchive(opts.input, { name: opts.name, platform: opts.platform })) {
        console.log(opts.quiet ? reference : `Loaded image: ${reference}`);
      }
    });
}

/** Columns padded as docker's tabwriter pads them. */
function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] + 3))).join('')).join('\n');
}

/** docker's "3 days ago". */
function ago(created: string): string {
  const seconds = (Date.now() - Date.parse(created)) / 1000;
  if (!Number.isFinite(seconds)) return 'N/A';
  const units: [number, string][] = [[365 * 86400, 'year'], [30 * 86400, 'month'], [7 * 86400, 'week'], [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [size, unit] of units) {
    const n = Math.floor(seconds / size);
    if (n >= 1) return `${n} ${unit}${n > 1 ? 's' : ''} ago`;
  }
  return 'Less than a minute ago';
}
