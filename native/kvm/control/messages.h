// The messages between the host (the addon) and a VMM process (native/vmm/), documented in
// native/vmm/README.md. The host sends Config once, then Start, Stop and QueryStatus; the VMM
// answers Config with Created or Failed and QueryStatus with Status, reports Exit when the guest
// ends, and its supervisor reports Process (the VMM's pid) first and Reaped (its wait status) last.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fd.h"

namespace vmm::control {

enum class Type : uint32_t {
  kConfig = 1, kStart = 2, kStop = 3, kQueryStatus = 4,  // host to VMM
  kProcess = 100, kCreated = 101, kFailed = 102, kStatus = 103, kExit = 104, kReaped = 105,  // VMM to host
};

// Everything a VMM process needs, its files as descriptors in this order: /dev/kvm, the kernel
// and the initrd (if any; neither when restoring), the console's output (written) and input
// (read), the snapshot's state and memory files (when taking or restoring one), each drive part, the
// network's socket (connected to passt, if any), each filesystem's socket (connected to its
// virtiofsd), the vsock directory (an O_PATH descriptor, if
// any).
struct Config {
  std::string kernel_name, initrd_name;  // for errors only
  bool has_initrd = false;
  std::string cmdline;
  uint64_t memory_mib = 0;
  uint32_t vcpus = 0;
  struct Part { std::string name; uint64_t offset; };
  struct Drive { std::vector<Part> parts; bool read_only; };
  std::vector<Drive> drives;
  bool has_vsock = false;
  uint64_t vsock_cid = 0;
  std::string vsock_socket;  // the listening socket's name inside the vsock directory
  bool has_net = false;
  std::string net_mac;  // 6 bytes: the guest's MAC address
  std::vector<std::string> fs_tags;  // one virtio-fs device each
  uint32_t jail_uid = 0, jail_gid = 0;  // the ids to drop to when started as root
  // kTake: snapshot the guest at its snapshot point into the files (opened for writing);
  // kRestore: start the guest from them instead of booting the kernel.
  enum class Snapshot : uint8_t { kNone = 0, kTake = 1, kRestore = 2 };
  Snapshot snapshot = Snapshot::kNone;
  std::string snapshot_state_name, snapshot_memory_name;  // for errors only
  std::string snapshot_fingerprint;  // the host's part of what the snapshot fits

  bool boots_kernel() const { return snapshot != Snapshot::kRestore; }

  size_t FdCount() const;
};

std::string Encode(const Config& c);
Config DecodeConfig(const std::string& bytes);

// How a failed system call or a refused config is told to the host.
struct Failure {
  enum class Kind : uint8_t { kVmm = 0, kSys = 1, kKvmUnavailable = 2 };
  Kind kind;
  std::string message, call;
  uint32_t err = 0;
};

struct Status {
  uint64_t guest_bytes = 0, guest_resident_bytes = 0;
  uint64_t boot_timer_ns = 0;  // 0: the guest has not written it
};

struct Exit {
  uint32_t kind = 0;  // MachineExit::Kind (kSnapshotted: the snapshot is written)
  std::string detail;
  Status status;
};

// Every message but Config: its type and, per type, the fields below that it carries.
struct Message {
  Type type;
  uint32_t pid = 0;         // kProcess
  std::string summary;      // kCreated: what the jail applied
  Failure failure;          // kFailed
  Status status;            // kStatus
  Exit exit;                // kExit
  int32_t wait_status = 0;  // kReaped
};

std::string Encode(const Message& m);
// Throws VmmError on anything malformed: the bytes come from a process the guest may own.
Message DecodeMessage(const std::string& bytes);

constexpr size_t kMaxDetail = 4096;

// An Exit of kind error (MachineExit::Kind::kError, 3) with `detail`, written into `out` without
// allocating (a signal handler's report); 0 when it does not fit.
size_t EncodeErrorExit(char* out, size_t cap, const char* detail, size_t len);

}  // namespace vmm::control
