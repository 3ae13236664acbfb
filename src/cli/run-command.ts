/**
 * `vmrun [run] [OPTIONS] IMAGE [COMMAND [ARG...]]`: docker run's flags, over either runtime.
 * Options after IMAGE belong to the command.
 */
import { Option, type Command } from 'commander';

import { UsageError } from '../errors';
import { configureLog, type LogFormat } from '../log';
import { parseNetworkFlags, type PortMapping } from '../network/options';
import { parseVolumeFlags } from '../volumes/options';
import { environment } from '../run/env-file';
import { openImage, type PullPolicy } from '../run/resolve-image';
import { parseCpus, parseMemory } from '../run/resources';
import { RUNTIMES, runOn, type RuntimeName } from '../run/runtimes';
import { makeRunSpec, type RunSpec } from '../run/spec';
import type { Image } from '../image/layout';
import type { RunControl, Stdio } from '../agent/process-io';
import { supervise } from '../run/supervise';
import { forwardResizes, onUserSignal, terminalSize, withRawTerminal } from './terminal';

export interface RunFlags {
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  memory?: string;
  cpus?: string;
  hostname?: string;
  platform?: string;
  pull: PullPolicy;
  name?: string;
  rm?: boolean;
  readOnly?: boolean;
  runtime: RuntimeName;
  network?: string;
  net?: string;
  publish: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHost: string[];
  volume: string[];
  mount: string[];
  tmpfs: string[];
  kernel?: string;
  coldBoot?: boolean;
  timeout?: string;
  logLevel?: string;
  logFormat: LogFormat;
}

const collect = (value: string, all: string[]) => [...all, value];

