#include "loader/initrd.h"

#include <algorithm>

#include "error.h"
#include "loader/file.h"

namespace vmm::loader {

InitrdPlacement LoadInitrd(const std::string& path, const KernelImage& kernel, GuestMemory& memory, int fd) {
  File file(path, "initrd", fd);
  constexpr uint64_t kPage = 4096;
  const uint64_t top = std::min(memory.low_end(), kernel.initrd_addr_max + 1);
  if (file.size() > top || ((top - file.size()) & ~(kPage - 1)) < kernel.end) {
    throw VmmError("guest memory of " + std::to_string(memory.size() >> 20) + " MiB is too small for kernel and initrd " +
                   path + " (" + std::to_string(file.size() >> 10) + " KiB)");
  }
  InitrdPlacement placement{(top - file.size()) & ~(kPage - 1), file.size()};
  file.ReadIntoGuest(0, file.size(), memory, placement.addr);
  return placement;
}

}  // namespace vmm::loader
