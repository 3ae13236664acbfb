#include "control/vmm_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "control/vsock_dir.h"
#include "control/wire.h"
#include "error.h"
#include "kvm.h"

namespace vmm::control {

namespace {
// A VMM started by root runs as uid and gid kJailIdBase + its supervisor's pid: ids of its own,
// far above any distribution's users and the usual subordinate-id ranges.
constexpr uint32_t kJailIdBase = 900000000;
constexpr int kStopTimeoutMs = 10000;
constexpr int kQueryTimeoutMs = 2000;
constexpr uint32_t kErrorExit = 3;  // MachineExit::Kind::kError

Fd OpenFile(const std::string& path, int flags, const char* role) {
  Fd fd(open(path.c_str(), flags | O_CLOEXEC, 0644));  // the mode only where flags has O_CREAT
  if (!fd.valid()) throw VmmError(std::string(role) + " " + path + ": " + std::strerror(errno));
  return fd;
}

Fd ConnectUnix(const std::string& path, const char* role) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw VmmError(std::string(role) + " " + path + ": the path is too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid() || connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    throw VmmError(std::string(role) + " " + path + ": " + std::strerror(errno));
  }
  return fd;
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}
}  // namespace

VmmProcess::VmmProcess(const LaunchConfig& c, ExitCallback on_exit) : on_exit_(std::move(on_exit)) {
  Config config;
  std::vector<Fd> files;
  files.push_back(Kvm::OpenDevice());
  config.snapshot = c.snapshot;
  config.kernel_name = c.kernel;
  config.has_initrd = !c.initrd.empty();
  config.initrd_name = c.initrd;
  if (config.boots_kernel()) {
    files.push_back(OpenFile(c.kernel, O_RDONLY, "kernel"));
    if (config.has_initrd) files.push_back(OpenFile(c.initrd, O_RDONLY, "initrd"));
  }
  int out[2], in[2];
  CheckSys(pipe2(out, O_CLOEXEC), "pipe2");
  console_output_ = Fd(out[0]);
  files.emplace_back(out[1]);
  CheckSys(pipe2(in, O_CLOEXEC), "pipe2");
  files.emplace_back(in[0]);
  console_input_ = Fd(in[1]);
  if (c.snapshot != Config::Snapshot::kNone) {
    const bool take = c.snapshot == Config::Snapshot::kTake;
    const int flags = take ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY;
    files.push_back(OpenFile(c.snapshot_state, flags, "snapshot"));
    files.push_back(OpenFile(c.snapshot_memory, flags, "snapshot memory"));
    config.snapshot_state_name = c.snapshot_state;
    config.snapshot_memory_name = c.snapshot_memory;
    config.snapshot_fingerprint = c.snapshot_fingerprint;
  }
  config.cmdline = c.cmdline;
  config.memory_mib = c.memory_mib;
  config.vcpus = c.vcpus;
  for (const Config::Drive& d : c.drives) {
    for (const Config::Part& p : d.parts) files.push_back(OpenFile(p.name, d.read_only ? O_RDONLY : O_RDWR, "disk"));
  }
  config.drives = c.drives;
  if (!c.net_socket.empty()) {
    config.has_net = true;
    config.net_mac = c.net_mac;
    files.push_back(ConnectUnix(c.net_socket, "network socket"));
  }
  for (const LaunchConfig::Filesystem& fs : c.filesystems) {
    config.fs_tags.push_back(fs.tag);
    files.push_back(ConnectUnix(fs.socket, "virtio-fs socket"));
  }
  if (c.has_vsock) {
    const size_t slash = c.vsock_path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : c.vsock_path.substr(0, slash);
    config.has_vsock = true;
    config.vsock_cid = c.vsock_cid;
    config.vsock_socket = c.vsock_path.substr(slash == std::string::npos ? 0 : slash + 1);
    files.push_back(OpenFile(dir, O_PATH | O_DIRECTORY, "vsock directory"));
  }
  if (access(c.vmm_path.c_str(), X_OK) < 0) {
    throw VmmError("the VMM executable " + c.vmm_path + " cannot be run (" + std::strerror(errno) + "): build it with npm install");
  }

  Spawn(c.vmm_path);
  if (geteuid() == 0) {
    config.jail_uid = config.jail_gid = kJailIdBase + static_cast<uint32_t>(supervisor_pid_);
    if (c.has_vsock) {
      try {
        GrantVsockDirectory(files.back().get(), config.jail_uid);
      } catch (const VmmError&) {
        KillProcess();
        waitpid(supervisor_pid_, nullptr, 0);
        throw;
      }
    }
  }
  std::vector<int> raw;
  for (const Fd& f : files) raw.push_back(f.get());
  try {
    Send(control_.get(), Encode(config), raw);
  } catch (const VmmError&) {
    KillProcess();
    waitpid(supervisor_pid_, nullptr, 0);
    throw;
  }
  files.clear();
  follower_ = std::thread(&VmmProcess::Follow, this);

  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return created_ || failure_ || ended_; });
  if (created_ && !failure_) return;
  WaitUntil([this] { return ended_; }, kStopTimeoutMs, lock);
  lock.unlock();
  follower_.join();
  if (failure_) {
    switch (failure_->kind) {
      case Failure::Kind::kSys: throw SysError(failure_->call, static_cast<int>(failure_->err), failure_->message, SysError::kDescribed);
      case Failure::Kind::kKvmUnavailable: throw KvmUnavailable(failure_->message);
      case Failure::Kind::kVmm: throw VmmError(failure_->message);
    }
  }
  throw VmmError("the VMM process ended before it built the VM: " + exit_->detail);
}

