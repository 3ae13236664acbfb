#pragma once

#include "loader/file.h"
#include "loader/kernel.h"

namespace vmm::loader {

// True if `file` starts with a bzImage boot sector and setup header.
bool IsBzImage(const File& file);
KernelImage LoadBzImage(const File& file, GuestMemory& memory);

}  // namespace vmm::loader
