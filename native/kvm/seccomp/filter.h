// seccomp-bpf allowlists for the VMM's own threads, as Firecracker installs one per thread kind:
// a vCPU thread may run KVM_RUN and little else, the device thread its I/O. Installed by each
// thread on itself (no TSYNC), so the Node threads around them are untouched. Anything not
// listed kills the process (SIGSYS): a thread that asks for it is no longer ours.
#pragma once

#include <linux/filter.h>

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

enum class ThreadKind { kVcpu, kDevice };

// The allowlist of a thread kind (allowlists.cc: the data, reviewed as data).
const std::vector<Rule>& AllowlistFor(ThreadKind kind);

// The BPF program for `rules`: x86-64 only, everything else kills the process.
std::vector<sock_filter> Compile(const std::vector<Rule>& rules);

// Sets no_new_privs and installs the kind's filter on the calling thread; throws SysError.
void InstallOnThisThread(ThreadKind kind);

}  // namespace vmm::seccomp
