/**
 * Where a registry domain is reached: HTTPS, except over loopback and for registries the user
 * calls insecure (plain HTTP there, as docker allows); docker.io through its mirrors first, then
 * registry-1.docker.io.
 */
import { RegistryError } from '../../errors';
import { DOCKER_HUB } from '../reference';

const HUB_API = 'https://registry-1.docker.io';

export interface Endpoint {
  /** `https://host[:port]` with no trailing slash: the API is at `${base}/v2/`. */
  base: string;
  /** The host whose credentials apply (`docker.io` for Docker Hub itself). */
  credentialsHost: string;
  mirror: boolean;
}

export interface EndpointOptions {
  /** `host[:port]` of registries to reach over plain HTTP, beside those in $VMRUN_INSECURE_REGISTRIES. */
  insecureRegistries?: string[];
  /** URLs of Docker Hub mirrors, tried in order; default $VMRUN_REGISTRY_MIRRORS. */
  mirrors?: string[];
}

function envList(name: string): string[] {
  return (process.env[name] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

/** `host[:port]` less the port (IPv6 stays bracketed). */
function hostname(host: string): string {
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
}

function isLoopback(host: string): boolean {
  const name = hostname(host);
  return name === 'localhost' || name === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(name);
}

function isInsecure(host: string, insecure: string[]): boolean {
  return isLoopback(host) || insecure.includes(host) || insecure.includes(hostname(host));
}

/** The endpoints to try for `domain`, in order. */
export function endpointsFor(domain: string, options: EndpointOptions = {}): Endpoint[] {
  const insecure = [...envList('VMRUN_INSECURE_REGISTRIES'), ...(options.insecureRegistries ?? [])];
  if (domain !== DOCKER_HUB) {
    return [{ base: `${isInsecure(domain, insecure) ? 'http' : 'https'}://${domain}`, credentialsHost: domain, mirror: false }];
  }
  const mirrors = (options.mirrors ?? envList('VMRUN_REGISTRY_MIRRORS')).map((m): Endpoint => {
    let url: URL;
    try {
      url = new URL(m);
    } catch {
      throw new RegistryError(`registry mirror ${JSON.stringify(m)} is not a URL: give http(s)://HOST[:PORT]`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RegistryError(`registry mirror ${m} must be an http(s) URL`);
    if (url.protocol === 'http:' && !isInsecure(url.host, insecure)) {
      throw new RegistryError(`registry mirror ${m} uses plain HTTP: only loopback and insecure registries may (VMRUN_INSECURE_REGISTRIES)`);
    }
    return { base: `${url.origin}${url.pathname.replace(/\/+$/, '')}`, credentialsHost: url.host, mirror: true };
  });
  return [...mirrors, { base: HUB_API, credentialsHost: DOCKER_HUB, mirror: false }];
}
