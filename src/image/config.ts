/**
 * The parts of an image's config (OCI image-spec config.md; Docker's is the same shape) that
 * decide how its process runs, checked field by field: the config is input we do not control.
 */
import { ImageError } from '../errors';

export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  user: string;
  /** Uncompressed layer digests, lowest layer first. */
  diffIds: string[];
  os: string;
  architecture: string;
}

export function parseImageConfig(json: unknown, what: string): ImageConfig {
  const root = object(json, what);
  const config = root.config === undefined || root.config === null ? {} : object(root.config, `${what} .config`);
  const rootfs = object(root.rootfs, `${what} .rootfs`);
  if (rootfs.type !== 'layers') throw new ImageError(`${what}: rootfs.type must be "layers"`);
  return {
    entrypoint: strings(config.Entrypoint, `${what} .config.Entrypoint`),
    cmd: strings(config.Cmd, `${what} .config.Cmd`),
    env: strings(config.Env, `${what} .config.Env`),
    workingDir: string(config.WorkingDir, `${what} .config.WorkingDir`),
    user: string(config.User, `${what} .config.User`),
    diffIds: strings(rootfs.diff_ids, `${what} .rootfs.diff_ids`),
    os: string(root.os, `${what} .os`),
    architecture: string(root.architecture, `${what} .architecture`),
  };
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ImageError(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

function strings(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new ImageError(`${what} must be a list of strings`);
  return value as string[];
}

function string(value: unknown, what: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new ImageError(`${what} must be a string`);
  return value;
}
