// The host's side of one VMM process (native/vmm/main.cc): opens the VM's files with the
// caller's rights, starts the process, hands it config and files, and follows it to its end on a
// thread of its own. Everything the process says is checked: it runs next to the guest.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/messages.h"
#include "fd.h"

namespace vmm::control {

// A VM as the host names it: files by path.
struct LaunchConfig {
  std::string vmm_path;  // the vmrun-vmm executable
  std::string kernel, initrd, cmdline;  // initrd empty: none
  uint64_t memory_mib = 128;
  uint32_t vcpus = 1;
  std::vector<Config::Drive> drives;  // each part named by its host path
  bool has_vsock = false;
  uint64_t vsock_cid = 3;
  std::string vsock_path;  // the VMM listens here; its directory is all of the host it sees
  std::string net_socket;  // empty: no network; else passt's Unix socket, connected to here
  std::string net_mac;     // 6 bytes
  struct Filesystem {
    std::string socket;  // its virtiofsd's vhost-user socket, connected to here
    std::string tag;     // what the guest mounts it by
  };
  std::vector<Filesystem> filesystems;
  // Take a snapshot at the guest's snapshot point into these files (created or emptied), or
  // restore from them (the kernel and initrd are then unused). The host names them, renames them
  // into place, and removes them when the VMM fails.
  Config::Snapshot snapshot = Config::Snapshot::kNone;
  std::string snapshot_state, snapshot_memory;
  std::string snapshot_fingerprint;
};

class VmmProcess {
 public:
  // Runs once, on the follower thread, when the process has ended after Start(): the guest's end
  // as the VMM reported it, or the process's death ("error").
  using ExitCallback = std::function<void(const Exit&)>;

  // Starts the process and waits until it has built the VM; throws what it failed with (a
  // SysError, KvmUnavailable or VmmError), leaving no process behind.
  VmmProcess(const LaunchConfig& config, ExitCallback on_exit);
  ~VmmProcess();  // stops the VM if it runs and waits for the process (killing it if it hangs)
  VmmProcess(const VmmProcess&) = delete;
  VmmProcess& operator=(const VmmProcess&) = delete;

  void Start();
  void Stop();
  // Asks the VMM; after its end, the last figures it gave.
  Status QueryStatus();

  int TakeConsoleOutput() { return console_output_.Release(); }
  int TakeConsoleInput() { return console_input_.Release(); }
  // The jailed VMM's pid (-1 until its supervisor reports it) and what its jail applied.
  pid_t vmm_pid();
  std::string jail_summary();

 private:
  void Spawn(const std::string& vmm_path);
  void Follow();
  Exit ExitFromWaitStatus(int status, const char* who) const;
  void WaitUntil(const std::function<bool()>& done, int timeout_ms, std::unique_lock<std::mutex>& lock);
  void KillProcess();

  ExitCallback on_exit_;
  Fd control_;
  Fd console_output_, console_input_;  // the host's ends
  pid_t supervisor_pid_ = -1;

  std::mutex mutex_;
  std::condition_variable changed_;
  pid_t vmm_pid_ = -1;
  bool created_ = false, started_ = false, ended_ = false;
  std::optional<Failure> failure_;
  std::optional<Exit> exit_;
  std::optional<int> reaped_status_;
  std::string summary_;
  Status status_;
  uint64_t status_replies_ = 0;
  std::string protocol_error_;
  std::thread follower_;
};

}  // namespace vmm::control
