/** What a benchmark ran on: every report states it, so that numbers are never read without it. */
import fs from 'node:fs';
import os from 'node:os';

export interface HostInfo {
  hostname: string;
  kernel: string;
  cpu: string;
  cpus: number;
  memTotalMiB: number;
  /** KVM inside a VM (the rig, or a CPU with the hypervisor flag): figures far slower than bare metal. */
  nestedKvm: boolean;
  /** Why nestedKvm is what it is. */
  nestedWhy: string;
  cgroup: 'v1' | 'v2' | 'none';
}

export function hostInfo(): HostInfo {
  const cpuinfo = readOr('/proc/cpuinfo');
  const hypervisor = /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo);
  const rig = process.env.VMRUN_RIG === '1';
  return {
    hostname: os.hostname(),
    kernel: os.release(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    nestedKvm: rig || hypervisor,
    nestedWhy: rig ? 'inside the nested-KVM rig (VMRUN_RIG=1)' : hypervisor ? 'the CPU has the hypervisor flag' : 'bare metal',
    cgroup: fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : fs.existsSync('/sys/fs/cgroup/memory') ? 'v1' : 'none',
  };
}

/** One line for the top of a table or chart. */
export function hostLine(host: HostInfo): string {
  return `${host.hostname}: Linux ${host.kernel}, ${host.cpu} x${host.cpus}, ${host.memTotalMiB} MiB, cgroup ${host.cgroup}, ` +
    (host.nestedKvm ? `NESTED KVM (${host.nestedWhy}; expect 20-50x slower VMs)` : 'KVM on bare metal');
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
