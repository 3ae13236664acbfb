#include "loader/kernel.h"

#include "error.h"
#include "loader/bzimage.h"
#include "loader/elf.h"
#include "loader/file.h"

namespace vmm::loader {

KernelImage LoadKernel(const std::string& path, GuestMemory& memory, int fd) {
  File file(path, "kernel", fd);
  if (IsBzImage(file)) return LoadBzImage(file, memory);
  if (IsElf(file)) return LoadElfPvh(file, memory);
  throw VmmError("kernel " + path +
                 " is not a Linux kernel: expected a bzImage or an ELF vmlinux with a PVH entry");
}

}  // namespace vmm::loader
