// The guest's physical memory map as firmware would report it (e820 types).
#pragma once

#include <cstdint>
#include <vector>

#include "vstate/memory.h"

namespace vmm::x86_64 {

constexpr uint32_t kE820Ram = 1;
constexpr uint32_t kE820Reserved = 2;

struct E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
};

// RAM below the EBDA, the EBDA and BIOS area reserved, then RAM from 1 MiB (and above 4 GiB).
std::vector<E820Entry> MemoryMap(const GuestMemory& memory);

}  // namespace vmm::x86_64
