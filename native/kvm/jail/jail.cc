#include "jail/jail.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

#include "error.h"
#include "fd.h"

namespace vmm::jail {

namespace {
void WriteProcFile(const char* path, const std::string& value) {
  Fd fd(open(path, O_WRONLY | O_CLOEXEC));
  if (!fd.valid() || write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    throw SysError("write", errno, std::string(path) + " <- " + value);
  }
}

void Mount(const char* source, const char* target, const char* type, unsigned long flags, const char* data = nullptr) {
  CheckSys(mount(source, target, type, flags, data), "mount", target);
}
}  // namespace

std::string EnterUserAndPidNamespaces() {
  const bool as_root = geteuid() == 0;
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  int flags = CLONE_NEWPID;
  if (!as_root) flags |= CLONE_NEWUSER;
  CheckSys(unshare(flags), "unshare", as_root ? "" : "unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone)");
  if (!as_root) {
    WriteProcFile("/proc/self/setgroups", "deny");
    WriteProcFile("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1");
    WriteProcFile("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1");
  }
  return as_root ? "pid" : "user pid";
}

std::string EnterOwnNamespaces() {
  CheckSys(unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET), "unshare");
  return "mnt ipc uts net";
}

void EnterEmptyRoot(int vsock_dir_fd) {
  constexpr unsigned long kLocked = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  // Nothing mounted here propagates back to the host, nor from it.
  Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE);
  // The directory as this namespace sees it (a bind mount's source must be one of its own
  // mounts), opened before the new root hides its path, and checked to be the one we were given.
  Fd vsock_dir;
  if (vsock_dir_fd >= 0) {
    char path[4096];
    const std::string link = "/proc/self/fd/" + std::to_string(vsock_dir_fd);
    const ssize_t n = CheckSys(readlink(link.c_str(), path, sizeof path - 1), "readlink", link);
    path[n] = 0;
    vsock_dir = Fd(open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat given, here;
    if (!vsock_dir.valid() || fstat(vsock_dir_fd, &given) < 0 || fstat(vsock_dir.get(), &here) < 0 ||
        given.st_dev != here.st_dev || given.st_ino != here.st_ino) {
      throw VmmError(std::string("the vsock directory ") + path + " moved while the VMM started");
    }
  }
  // Any directory will do as the mount point: this namespace is ours alone.
  Mount("vmrun-jail", "/tmp", "tmpfs", kLocked, "size=16k,nr_inodes=16,mode=0755");
  if (vsock_dir.valid()) {
    CheckSys(mkdir("/tmp/vsock", 0755), "mkdir", "/tmp/vsock");
    const std::string source = "/proc/self/fd/" + std::to_string(vsock_dir.get());
    Mount(source.c_str(), "/tmp/vsock", nullptr, MS_BIND);
    // In a user namespace the source's read-only and atime flags are locked: keep them.
    struct statvfs st;
    CheckSys(fstatvfs(vsock_dir.get(), &st), "fstatvfs", "the vsock directory");
    unsigned long kept = 0;
    for (auto [st_flag, ms_flag] : {std::pair{ST_RDONLY, MS_RDONLY}, {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME}}) {
      if (st.f_flag & st_flag) kept |= ms_flag;
    }
    Mount(nullptr, "/tmp/vsock", nullptr, MS_REMOUNT | MS_BIND | kLocked | kept);
  }
  CheckSys(mkdir("/tmp/old", 0700), "mkdir", "/tmp/old");
  CheckSys(syscall(SYS_pivot_root, "/tmp", "/tmp/old"), "pivot_root");
  CheckSys(chdir("/"), "chdir", "/");
  CheckSys(umount2("/old", MNT_DETACH), "umount2", "/old");
  CheckSys(rmdir("/old"), "rmdir", "/old");
  Mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | kLocked);
}

void DropPrivileges(uint32_t uid, uint32_t gid) {
  // The bounding set needs CAP_SETPCAP to shrink: before the ids change.
  // EINVAL: a capability this (older) kernel does not have.
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) throw SysError("PR_CAPBSET_DROP", errno);
  }
  if (geteuid() == 0) {
    if (uid == 0 || gid == 0) throw VmmError("the jail's uid and gid must not be 0");
    CheckSys(setgroups(0, nullptr), "setgroups");
    CheckSys(setresgid(gid, gid, gid), "setresgid");
    CheckSys(setresuid(uid, uid, uid), "setresuid");
  }
  CheckSys(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "PR_CAP_AMBIENT_CLEAR_ALL");
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {};
  CheckSys(syscall(SYS_capset, &header, none), "capset");
  CheckSys(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS");
  CheckSys(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE");
  const rlimit no_core{0, 0}, fds{kMaxFds, kMaxFds};
  CheckSys(setrlimit(RLIMIT_CORE, &no_core), "setrlimit(RLIMIT_CORE)");
  CheckSys(setrlimit(RLIMIT_NOFILE, &fds), "setrlimit(RLIMIT_NOFILE)");
  // After the uid change, which clears it.
  CheckSys(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "PR_SET_PDEATHSIG");
}

}  // namespace vmm::jail
