// The split virtqueue (virtio 1.2, 2.7): the descriptor table, the driver's available ring and
// the device's used ring, all in guest memory written by a guest we do not trust. Every index,
// length and address read from them is checked; a broken ring throws QueueError and the
// transport marks the device as needing a reset.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <vector>

#include "error.h"
#include "vstate/memory.h"

namespace vmm::devices::virtio {

class QueueError : public VmmError {
 public:
  using VmmError::VmmError;
};

// One buffer of a chain, already translated to host memory and bounds-checked; never empty.
// Devices reach it only through descriptor_utils' Reader and Writer.
struct Buffer {
  uint8_t* data;
  uint32_t len;
};

// A descriptor chain: the buffers the device reads, then those it writes (the spec's order).
struct DescriptorChain {
  uint16_t head;
  std::vector<Buffer> readable;
  std::vector<Buffer> writable;
};

// A queue as a snapshot keeps it: the driver's configuration and the device's place in the rings.
// Laid out without padding: it goes into a file byte for byte.
struct QueueState {
  uint64_t desc_addr, avail_addr, used_addr;
  uint16_t size, next_avail, next_used;
  uint8_t ready, reserved;
};
static_assert(sizeof(QueueState) == 32, "QueueState has no padding");

class Queue {
 public:
  explicit Queue(uint16_t max_size) : max_size_(max_size) {}

  // Configuration, set by the driver through the transport before DRIVER_OK.
  uint16_t max_size() const { return max_size_; }
  uint16_t size = 0;
  bool ready = false;
  uint64_t desc_addr = 0;
  uint64_t avail_addr = 0;
  uint64_t used_addr = 0;

  // Whether the configuration is usable: a power-of-two size within max_size and three aligned
  // rings wholly inside guest RAM.
  bool IsValid(const GuestMemory& memory) const;
  bool SizeIsValid() const;
  void Reset();

  // The next chain the driver made available, or nothing. Throws QueueError on a malformed ring
  // or a size that is not valid now.
  std::optional<DescriptorChain> Pop(const GuestMemory& memory);
  QueueState Save() const;
  // Takes a saved state back whole; the transport checks it as it checks the driver's writes.
  void Restore(const QueueState& state);

  // Returns chain `head` to the driver, `written` bytes of it filled.
  void AddUsed(const GuestMemory& memory, uint16_t head, uint32_t written);

 private:
  uint16_t max_size_;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
};

}  // namespace vmm::devices::virtio
