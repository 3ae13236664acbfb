/**
 * Image references (`[HOST[:PORT]/]PATH[:TAG][@DIGEST]`), parsed and normalised as docker does
 * (distribution/reference's grammar and ParseNormalizedNamed): `python:3.10` is
 * `docker.io/library/python:3.10`, a name without tag or digest means `:latest`.
 */
import { InvalidReferenceError } from '../errors';

export const DOCKER_HUB = 'docker.io';
/** distribution's NameTotalLengthMax: the whole name, domain included. */
const NAME_MAX = 255;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;
const IMAGE_ID = /^[a-f0-9]{64}$/;

export interface Reference {
  /** `docker.io`, `registry.example.com`, `127.0.0.1:5000`. */
  domain: string;
  /** The repository inside the registry: `library/python`. */
  path: string;
  /** Absent only when the reference names a digest and no tag. */
  tag?: string;
  digest?: string;
}

export function parseReference(input: string): Reference {
  const bad = (why: string) => new InvalidReferenceError(`invalid reference ${JSON.stringify(input)}: ${why}`);
  if (input === '') throw bad('it is empty; expected [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST]');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`digest ${JSON.stringify(digest)} is malformed: expected sha256:<64 hex digits>`);
    if (!SHA256.test(digest)) throw bad(`digest ${JSON.stringify(digest)} is not supported: expected sha256:<64 lowercase hex digits>`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag ${JSON.stringify(tag)} is malformed: 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -`);
  }
  if (IMAGE_ID.test(rest)) throw bad('a 64-digit hex string is an image ID, not a repository name');
  let { domain, path } = splitDomain(rest);
  if (domain !== DOCKER_HUB && !DOMAIN.test(domain)) throw bad(`registry host ${JSON.stringify(domain)} is malformed: expected HOST or HOST:PORT`);
  if (path === '') throw bad('the repository name is empty');
  if (path.toLowerCase() !== path) throw bad(`repository name ${JSON.stringify(path)} must be lowercase`);
  for (const component of path.split('/')) {
    if (component === '') throw bad('the repository name has an empty path component (a leading, trailing or double /)');
    if (!PATH_COMPONENT.test(component)) {
      throw bad(`path component ${JSON.stringify(component)} is malformed: lowercase letters and digits, separated by ., _, __ or -`);
    }
  }
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  const name = `${domain}/${path}`;
  if (name.length > NAME_MAX) throw bad(`the repository name is ${name.length} characters, over the limit of ${NAME_MAX}`);
  return { domain, path, tag: tag ?? (digest ? undefined : 'latest'), digest };
}

/** docker's splitDockerDomain: the first component is a host only if it looks like one. */
function splitDomain(name: string): { domain: string; path: string } {
  const slash = name.indexOf('/');
  const first = name.slice(0, slash);
  if (slash < 0 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    return { domain: DOCKER_HUB, path: name };
  }
  return { domain: first === 'index.docker.io' ? DOCKER_HUB : first, path: name.slice(slash + 1) };
}

/** `docker.io/library/python`. */
export function repositoryName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/**
 * The reference's name in the store: `NAME:TAG`, or `NAME@DIGEST` when it has a digest (a tag
 * beside a digest is ignored, as docker pull does).
 */
export function canonicalReference(ref: Reference): string {
  return ref.digest ? `${repositoryName(ref)}@${ref.digest}` : `${repositoryName(ref)}:${ref.tag}`;
}

/** The short form docker shows: `python` for docker.io/library/python, `user/app` for docker.io/user/app. */
export function familiarName(ref: Reference): string {
  if (ref.domain !== DOCKER_HUB) return repositoryName(ref);
  return ref.path.startsWith('library/') && ref.path.split('/').length === 2 ? ref.path.slice('library/'.length) : ref.path;
}
