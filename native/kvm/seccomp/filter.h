// seccomp-bpf allowlists for the VMM's own threads, as Firecracker installs one per thread kind:
// a vCPU thread may run KVM_RUN and little else, the device thread its I/O, the main thread its
// control channel. Installed by each thread on itself (no TSYNC). Anything not listed raises
// SIGSYS (SECCOMP_RET_TRAP) before it runs: the VMM's handler (InstallViolationReporter) reports
// the call by name and ends the process, for a thread that asks for it is no longer ours.
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vmm::seccomp {

// One allowed system call; with `arg` (0-5), that argument's low 32 bits must be one of
// `values` (an ioctl's request, a socket's domain).
struct Rule {
  long nr;
  int arg = -1;
  std::vector<uint32_t> values = {};
};

// kMainSnapshotting: the main thread of a VMM that takes a snapshot, which it saves and writes.
enum class ThreadKind { kVcpu, kDevice, kMain, kMainSnapshotting };

// The allowlist of a thread kind (allowlists.cc: the data, reviewed as data).
const std::vector<Rule>& AllowlistFor(ThreadKind kind);

// The BPF program for `rules`: another ABI kills the process, an unlisted call traps (SIGSYS).
std::vector<sock_filter> Compile(const std::vector<Rule>& rules);

// Sets no_new_privs and installs the kind's filter on the calling thread; throws SysError.
void InstallOnThisThread(ThreadKind kind);

// A SIGSYS handler that writes `message_prefix`, the forbidden call's name and number to `fd` as
// one record (through `encode`, which must be async-signal-safe) and exits with status 159.
using ViolationEncoder = size_t (*)(char* out, size_t cap, const char* detail, size_t len);
void InstallViolationReporter(int fd, ViolationEncoder encode);

// "openat" for 257; generated from the kernel headers (syscall_names.cc).
const char* SyscallName(long nr);

}  // namespace vmm::seccomp
