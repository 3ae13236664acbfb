// vmrun-vmm: one VM per process, no Node in it. The addon starts it with the control socket on
// fd 3 and sends its config and files (native/kvm/control/messages.h). This process then
// becomes the supervisor: it makes the cgroup and the namespaces and forks the VMM proper, which
// jails itself, builds the machine and serves the control channel until the guest ends. The
// supervisor reports the VMM's pid first and its wait status last, then removes the cgroup.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "control/messages.h"
#include "control/wire.h"
#include "error.h"
#include "jail/cgroup.h"
#include "jail/jail.h"
#include "machine.h"
#include "seccomp/filter.h"

namespace {

using namespace vmm;

constexpr int kControlFd = 3;
// What the VMM process may use beyond guest RAM: its own heap and stacks, and the page cache its
// disk reads bring in (reclaimable).
constexpr uint64_t kMemoryOverheadBytes = 64ull << 20;

void Send(const control::Message& m) { control::Send(kControlFd, control::Encode(m)); }

void SendFailure(const std::exception& e) {
  control::Message m{control::Type::kFailed};
  m.failure.message = e.what();
  if (const auto* sys = dynamic_cast<const SysError*>(&e)) {
    m.failure.kind = control::Failure::Kind::kSys;
    m.failure.call = sys->call();
    m.failure.err = sys->err();
  } else if (dynamic_cast<const KvmUnavailable*>(&e)) {
    m.failure.kind = control::Failure::Kind::kKvmUnavailable;
  } else {
    m.failure.kind = control::Failure::Kind::kVmm;
  }
  try {
    Send(m);
  } catch (const std::exception&) {
    // The host is gone: nobody to tell.
  }
}

// The config's descriptors, in the order control::Config lists them.
struct ConfigFds {
  explicit ConfigFds(const control::Config& c, std::vector<Fd>& fds) : all(fds) {
    if (fds.size() != c.FdCount()) throw VmmError("the VMM's config came with the wrong number of files");
  }
  Fd Take() { return std::move(all[next++]); }
  int Peek(size_t i) const { return all[i].get(); }
  std::vector<Fd>& all;
  size_t next = 0;
};

MachineConfig BuildMachineConfig(const control::Config& c, ConfigFds& fds) {
  MachineConfig m;
  m.kvm = fds.Take();
  if (c.boots_kernel()) {
    m.kernel = c.kernel_name;
    m.kernel_fd = fds.Peek(fds.next++);
    if (c.has_initrd) {
      m.initrd = c.initrd_name;
      m.initrd_fd = fds.Peek(fds.next++);
    }
  }
  m.console_output = fds.Take();
  m.console_input = fds.Take();
  if (c.snapshot != control::Config::Snapshot::kNone) {
    SnapshotConfig snapshot;
    snapshot.mode = c.snapshot == control::Config::Snapshot::kTake ? SnapshotConfig::Mode::kTake : SnapshotConfig::Mode::kRestore;
    snapshot.state = fds.Take();
    snapshot.memory = fds.Take();
    snapshot.state_name = c.snapshot_state_name;
    snapshot.memory_name = c.snapshot_memory_name;
    snapshot.fingerprint = c.snapshot_fingerprint;
    m.snapshot = std::move(snapshot);
  }
  m.cmdline = c.cmdline;
  m.memory_mib = c.memory_mib;
  m.vcpus = c.vcpus;
  for (const control::Config::Drive& d : c.drives) {
    DriveConfig drive{{}, d.read_only};
    for (const control::Config::Part& p : d.parts) drive.parts.push_back({p.name, p.offset, fds.Peek(fds.next++)});
    m.drives.push_back(std::move(drive));
  }
  if (c.has_net) {
    m.net = NetConfig{fds.Take(), {}};
    std::memcpy(m.net->mac.data(), c.net_mac.data(), m.net->mac.size());
  }
  for (const std::string& tag : c.fs_tags) m.filesystems.push_back({fds.Take(), tag});
  if (c.has_vsock) m.vsock = VsockConfig{c.vsock_cid, std::string(jail::kVsockDir) + "/" + c.vsock_socket};
  return m;
}

// The guest's end, handed from the last vCPU thread to the main thread.
struct ExitMailbox {
  Fd event{static_cast<int>(CheckSys(eventfd(0, EFD_CLOEXEC), "eventfd"))};
  std::mutex mutex;
  MachineExit exit{MachineExit::Kind::kError, "the machine never reported its end"};
};

control::Status StatusOf(const Machine& machine) {
  return {machine.GuestMemoryBytes(), machine.GuestResidentBytes(), machine.BootTimerNs()};
}

// The VMM proper, PID 1 of its namespaces. Returns the process's exit status.
int RunVmm(const control::Config& config, std::vector<Fd>& received, jail::Cgroup& cgroup, const std::string& namespaces) {
  ConfigFds fds(config, received);
  const std::string all_namespaces = namespaces + " " + jail::EnterOwnNamespaces() + " cgroup";
  cgroup.Join();
  const int vsock_dir = config.has_vsock ? received.back().get() : -1;
  jail::EnterEmptyRoot(vsock_dir);
  CheckSys(sethostname("vmrun-vmm", 9), "sethostname");
  jail::DropPrivileges(config.jail_uid, config.jail_gid);
  seccomp::InstallViolationReporter(kControlFd, control::EncodeErrorExit);

  auto mailbox = std::make_shared<ExitMailbox>();
  Machine machine(BuildMachineConfig(config, fds), [mailbox](const MachineExit& exit) {
    {
      std::lock_guard<std::mutex> lock(mailbox->mutex);
      mailbox->exit = exit;
    }
    uint64_t one = 1;
    (void)!write(mailbox->event.get(), &one, sizeof one);
  });
  received.clear();  // the machine holds duplicates of what it keeps
  control::Message created{control::Type::kCreated};
  created.summary = "uid " + std::to_string(getuid()) + ", namespaces " + all_namespaces + ", " + cgroup.summary() +
                    ", seccomp per thread";
  Send(created);

  bool started = false;
  for (;;) {
    pollfd fds_to_poll[2] = {{kControlFd, POLLIN, 0}, {mailbox->event.get(), POLLIN, 0}};
    if (poll(fds_to_poll, started ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      throw SysError("poll", errno);
    }
    if (fds_to_poll[1].revents) break;
    if (!fds_to_poll[0].revents) continue;
    std::string bytes;
    std::vector<Fd> unexpected;
    if (!control::Receive(kControlFd, bytes, unexpected)) {  // the host is gone: so is its VM
      if (!started) return 0;
      machine.Stop();
      continue;
    }
    const control::Message m = control::DecodeMessage(bytes);
    if (m.type == control::Type::kStart && !started) {
      machine.Start();
      started = true;
      // From here on the process makes no thread and no process of its own.
      const rlimit none{0, 0};
      CheckSys(setrlimit(RLIMIT_NPROC, &none), "setrlimit(RLIMIT_NPROC)");
      // Taking a snapshot, this thread saves the stopped vCPUs and writes the files.
      seccomp::InstallOnThisThread(config.snapshot == control::Config::Snapshot::kTake ? seccomp::ThreadKind::kMainSnapshotting
                                                                                        : seccomp::ThreadKind::kMain);
    } else if (m.type == control::Type::kStop) {
      if (!started) return 0;
      machine.Stop();
    } else if (m.type == control::Type::kQueryStatus) {
      control::Message reply{control::Type::kStatus};
      reply.status = StatusOf(machine);
      Send(reply);
    }
  }
  machine.Join();
  control::Message exit{control::Type::kExit};
  {
    std::lock_guard<std::mutex> lock(mailbox->mutex);
    exit.exit.kind = static_cast<uint32_t>(mailbox->exit.kind);
    exit.exit.detail = mailbox->exit.detail;
  }
  if (exit.exit.kind == static_cast<uint32_t>(MachineExit::Kind::kSnapshotted)) {
    try {
      machine.SaveSnapshot();
    } catch (const std::exception& e) {
      exit.exit.kind = static_cast<uint32_t>(MachineExit::Kind::kError);
      exit.exit.detail = std::string("saving the snapshot: ") + e.what();
    }
  }
  exit.exit.status = StatusOf(machine);
  try {
    Send(exit);
  } catch (const SysError&) {
    // The host went away first.
  }
  return 0;
}

// Waits for the VMM and reports how it ended. Returns the supervisor's exit status.
int Supervise(pid_t vmm, jail::Cgroup& cgroup) {
  control::Message process{control::Type::kProcess};
  process.pid = static_cast<uint32_t>(vmm);
  try {
    Send(process);
  } catch (const SysError&) {
    // The host is gone; the VMM will see that too and end.
  }
  int status = 0;
  while (waitpid(vmm, &status, 0) < 0 && errno == EINTR) {
  }
  cgroup.Remove();
  control::Message reaped{control::Type::kReaped};
  reaped.wait_status = status;
  try {
    Send(reaped);
  } catch (const SysError&) {
  }
  // Closing the channel with the host's messages unread (status queries the VMM never got to)
  // would make the host's next read fail with ECONNRESET, losing what it had not read yet.
  char unread[512];
  while (recv(kControlFd, unread, sizeof unread, MSG_DONTWAIT) > 0) {
  }
  return 0;
}

}  // namespace

int main() {
  signal(SIGPIPE, SIG_IGN);  // a peer gone shows as EPIPE
  std::string bytes;
  std::vector<Fd> received;
  std::optional<control::Config> config;
  std::unique_ptr<jail::Cgroup> cgroup;
  std::string namespaces;
  try {
    if (!control::Receive(kControlFd, bytes, received)) return 0;
    config = control::DecodeConfig(bytes);
    cgroup = std::make_unique<jail::Cgroup>("vmm-" + std::to_string(getpid()),
                                            (config->memory_mib << 20) + kMemoryOverheadBytes,
                                            std::min<uint64_t>(config->vcpus, 1024) + 3);
    namespaces = jail::EnterUserAndPidNamespaces();
  } catch (const std::exception& e) {
    if (cgroup) cgroup->Remove();
    SendFailure(e);
    return 1;
  }
  const pid_t vmm = fork();
  if (vmm < 0) {
    cgroup->Remove();
    SendFailure(SysError("fork", errno, "the VMM process"));
    return 1;
  }
  if (vmm > 0) {
    received.clear();  // the VMM's files are the VMM's
    return Supervise(vmm, *cgroup);
  }
  try {
    return RunVmm(*config, received, *cgroup, namespaces);
  } catch (const std::exception& e) {
    SendFailure(e);
    return 1;
  }
}
