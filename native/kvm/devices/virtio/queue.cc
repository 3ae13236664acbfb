#include "devices/virtio/queue.h"

#include <cstring>

namespace vmm::devices::virtio {

namespace {
// virtio 1.2, 2.7.5: struct virtq_desc.
struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;

uint64_t DescTableBytes(uint16_t size) { return uint64_t{16} * size; }
uint64_t AvailRingBytes(uint16_t size) { return 6 + uint64_t{2} * size; }  // flags, idx, ring, used_event
uint64_t UsedRingBytes(uint16_t size) { return 6 + uint64_t{8} * size; }   // flags, idx, ring, avail_event

uint16_t LoadAcquire(const uint8_t* p) { return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE); }
void StoreRelease(uint8_t* p, uint16_t v) { __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELEASE); }
}  // namespace

bool Queue::SizeIsValid() const { return size != 0 && size <= max_size_ && (size & (size - 1)) == 0; }

bool Queue::IsValid(const GuestMemory& memory) const {
  return SizeIsValid() && desc_addr % 16 == 0 && avail_addr % 2 == 0 &&
         used_addr % 4 == 0 && memory.Slice(desc_addr, DescTableBytes(size)) &&
         memory.Slice(avail_addr, AvailRingBytes(size)) && memory.Slice(used_addr, UsedRingBytes(size));
}

QueueState Queue::Save() const {
  return {desc_addr, avail_addr, used_addr, size, next_avail_, next_used_, static_cast<uint8_t>(ready), 0};
}

void Queue::Restore(const QueueState& state) {
  size = state.size;
  ready = state.ready != 0;
  desc_addr = state.desc_addr;
  avail_addr = state.avail_addr;
  used_addr = state.used_addr;
  next_avail_ = state.next_avail;
  next_used_ = state.next_used;
}

void Queue::Reset() {
  size = 0;
  ready = false;
  desc_addr = avail_addr = used_addr = 0;
  next_avail_ = next_used_ = 0;
}

std::optional<DescriptorChain> Queue::Pop(const GuestMemory& memory) {
  // Checked at every use, not only at DRIVER_OK: whatever the order of register writes, a size
  // that is not one never reaches the arithmetic below.
  if (!SizeIsValid()) throw QueueError("virtqueue size is not a power of two within its maximum");
  uint8_t* avail = memory.Slice(avail_addr, AvailRingBytes(size));
  uint8_t* table = memory.Slice(desc_addr, DescTableBytes(size));
  if (!avail || !table) throw QueueError("virtqueue rings are outside guest memory");

  const uint16_t avail_idx = LoadAcquire(avail + 2);
  if (avail_idx == next_avail_) return std::nullopt;
  if (static_cast<uint16_t>(avail_idx - next_avail_) > size) throw QueueError("available index ran more than a queue ahead");

  uint16_t head;
  std::memcpy(&head, avail + 4 + 2 * (next_avail_ % size), sizeof head);
  ++next_avail_;

  DescriptorChain chain{head, {}, {}};
  uint16_t index = head;
  // A chain visits each descriptor at most once; longer means the guest made a loop.
  for (uint32_t steps = 0;; ++steps) {
    if (index >= size) throw QueueError("descriptor index out of range");
    if (steps >= size) throw QueueError("descriptor chain loops");
    Descriptor d;
    std::memcpy(&d, table + 16 * uint64_t{index}, sizeof d);
    if (d.flags & kDescIndirect) throw QueueError("indirect descriptor, which was not negotiated");
    // An empty buffer carries nothing; refusing it means no device ever sees a buffer of length 0.
    if (d.len == 0) throw QueueError("zero-length descriptor");
    uint8_t* data = memory.Slice(d.addr, d.len);
    if (!data) throw QueueError("descriptor buffer is outside guest memory");
    if (d.flags & kDescWrite) {
      chain.writable.push_back({data, d.len});
    } else {
      if (!chain.writable.empty()) throw QueueError("device-readable descriptor after a writable one");
      chain.readable.push_back({data, d.len});
    }
    if (!(d.flags & kDescNext)) break;
    index = d.next;
  }
  return chain;
}

void Queue::AddUsed(const GuestMemory& memory, uint16_t head, uint32_t written) {
  if (!SizeIsValid()) throw QueueError("virtqueue size is not a power of two within its maximum");
  uint8_t* used = memory.Slice(used_addr, UsedRingBytes(size));
  if (!used) throw QueueError("virtqueue used ring is outside guest memory");
  const uint32_t element[2] = {head, written};  // struct virtq_used_elem { le32 id; le32 len; }
  std::memcpy(used + 4 + 8 * (next_used_ % size), element, sizeof element);
  ++next_used_;
  StoreRelease(used + 2, next_used_);
}

}  // namespace vmm::devices::virtio
