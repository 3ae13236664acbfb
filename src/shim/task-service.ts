/**
 * containerd's Task service (runtime v2, containerd.task.v2.Task) for one task: a vmrun VM
 * whose root is the bundle's rootfs, shared over virtio-fs. Create boots the VM with a main
 * process that only idles; Start runs the task's process in it, and each Exec another, all
 * through the agent's EXEC. The task's process ending ends the VM, as init's end ends a runc
 * container. Pause, Resume, Checkpoint and Update answer Unimplemented, which containerd reads
 * as ErrNotImplemented.
 */
import fs from 'node:fs';
import path from 'node:path';

import { create, toBinary } from '@bufbuild/protobuf';
import { AnySchema, timestampFromDate } from '@bufbuild/protobuf/wkt';

import type { RunControl } from '../agent/process-io';
import type { RunSpec } from '../agent/specs';
import { log } from '../log';
import { discard } from '../streams';
import { runInVm } from '../vm/runtime';
import type { EventPublisher } from './events';
import { TaskCreateSchema, TaskDeleteSchema, TaskExecAddedSchema, TaskExecStartedSchema, TaskExitSchema, TaskStartSchema } from './gen/github.com/containerd/containerd/api/events/task_pb';
import { Status } from './gen/github.com/containerd/containerd/api/types/task/task_pb';
import { MetricsSchema } from './gen/github.com/containerd/cgroups/v2/stats/metrics_pb';
import type {
  CloseIORequest,
  ConnectRequest,
  CreateTaskRequest,
  DeleteRequest,
  ExecProcessRequest,
  KillRequest,
  PidsRequest,
  ResizePtyRequest,
  ShutdownRequest,
  StartRequest,
  StateRequest,
  StatsRequest,
  Task,
  WaitRequest,
} from './gen/github.com/containerd/containerd/runtime/v2/task/shim_pb';
import { processFromOci, runSpecFromOci, type OciProcess, type OciResources, type OciSpec } from './oci-spec';
import { ShimProcess, type Exit } from './process';
import { mountRootfs, unmountRootfs } from './rootfs';
import { Code, TtrpcError, type ServiceImpl } from './ttrpc';

/** containerd's type URL for an exec's process spec (typeurl registers specs.Process as JSON). */
const PROCESS_SPEC_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';

/** The VM of a created task. */
interface TaskVm {
  control: RunControl;
  /** Settles once the VM is gone. */
  finished: Promise<unknown>;
}

export interface ShimOptions {
  /** The task id containerd started this shim for (its -id). */
  id: string;
  events: EventPublisher;
  /** Called once Shutdown may end the shim: the task is deleted, or never was. */
  shutdown: () => void;
}

type TaskMethods = typeof Task.method;

export class TaskService implements ServiceImpl<TaskMethods> {
  private bundle = '';
  /** The container's root directory, and whether we mounted it (and unmount it at the end). */
  private root?: { path: string; mounted: boolean };
  private vm?: TaskVm;
  private init?: ShimProcess;
  private readonly execs = new Map<string, ShimProcess>();
  private deleted = false;

  constructor(private readonly options: ShimOptions) {}

  async create(req: CreateTaskRequest) {
    if (this.init) throw new TtrpcError(Code.AlreadyExists, `task ${req.id} already exists`);
    if (req.id !== this.options.id) throw new TtrpcError(Code.InvalidArgument, `this shim serves task ${this.options.id}, not ${req.id}`);
    if (req.checkpoint) throw new TtrpcError(Code.Unimplemented, 'restoring a task from a checkpoint is not supported by vmrun');
    const spec = readBundleSpec(req.bundle);
    let run;
    try {
      run = runSpecFromOci(spec, req.terminal);
    } catch (err) {
      throw new TtrpcError(Code.InvalidArgument, errorText(err));
    }
    const root = { path: path.resolve(req.bundle, spec.root?.path || 'rootfs'), mounted: req.rootfs.length > 0 };
    await mountRootfs(root.path, req.rootfs).catch((err: unknown) => {
      throw new TtrpcError(Code.InvalidArgument, errorText(err));
    });
    this.bundle = req.bundle;
    this.root = root;
    this.init = new ShimProcess('', run.process, req);
    try {
      this.vm = await bootVm(root.path, run.spec, run.resources);
    } catch (err) {
      this.init = undefined;
      await this.teardown();
      throw new TtrpcError(Code.Unknown, `starting the task's VM failed: ${errorText(err)}`);
    }
    // A VM that ends on its own (it crashed, or was killed from the host) ends every process.
    void this.vm.finished.finally(() => this.vmGone());
    const pid = this.pid();
    this.options.events.publish('/tasks/create', TaskCreateSchema, {
      containerId: req.id,
      bundle: req.bundle,
      rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      pid,
    });
    return { pid };
  }