export function registerRunCommand(program: Command): void {
  program
    .command('run', { isDefault: true })
    .description('run a command from IMAGE in a new microVM (or container), as docker run does')
    .argument('<image>', 'oci:DIR[:REF] (an OCI image layout) or a registry reference')
    .argument('[command...]', 'the command and its arguments (default: the image\'s)')
    .passThroughOptions()
    .option('-d, --detach', 'run in the background and print the sandbox id (then: vmrun ps, exec, logs, stop, rm)')
    .option('-i, --interactive', 'pass stdin to the process')
    .option('-t, --tty', 'run the process on a pseudo-terminal')
    .option('-e, --env <NAME[=VALUE]>', 'set a variable (a bare NAME passes the host\'s value); repeatable', collect, [])
    .option('--env-file <file>', 'read variables from a file, one NAME[=VALUE] a line; repeatable', collect, [])
    .option('-w, --workdir <dir>', 'working directory (created if missing)')
    .option('-u, --user <user>', 'name|uid[:group|gid] inside the image')
    .option('--entrypoint <command>', 'replace the image\'s entrypoint (and clear its command)')
    .option('-m, --memory <bytes>', 'memory limit, e.g. 512m (VM: its RAM; container: its cgroup limit)')
    .option('--cpus <number>', 'CPU limit (VM: vCPUs, rounded up; container: CPU quota)')
    .option('--hostname <name>', 'host name inside')
    .option('--network <mode>', 'bridge (the default: outbound access, published ports) or none (only lo)')
    .addOption(new Option('--net <mode>', 'docker\'s old name for --network').hideHelp())
    .option('-p, --publish <[ip:]hostPort:containerPort[/proto]>', 'publish a port on the host (containerPort alone: a free host port, printed); repeatable', collect, [])
    .option('--dns <ip>', 'a nameserver for /etc/resolv.conf; repeatable', collect, [])
    .option('--dns-search <domain>', 'a search domain for /etc/resolv.conf (. for none); repeatable', collect, [])
    .option('--dns-option <option>', 'a resolver option for /etc/resolv.conf (e.g. ndots:2); repeatable', collect, [])
    .option('--add-host <name:ip>', 'an /etc/hosts entry (ip host-gateway: the host\'s loopback); repeatable', collect, [])
    .option('-v, --volume <hostPath:target[:ro]>', 'bind a host file or directory (VM: virtio-fs, read-only enforced by the host); repeatable', collect, [])
    .option('--mount <type=bind|tmpfs,...>', 'type=bind,source=PATH,target=PATH[,readonly] or type=tmpfs,target=PATH[,tmpfs-size=N]; repeatable', collect, [])
    .option('--tmpfs <target[:options]>', 'a tmpfs (default options noexec,nosuid,nodev); repeatable', collect, [])
    .option('--platform <os/arch>', 'the image platform (this host\'s only)')
    .addOption(new Option('--pull <policy>', 'pull registry images').choices(['always', 'missing', 'never']).default('missing'))
    .option('--name <name>', 'a name for the run (the container\'s name under runc)')
    .option('--rm', 'with -d: remove the sandbox when it ends (a run in the foreground always is)')
    .option('--read-only', 'keep the root filesystem read-only')
    .addOption(new Option('--runtime <runtime>', 'where to run').choices(RUNTIMES).default('vm'))
    .option('--kernel <path>', 'VM runtime: a guest kernel other than the cached one')
    .option('--cold-boot', 'VM runtime: boot the guest kernel instead of restoring the agent snapshot')
    .option('--timeout <seconds>', 'kill the run after this long; vmrun then exits 124')
    .addOption(new Option('--log-level <level>', 'vmrun\'s own log, on stderr').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
    .addOption(new Option('--log-format <format>', 'log lines as JSON or for people').choices(['json', 'pretty']).default('json'))
    .action(async (imageRef: string, command: string[], flags: RunFlags) => {
      if (flags.detach) {
        const { detach } = await import('./detach');
        process.exitCode = await detach(imageRef, command, flags);
      } else {
        process.exitCode = await runCommand(imageRef, command, flags);
      }
    });
}

/** A run checked and its image opened: plain data, so that a detached run's supervisor takes it as is. */
export interface PreparedRun {
  image: Image;
  spec: RunSpec;
  runtime: RuntimeName;
  resources: { memoryBytes?: number; cpus?: number; kernel?: string; coldBoot?: boolean };
  /** --name: the container's name under runc. */
  name?: string;
}

/** Everything the flags say, checked, with the image opened (pulled as --pull says): a run ready to start. */
export async function prepareRun(imageRef: string, command: string[], flags: RunFlags): Promise<PreparedRun> {
  const resources = {
    memoryBytes: flags.memory === undefined ? undefined : parseMemory(flags.memory),
    cpus: flags.cpus === undefined ? undefined : parseCpus(flags.cpus),
    kernel: flags.kernel,
    coldBoot: flags.coldBoot,
  };
  runTimeoutMs(flags);  // checked now, not after a long unpack
  if (flags.name !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(flags.name)) {
    throw new UsageError(`invalid name ${JSON.stringify(flags.name)}: use letters, digits, _ . and -, starting with a letter or digit`);
  }
  const { network, hosts, dns } = parseNetworkFlags({ network: flags.network ?? flags.net, publish: flags.publish, dns: flags.dns, addHost: flags.addHost });
  const volumes = parseVolumeFlags({ volume: flags.volume, mount: flags.mount, tmpfs: flags.tmpfs });
  const image = await openImage(imageRef, { pull: flags.pull, platform: flags.platform });
  const spec = makeRunSpec(image.config, {
    command,
    entrypoint: flags.entrypoint,
    env: environment(flags.envFile, flags.env),
    user: flags.user,
    workdir: flags.workdir,
    hostname: flags.hostname,
    tty: flags.tty ? terminalSize() : undefined,
    readOnly: flags.readOnly,
    network,
    hosts,
    dns,
    dnsSearch: flags.dnsSearch.map((d) => checkDnsWord(d, '--dns-search')),
    dnsOptions: flags.dnsOption.map((o) => checkDnsWord(o, '--dns-option')),
    volumes,
  });
  return { image, spec, runtime: flags.runtime, resources, name: flags.name };
}

/** Starts a prepared run, with `onStart` told the run's control once the process runs. */
export function startRun(run: PreparedRun, stdio: Stdio, onStart: (control: RunControl) => void, runcName = run.name): Promise<{ exitCode: number }> {
  return runOn(run.runtime, run.image, run.spec, stdio, { ...run.resources, name: runcName, onPublished: printPicked }, onStart);
}

async function runCommand(imageRef: string, command: string[], flags: RunFlags): Promise<number> {
  configureLog({ level: flags.logLevel, format: flags.logFormat });
  const run = await prepareRun(imageRef, command, flags);
  const timeoutMs = runTimeoutMs(flags);
  const stdio = { stdin: flags.interactive ? process.stdin : null, stdout: process.stdout, stderr: process.stderr };
  let stopResizes: (() => void) | undefined;
  try {
    return await withRawTerminal(!!(flags.tty && flags.interactive), () =>
      supervise((onStart) => startRun(run, stdio, onStart), {
        timeoutMs,
        onSignal: onUserSignal,
        onStart: (control) => {
          if (flags.tty) stopResizes = forwardResizes(control);
        },
      }),
    );
  } finally {
    stopResizes?.();
    // Nothing of the user's stdin is wanted any more; reading it must not keep vmrun alive.
    if (flags.interactive) process.stdin.destroy();
  }
}

/** One word for a resolv.conf line: no spaces, no line breaks. */
function checkDnsWord(word: string, flag: string): string {
  if (!/^[^\s#;]+$/.test(word)) throw new UsageError(`invalid ${flag} ${JSON.stringify(word)}: one word, no spaces`);
  return word;
}

export function runTimeoutMs(flags: RunFlags): number | undefined {
  return flags.timeout === undefined ? undefined : seconds(flags.timeout) * 1000;
}

function seconds(text: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value > 0)) throw new UsageError(`invalid --timeout ${JSON.stringify(text)}: expected a number of seconds above 0`);
  return value;
}

/** docker prints nothing, but `docker port` tells; here the host ports picked for `-p PORT` go to stderr. */
function printPicked(ports: PortMapping[]): void {
  for (const p of ports) {
    if (!p.picked) continue;
    process.stderr.write(`vmrun: ${p.containerPort}/${p.protocol} published on ${p.hostIp}:${p.hostPort}\n`);
  }
}
