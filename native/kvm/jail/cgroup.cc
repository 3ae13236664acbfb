#include "jail/cgroup.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "error.h"
#include "fd.h"

namespace vmm::jail {

namespace {
constexpr const char* kRoot = "/sys/fs/cgroup";

void WriteFile(const std::string& path, const std::string& value) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) throw SysError("open", errno, path);
  if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    throw SysError("write", errno, path + " <- " + value);
  }
}

void MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) < 0 && errno != EEXIST) throw SysError("mkdir", errno, path);
}
}  // namespace

Cgroup::Cgroup(const std::string& name, uint64_t memory_max_bytes, uint32_t pids_max) {
  const std::string memory = std::to_string(memory_max_bytes), pids = std::to_string(pids_max);
  try {
    if (access((std::string(kRoot) + "/cgroup.controllers").c_str(), F_OK) == 0) {
      MakeDir(std::string(kRoot) + "/vmrun");
      // Already on where systemd runs; this enables them on a bare cgroup2 mount.
      WriteFile(std::string(kRoot) + "/cgroup.subtree_control", "+memory +pids");
      WriteFile(std::string(kRoot) + "/vmrun/cgroup.subtree_control", "+memory +pids");
      const std::string dir = std::string(kRoot) + "/vmrun/" + name;
      MakeDir(dir);
      dirs_.push_back(dir);
      WriteFile(dir + "/memory.max", memory);
      if (access((dir + "/memory.swap.max").c_str(), F_OK) == 0) WriteFile(dir + "/memory.swap.max", "0");
      WriteFile(dir + "/pids.max", pids);
      summary_ = "cgroup v2 " + dir;
    } else {
      const std::string mem_dir = std::string(kRoot) + "/memory/vmrun/" + name, pids_dir = std::string(kRoot) + "/pids/vmrun/" + name;
      MakeDir(std::string(kRoot) + "/memory/vmrun");
      MakeDir(mem_dir);
      dirs_.push_back(mem_dir);
      WriteFile(mem_dir + "/memory.limit_in_bytes", memory);
      MakeDir(std::string(kRoot) + "/pids/vmrun");
      MakeDir(pids_dir);
      dirs_.push_back(pids_dir);
      WriteFile(pids_dir + "/pids.max", pids);
      summary_ = "cgroup v1 " + mem_dir + " and " + pids_dir;
    }
    summary_ += " (memory " + std::to_string(memory_max_bytes >> 20) + " MiB, pids " + pids + ")";
  } catch (const VmmError& e) {
    Remove();
    summary_ = std::string("no cgroup: ") + e.what();
  }
}

void Cgroup::Join() const {
  for (const std::string& dir : dirs_) WriteFile(dir + "/cgroup.procs", "0");
  CheckSys(unshare(CLONE_NEWCGROUP), "unshare(CLONE_NEWCGROUP)");
}

void Cgroup::Remove() {
  // A reaped process can stay counted for a moment (EBUSY); runc retries the same way.
  for (const std::string& dir : dirs_) {
    for (int attempt = 0; attempt < 200 && rmdir(dir.c_str()) < 0 && errno == EBUSY; ++attempt) usleep(10000);
  }
  dirs_.clear();
}

}  // namespace vmm::jail
