#include "arch/x86_64/e820.h"

#include "arch/x86_64/layout.h"

namespace vmm::x86_64 {

std::vector<E820Entry> MemoryMap(const GuestMemory& memory) {
  std::vector<E820Entry> map = {
      {0, layout::kEbdaStart, kE820Ram},
      {layout::kEbdaStart, layout::kHighMemoryStart - layout::kEbdaStart, kE820Reserved},
      {layout::kHighMemoryStart, memory.low_end() - layout::kHighMemoryStart, kE820Ram},
  };
  for (size_t i = 1; i < memory.regions().size(); ++i) {
    map.push_back({memory.regions()[i].guest_addr, memory.regions()[i].size, kE820Ram});
  }
  return map;
}

}  // namespace vmm::x86_64
