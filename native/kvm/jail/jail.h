// The VMM process's jail, after Firecracker's jailer: namespaces of its own, an empty read-only
// root holding only the vsock directory, no privileges, tight limits. The steps run in order:
// the supervisor calls EnterUserAndPidNamespaces and forks; the VMM (PID 1 of the new pid
// namespace) calls EnterOwnNamespaces, EnterEmptyRoot and DropPrivileges before it creates the VM.
#pragma once

#include <cstdint>
#include <string>

namespace vmm::jail {

// For the supervisor: a new pid namespace (for its next fork), inside a new user namespace when
// not root (the caller's own uid and gid mapped to themselves). Its mount namespace stays the
// host's: it removes the cgroup after the VMM ends. Returns the namespaces' names.
std::string EnterUserAndPidNamespaces();

// For the VMM: new mount, ipc, uts and net namespaces. Returns their names.
std::string EnterOwnNamespaces();

// Where the vsock directory appears inside the jail.
constexpr const char* kVsockDir = "/vsock";

// Makes a fresh tmpfs the root (pivot_root), the directory open at `vsock_dir_fd` (or none, -1)
// bind-mounted at kVsockDir, the old root detached, the new root then read-only.
void EnterEmptyRoot(int vsock_dir_fd);

// As root: switches to `uid`/`gid` (no supplementary groups). Always: no capabilities (effective,
// permitted, inheritable, ambient, bounding), no_new_privs, not dumpable, no core files, at most
// kMaxFds descriptors, and SIGKILL when the supervisor dies. Throws SysError.
void DropPrivileges(uint32_t uid, uint32_t gid);

constexpr uint64_t kMaxFds = 1024;

}  // namespace vmm::jail
