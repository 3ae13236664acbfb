// Loads a Linux kernel into guest memory: a bzImage through the 64-bit boot protocol
// (Documentation/arch/x86/boot.rst), or an uncompressed ELF vmlinux through its PVH entry.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arch/x86_64/regs.h"
#include "vstate/memory.h"

namespace vmm::loader {

enum class KernelFormat { kBzImage, kElfPvh };

struct KernelImage {
  KernelFormat format;
  x86_64::CpuMode mode;
  uint64_t entry_addr;
  uint64_t end;              // first guest address past the kernel's image and working memory
  uint64_t initrd_addr_max;  // highest address the initrd may end at
  uint64_t cmdline_max;      // longest command line accepted, without its NUL
  std::vector<uint8_t> setup_header;  // bzImage only: zero-page bytes from 0x1f1 to the header's end
};

// Reads the kernel at `path` (or open at `fd`, see File) and writes it into `memory`; throws
// VmmError when the file is not a kernel we can boot, or does not fit.
KernelImage LoadKernel(const std::string& path, GuestMemory& memory, int fd = -1);

}  // namespace vmm::loader
