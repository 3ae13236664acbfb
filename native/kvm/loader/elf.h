#pragma once

#include "loader/file.h"
#include "loader/kernel.h"

namespace vmm::loader {

// True if `file` starts with an ELF identification.
bool IsElf(const File& file);
// Loads an x86_64 ELF vmlinux by physical address and finds its PVH entry (XEN_ELFNOTE_PHYS32_ENTRY).
KernelImage LoadElfPvh(const File& file, GuestMemory& memory);

}  // namespace vmm::loader
