// The VMM process's cgroup: memory and pids limits the guest cannot talk its way past. cgroup v2
// where /sys/fs/cgroup is one, else the v1 memory and pids hierarchies. Created by the
// supervisor before it forks the VMM, joined by the VMM, removed by the supervisor once the VMM
// has been reaped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmm::jail {

class Cgroup {
 public:
  // Creates `vmrun/<name>` with the limits. Where no hierarchy can be written (an unprivileged
  // user without delegation, a container that forbids it) the cgroup is empty, and `summary()`
  // says why: the VM still runs, and `vmrun doctor` reports it.
  Cgroup(const std::string& name, uint64_t memory_max_bytes, uint32_t pids_max);
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Moves the calling process in, then into a cgroup namespace of its own (rooted there, so it
  // sees no other cgroup); throws SysError. Joining first: a cgroup namespace bars moves out of it.
  void Join() const;
  // Removes the directories (waiting up to 2 s for them to empty); call once their process is reaped.
  void Remove();
  const std::string& summary() const { return summary_; }

 private:
  std::vector<std::string> dirs_;  // one per hierarchy, the limits written
  std::string summary_;
};

}  // namespace vmm::jail
