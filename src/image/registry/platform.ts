/**
 * Platforms (`os/arch[/variant]`) and picking one from an index, with containerd's normalisation:
 * `aarch64` is `arm64` and arm64's `v8` is no variant at all, `armhf` is `arm/v7`, `x86_64` is `amd64`.
 */
import { ImageError } from '../../errors';
import { hostPlatform, type Descriptor } from '../layout';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const ARCH_ALIASES: Record<string, Platform['architecture']> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', i386: '386', armhf: 'arm', armel: 'arm' };

function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  const given = p.architecture.toLowerCase();
  const architecture = ARCH_ALIASES[given] ?? given;
  let variant = p.variant?.toLowerCase() || undefined;
  if (given === 'armhf') variant ??= 'v7';
  if (given === 'armel') variant ??= 'v6';
  if (architecture === 'arm64' && (variant === '8' || variant === 'v8' || variant === 'v8.0')) variant = undefined;
  if (architecture === 'arm') variant ??= 'v7';
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new ImageError(`invalid platform ${JSON.stringify(text)}: expected os/arch[/variant], such as linux/arm64 or linux/arm/v7`);
  }
  return normalizePlatform({ os: parts[0], architecture: parts[1], variant: parts[2] });
}

export function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** The platform images are pulled for when none is asked for: this host's. */
export function defaultPlatform(): Platform {
  return normalizePlatform(hostPlatform());
}

export function samePlatform(a: Platform, b: Platform): boolean {
  const [x, y] = [normalizePlatform(a), normalizePlatform(b)];
  return x.os === y.os && x.architecture === y.architecture && x.variant === y.variant;
}

/** The index entry for `want`, or an ImageError listing what the index offers. */
export function choosePlatform(entries: Descriptor[], want: Platform, name: string): Descriptor {
  // Attestations (buildx provenance, SBOMs) sit in indexes as unknown/unknown entries.
  const images = entries.filter((d) => d.platform?.os && d.platform.architecture && d.platform.os !== 'unknown');
  const match = images.find((d) => samePlatform(d.platform as Platform, want));
  if (match) return match;
  const offered = images.map((d) => platformString(normalizePlatform(d.platform as Platform))).join(', ');
  throw new ImageError(`${name} has no ${platformString(want)} image (it has ${offered || 'none'}): choose one with --platform`);
}
