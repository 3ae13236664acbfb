/**
 * The files docker writes into every container's /etc: /etc/hostname, /etc/hosts and
 * /etc/resolv.conf. One producer for both runtimes: the VM's agent gets their text in the run
 * spec (HOSTNAME, HOSTS, RESOLV), the container runtime bind-mounts them; the runtime matrix test
 * compares them byte for byte.
 */
import type { RunSpec } from './specs';

export function etcFiles(spec: RunSpec): { hostname: string; hosts: string; 'resolv.conf': string } {
  return {
    hostname: `${spec.hostname}\n`,
    hosts:
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n` +
      spec.hosts.map((h) => `${h.address}\t${h.name}\n`).join('') +
      `127.0.1.1\t${spec.hostname}\n`,
    'resolv.conf': spec.resolvConf,
  };
}