  async start(req: StartRequest) {
    const p = this.process(req.id, req.execId);
    const vm = this.runningVm();
    await p.start(vm.control, (exit) => this.exited(p, exit));
    const pid = this.pid();
    if (p === this.init) this.options.events.publish('/tasks/start', TaskStartSchema, { containerId: this.options.id, pid });
    else this.options.events.publish('/tasks/exec-started', TaskExecStartedSchema, { containerId: this.options.id, execId: p.execId, pid });
    return { pid };
  }

  async state(req: StateRequest) {
    const p = this.process(req.id, req.execId);
    return {
      id: p === this.init ? this.options.id : p.execId,
      bundle: this.bundle,
      pid: this.pid(),
      status: { created: Status.CREATED, running: Status.RUNNING, stopped: Status.STOPPED }[p.status],
      stdin: p.fifos.stdin,
      stdout: p.fifos.stdout,
      stderr: p.fifos.stderr,
      terminal: p.terminal,
      exitStatus: p.exit?.status ?? 0,
      exitedAt: p.exit && timestampFromDate(p.exit.at),
      execId: p.execId,
    };
  }

  async kill(req: KillRequest) {
    const p = this.process(req.id, req.execId);
    if (p.status === 'created') {
      p.abandon(req.signal, (exit) => this.exited(p, exit));
      return {};
    }
    p.signal(req.signal);
    if (req.all && p === this.init) for (const e of this.execs.values()) if (e.status === 'running') e.signal(req.signal);
    return {};
  }

  async exec(req: ExecProcessRequest) {
    this.process(req.id, '');
    this.runningVm();
    if (!req.execId) throw new TtrpcError(Code.InvalidArgument, 'an exec needs an exec id');
    if (this.execs.has(req.execId)) throw new TtrpcError(Code.AlreadyExists, `exec ${req.execId} already exists`);
    let process;
    try {
      if (req.spec?.typeUrl !== PROCESS_SPEC_URL) throw new Error(`its spec is ${req.spec ? `of type ${req.spec.typeUrl}` : 'missing'}, not an OCI process`);
      const oci = JSON.parse(Buffer.from(req.spec.value).toString('utf8')) as OciProcess;
      process = processFromOci({ ...oci, terminal: req.terminal }, `exec ${req.execId}`);
    } catch (err) {
      throw new TtrpcError(Code.InvalidArgument, `exec ${req.execId}: ${errorText(err)}`);
    }
    this.execs.set(req.execId, new ShimProcess(req.execId, process, req));
    this.options.events.publish('/tasks/exec-added', TaskExecAddedSchema, { containerId: this.options.id, execId: req.execId });
    return {};
  }

  async wait(req: WaitRequest) {
    const exit = await this.process(req.id, req.execId).exited();
    return { exitStatus: exit.status, exitedAt: timestampFromDate(exit.at) };
  }

  async delete(req: DeleteRequest) {
    const p = this.process(req.id, req.execId);
    if (p.status === 'running') throw new TtrpcError(Code.FailedPrecondition, `cannot delete ${p === this.init ? 'task' : 'exec'} ${req.execId || req.id}: it is running (kill it first)`);
    p.abandon(9, (exit) => this.exited(p, exit));
    const exit = p.exit!;
    if (p !== this.init) {
      this.execs.delete(p.execId);
      return { pid: this.pid(), exitStatus: exit.status, exitedAt: timestampFromDate(exit.at) };
    }
    const pid = this.pid();
    await this.teardown();
    this.deleted = true;
    this.options.events.publish('/tasks/delete', TaskDeleteSchema, { containerId: this.options.id, pid, exitStatus: exit.status, exitedAt: timestampFromDate(exit.at) });
    return { pid, exitStatus: exit.status, exitedAt: timestampFromDate(exit.at) };
  }

  async pids(req: PidsRequest) {
    this.process(req.id, '');
    const pid = this.pid();
    // The guest's own processes are not host processes: the VMM stands for them all.
    return { processes: pid ? [{ pid }] : [] };
  }

  async closeIO(req: CloseIORequest) {
    const p = this.process(req.id, req.execId);
    if (req.stdin) p.closeStdin();
    return {};
  }

  async resizePty(req: ResizePtyRequest) {
    this.process(req.id, req.execId).resize(req.height, req.width);
    return {};
  }

