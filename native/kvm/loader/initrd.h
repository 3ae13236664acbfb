#pragma once

#include <cstdint>
#include <string>

#include "loader/kernel.h"
#include "vstate/memory.h"

namespace vmm::loader {

struct InitrdPlacement {
  uint64_t addr = 0;
  uint64_t size = 0;
};

// Loads the initrd page-aligned at the top of low RAM (below the kernel's limit), above the kernel.
// `fd`: as LoadKernel's.
InitrdPlacement LoadInitrd(const std::string& path, const KernelImage& kernel, GuestMemory& memory, int fd = -1);

}  // namespace vmm::loader
