/**
 * Where each of the agent's four channels is (guest/agent/channel.h names the same numbers): in a
 * VM, a vsock port on the host that the agent connects to; under runc, a descriptor the agent
 * inherits (`runc run --preserve-fds`): control always, stdio in run mode only. After stdio
 * comes the agent binary itself, which runc executes from /proc/self/fd/N.
 */
export enum AgentPort {
  Control = 1024,
  Stdin = 1025,
  Stdout = 1026,
  Stderr = 1027,
}

export enum AgentFd {
  Control = 3,
  Stdin = 4,
  Stdout = 5,
  Stderr = 6,
}

/** The highest exec id (guest/agent/channel.h's EXEC_ID_MAX). */
export const EXEC_ID_MAX = 4096;

/** An exec's four vsock ports: the main ones moved up by 4 per id (channel.h's EXEC_PORT_STRIDE). */
export function execPorts(id: number): { control: number; stdin: number; stdout: number; stderr: number } {
  const base = AgentPort.Control + 4 * id;
  return { control: base, stdin: base + 1, stdout: base + 2, stderr: base + 3 };
}