  async stats(req: StatsRequest) {
    this.process(req.id, '');
    const metrics = create(MetricsSchema, vmmMetrics(this.pid()));
    return { stats: create(AnySchema, { typeUrl: MetricsSchema.typeName, value: toBinary(MetricsSchema, metrics) }) };
  }

  async connect(req: ConnectRequest) {
    if (req.id && req.id !== this.options.id) throw new TtrpcError(Code.NotFound, `task ${req.id} not found`);
    return { shimPid: process.pid, taskPid: this.pid(), version: '' };
  }

  async shutdown(req: ShutdownRequest) {
    if (this.init && !this.deleted && !req.now) return {};
    this.options.shutdown();
    return {};
  }

  async pause(): Promise<never> {
    throw new TtrpcError(Code.Unimplemented, 'pausing a vmrun task is not supported yet');
  }

  async resume(): Promise<never> {
    throw new TtrpcError(Code.Unimplemented, 'resuming a vmrun task is not supported yet');
  }

  async checkpoint(): Promise<never> {
    throw new TtrpcError(Code.Unimplemented, 'checkpointing a vmrun task is not supported yet');
  }

  async update(): Promise<never> {
    throw new TtrpcError(Code.Unimplemented, 'updating a vmrun task\'s resources is not supported yet: its VM is sized at create');
  }

  /** Tears everything down at once (the shim is going away). */
  async teardown(): Promise<void> {
    if (this.vm) {
      this.vm.control.stop();
      await this.vm.finished.catch(() => {});
      this.vm = undefined;
    }
    if (this.root?.mounted) await unmountRootfs(this.root.path);
    this.root = undefined;
  }

  private process(id: string, execId: string): ShimProcess {
    if (id !== this.options.id || !this.init || this.deleted) throw new TtrpcError(Code.NotFound, `task ${id} not found`);
    if (!execId) return this.init;
    const p = this.execs.get(execId);
    if (!p) throw new TtrpcError(Code.NotFound, `exec ${execId} of task ${id} not found`);
    return p;
  }

  private runningVm(): TaskVm {
    if (!this.vm || this.init?.status === 'stopped') throw new TtrpcError(Code.FailedPrecondition, `task ${this.options.id} has ended`);
    return this.vm;
  }

  private pid(): number {
    return this.vm?.control.pid() ?? 0;
  }

  private exited(p: ShimProcess, exit: Exit): void {
    this.options.events.publish('/tasks/exit', TaskExitSchema, {
      containerId: this.options.id,
      id: p === this.init ? this.options.id : p.execId,
      pid: this.pid(),
      exitStatus: exit.status,
      exitedAt: timestampFromDate(exit.at),
    });
    // Init's end is the task's: the VM, and every exec in it, go with it.
    if (p === this.init) this.vm?.control.stop();
  }

  private vmGone(): void {
    const gone = (p: ShimProcess) => p.abandon(9, (exit) => this.exited(p, exit));
    if (this.init) gone(this.init);
    for (const e of this.execs.values()) gone(e);
  }
}

function readBundleSpec(bundle: string): OciSpec {
  const file = path.join(bundle, 'config.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as OciSpec;
  } catch (err) {
    throw new TtrpcError(Code.InvalidArgument, `the bundle's ${file} cannot be read as an OCI spec: ${errorText(err)}`);
  }
}

/** Boots the task's VM, its main process idle; resolves once execs can start in it. */
async function bootVm(rootfs: string, spec: RunSpec, resources: OciResources): Promise<TaskVm> {
  let started!: (control: RunControl) => void;
  const control = new Promise<RunControl>((resolve) => (started = resolve));
  const finished = runInVm({ directory: rootfs }, spec, { stdin: null, stdout: discard(), stderr: discard() }, { ...resources, coldBoot: true }, started);
  finished.catch((err: unknown) => log.warn({ err: errorText(err) }, 'the task\'s VM ended with an error'));
  const ended = finished.then((): never => {
    throw new Error('the VM ended before its agent started');
  });
  const c = await Promise.race([control, ended]);
  await Promise.race([c.started, ended]);
  return { control: c, finished };
}

/** The VMM's CPU time and resident memory: what the task costs the host. */
function vmmMetrics(pid: number) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = BigInt(fields[11]) + BigInt(fields[12]); // utime, stime
    const rss = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0';
    const usec = (n: bigint) => (n * 1_000_000n) / 100n; // USER_HZ is 100 on Linux
    return {
      pids: { current: 1n },
      cpu: { usageUsec: usec(ticks), userUsec: usec(BigInt(fields[11])), systemUsec: usec(BigInt(fields[12])) },
      memory: { usage: BigInt(rss) * 1024n },
    };
  } catch {
    return {};
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