void VmmProcess::Spawn(const std::string& vmm_path) {
  int pair[2];
  CheckSys(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), "socketpair");
  control_ = Fd(pair[0]);
  Fd child_end(pair[1]);
  Fd null = OpenFile("/dev/null", O_RDWR, "null device");
  // Between fork and exec the child may only make async-signal-safe calls: all is prepared here.
  char* const argv[] = {const_cast<char*>("vmrun-vmm"), nullptr};
  char* const envp[] = {nullptr};
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);  // no Node handler may run in the child
  const pid_t pid = fork();
  if (pid == 0) {
    const int control = fcntl(child_end.get(), F_DUPFD, 10);
    dup2(null.get(), 0);
    dup2(null.get(), 1);
    // stderr stays (the VMM's last words, should it have any), unless Node marked it close-on-exec.
    if (fcntl(2, F_SETFD, 0) < 0) dup2(null.get(), 2);
    dup2(control, 3);
    close_range(4, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(vmm_path.c_str(), argv, envp);
    _exit(127);
  }
  const int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) throw SysError("fork", err, vmm_path);
  supervisor_pid_ = pid;
}

void VmmProcess::Follow() {
  std::string bytes;
  std::vector<Fd> fds;
  for (;;) {
    Message m;
    try {
      if (!Receive(control_.get(), bytes, fds)) break;
      if (!fds.empty()) throw VmmError("malformed control message: the VMM sent descriptors");
      m = DecodeMessage(bytes);
    } catch (const VmmError& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      protocol_error_ = e.what();
      break;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    switch (m.type) {
      case Type::kProcess: if (vmm_pid_ < 0) vmm_pid_ = static_cast<pid_t>(m.pid); break;
      case Type::kCreated: created_ = true, summary_ = m.summary; break;
      case Type::kFailed: if (!failure_) failure_ = m.failure; break;
      case Type::kStatus: status_ = m.status, ++status_replies_; break;
      case Type::kExit:
        if (!exit_) exit_ = m.exit;
        if (m.exit.status.guest_bytes) status_ = m.exit.status;  // 0: a signal handler's report
        break;
      case Type::kReaped: reaped_status_ = m.wait_status; break;
      default: protocol_error_ = "malformed control message: a host-to-VMM message from the VMM"; break;
    }
    changed_.notify_all();
    if (!protocol_error_.empty()) break;
  }
  bool broke_protocol;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    broke_protocol = !protocol_error_.empty();
  }
  if (broke_protocol) KillProcess();
  int status = 0;
  while (waitpid(supervisor_pid_, &status, 0) < 0 && errno == EINTR) {
  }
  Exit final;
  bool deliver;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (broke_protocol) {
      final = {kErrorExit, "the VMM process broke the control protocol (" + protocol_error_ + ") and was killed", status_};
    } else if (exit_) {
      final = *exit_;
    } else if (failure_) {
      final = {kErrorExit, failure_->message, status_};
    } else if (reaped_status_) {
      final = ExitFromWaitStatus(*reaped_status_, "the VMM process");
    } else {
      final = ExitFromWaitStatus(status, "the VMM's supervisor process");
    }
    if (!exit_) exit_ = final;
    ended_ = true;
    deliver = started_;
    changed_.notify_all();
  }
  if (deliver) on_exit_(final);
}

Exit VmmProcess::ExitFromWaitStatus(int status, const char* who) const {
  Exit exit{kErrorExit, "", status_};
  if (WIFSIGNALED(status)) {
    exit.detail = std::string(who) + " was killed by " + SignalName(WTERMSIG(status));
  } else if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && vmm_pid_ < 0) {
    exit.detail = "the VMM executable could not be started (exit status 127)";
  } else {
    exit.detail = std::string(who) + " ended (exit status " + std::to_string(WEXITSTATUS(status)) + ") without reporting the guest's end";
  }
  return exit;
}

void VmmProcess::WaitUntil(const std::function<bool()>& done, int timeout_ms, std::unique_lock<std::mutex>& lock) {
  if (changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), done)) return;
  KillProcess();  // hung, or hostile: either way it goes
  changed_.wait(lock, done);
}

void VmmProcess::KillProcess() {
  if (vmm_pid_ > 0) kill(vmm_pid_, SIGKILL);
  // Unreaped until Follow waits for it, so the pid is still this process's.
  kill(supervisor_pid_, SIGKILL);
}

pid_t VmmProcess::vmm_pid() {
  std::lock_guard<std::mutex> lock(mutex_);
  return vmm_pid_;
}

std::string VmmProcess::jail_summary() {
  std::lock_guard<std::mutex> lock(mutex_);
  return summary_;
}

void VmmProcess::Start() {
  Send(control_.get(), Encode(Message{Type::kStart}));
  std::lock_guard<std::mutex> lock(mutex_);
  started_ = true;
}

void VmmProcess::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ended_) return;
  }
  try {
    Send(control_.get(), Encode(Message{Type::kStop}));
  } catch (const VmmError&) {
    // Already gone: Follow reports how.
  }
}

Status VmmProcess::QueryStatus() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (ended_ || exit_) return status_;  // a VMM that reported its end answers no more
  const uint64_t before = status_replies_;
  lock.unlock();
  try {
    Send(control_.get(), Encode(Message{Type::kQueryStatus}));
  } catch (const VmmError&) {
    lock.lock();
    return status_;
  }
  lock.lock();
  changed_.wait_for(lock, std::chrono::milliseconds(kQueryTimeoutMs), [&] { return ended_ || status_replies_ != before; });
  return status_;
}

VmmProcess::~VmmProcess() {
  if (!follower_.joinable()) return;
  Stop();
  {
    std::unique_lock<std::mutex> lock(mutex_);
    WaitUntil([this] { return ended_; }, kStopTimeoutMs, lock);
  }
  follower_.join();
}

}  // namespace vmm::control
