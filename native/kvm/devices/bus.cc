#include "devices/bus.h"

#include <cstring>

#include "error.h"

namespace vmm::devices {

void Bus::Insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> device) {
  auto next = ranges_.lower_bound(base);
  // Compared by distance from the lower base, so that no end address can wrap around 2^64.
  bool overlaps_next = next != ranges_.end() && next->first - base < len;
  bool overlaps_prev = next != ranges_.begin() && base - std::prev(next)->first < std::prev(next)->second.len;
  if (len == 0 || overlaps_next || overlaps_prev) throw VmmError("bus ranges overlap at " + std::to_string(base));
  ranges_.emplace(base, Range{len, std::move(device)});
}

BusDevice* Bus::Find(uint64_t addr, uint32_t len, uint64_t& offset) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  offset = addr - it->first;
  if (offset >= it->second.len || len > it->second.len - offset) return nullptr;
  return it->second.device.get();
}

bool Bus::Read(uint64_t addr, uint8_t* data, uint32_t len) const {
  uint64_t offset;
  if (BusDevice* device = Find(addr, len, offset)) {
    device->Read(offset, data, len);
    return true;
  }
  std::memset(data, 0xff, len);
  return false;
}

bool Bus::Write(uint64_t addr, const uint8_t* data, uint32_t len) const {
  uint64_t offset;
  if (BusDevice* device = Find(addr, len, offset)) {
    device->Write(offset, data, len);
    return true;
  }
  return false;
}

}  // namespace vmm::devices
