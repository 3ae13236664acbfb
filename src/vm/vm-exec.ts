/**
 * `exec` in a VM: the agent, told EXEC with an id, forks a helper that calls in on that exec's
 * own four vsock ports (src/agent/channels.ts), takes the process's spec there, and runs it in
 * the sandbox beside the main process (guest/agent/exec.c).
 */
import { EXEC_ID_MAX, execPorts } from '../agent/channels';
import { FrameType, u32 } from '../agent/frames';
import { processControl, relayProcess } from '../agent/process';
import type { RunControl } from '../agent/process-io';
import { AgentSession } from '../agent/session';
import { sendExecSpec } from '../agent/specs';
import { AgentError } from '../errors';
import type { AgentListener } from './agent-listener';
import type { MachineExit } from './machine';

/** How long the agent gets to call in for an exec: a fork and a connection, even under emulation. */
const CALL_IN_MS = 60_000;

export function vmExec(listener: AgentListener, session: AgentSession, ended: Promise<MachineExit>): RunControl['exec'] {
  let lastId = 0;
  return async (spec, stdio, onStart) => {
    if (lastId >= EXEC_ID_MAX) throw new AgentError(`a sandbox runs at most ${EXEC_ID_MAX} execs: start another`);
    const id = ++lastId;
    const ports = execPorts(id);
    const all = [ports.control, ports.stdin, ports.stdout, ports.stderr];
    const gone = ended.then((exit): never => {
      throw new AgentError(`the VM ended (${exit.kind}) before the exec'd process did`);
    });
    gone.catch(() => {});
    await listener.listen(all);
    let exec: AgentSession | undefined;
    try {
      session.send(FrameType.Exec, u32(id));
      exec = new AgentSession(await Promise.race([listener.accept(ports.control), gone, callInDeadline(id)]));
      const s = exec;
      gone.catch((err: Error) => s.fail(err));
      sendExecSpec(s, spec);
      onStart?.(processControl(s));
      const sockets = { stdin: listener.accept(ports.stdin), stdout: listener.accept(ports.stdout), stderr: listener.accept(ports.stderr) };
      return await relayProcess(s, sockets, stdio, gone);
    } finally {
      exec?.close();
      listener.close(all);
    }
  };
}

function callInDeadline(id: number): Promise<never> {
  return new Promise((_, reject) => {
    setTimeout(() => reject(new AgentError(`the guest agent did not start exec ${id} within ${CALL_IN_MS / 1000} s (see the guest console: --log-level debug)`)), CALL_IN_MS).unref();
  });
}
