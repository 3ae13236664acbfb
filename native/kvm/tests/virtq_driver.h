// What a virtio driver writes into guest memory, for the device tests: descriptors and the
// available ring of a split virtqueue (virtio 1.2, 2.7).
#pragma once

#include <cstdint>
#include <cstring>

#include "devices/virtio/queue.h"
#include "vstate/memory.h"

namespace vmm_test {

// Sets a queue up as a driver would before DRIVER_OK.
inline void ConfigureQueue(vmm::devices::virtio::Queue& q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used) {
  q.size = size;
  q.ready = true;
  q.desc_addr = desc;
  q.avail_addr = avail;
  q.used_addr = used;
}

inline void WriteDescriptor(vmm::GuestMemory& mem, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
                            uint16_t flags, uint16_t next = 0) {
  uint8_t d[16];  // struct virtq_desc
  std::memcpy(d, &addr, 8);
  std::memcpy(d + 8, &len, 4);
  std::memcpy(d + 12, &flags, 2);
  std::memcpy(d + 14, &next, 2);
  mem.Write(table + 16 * uint64_t{i}, d, 16, "descriptor");
}

// Makes chain `head` available as the `count`-th entry (1-based) of a ring of `size`.
inline void OfferChain(vmm::GuestMemory& mem, uint64_t avail, uint16_t size, uint16_t count, uint16_t head) {
  mem.WriteObject<uint16_t>(avail + 4 + 2 * ((count - 1) % size), head, "avail ring");
  mem.WriteObject<uint16_t>(avail + 2, count, "avail idx");
}

}  // namespace vmm_test
