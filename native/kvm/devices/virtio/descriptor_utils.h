// Reading and writing the guest buffers of a descriptor chain as streams (as crosvm's
// descriptor_utils and rust-vmm's virtio-queue do). Devices touch a chain's memory only through a
// Reader (its device-readable part) and a Writer (its device-writable part): every access is
// bounded by what the chain holds, so no device does arithmetic on guest pointers of its own.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "devices/virtio/queue.h"

namespace vmm::devices::virtio {

// A cursor over a list of bounds-checked buffers, taken as one stream.
class BufferCursor {
 public:
  explicit BufferCursor(std::vector<Buffer> buffers);
  // Bytes not yet consumed.
  uint64_t available() const { return available_; }
  // Bytes consumed so far.
  uint64_t consumed() const { return consumed_; }
  // The next `len` bytes (fewer when the buffers end first) as iovecs, consumed.
  std::vector<iovec> Take(uint64_t len);
  // Before anything is consumed: keeps the first `at` bytes and makes `rest` a cursor over the
  // others; false (and nothing changed) when it holds fewer.
  bool SplitAt(uint64_t at, BufferCursor& rest);
  // As SplitAt, keeping all but the last `len` bytes, which go to `tail`.
  bool SplitTail(uint64_t len, BufferCursor& tail);

 protected:
  BufferCursor() = default;
  std::vector<Buffer> buffers_;
  size_t index_ = 0;      // the buffer the cursor is in
  uint64_t offset_ = 0;   // how far into it
  uint64_t available_ = 0;
  uint64_t consumed_ = 0;
};

// The device-readable part of a chain.
class Reader : public BufferCursor {
 public:
  explicit Reader(const DescriptorChain& chain) : BufferCursor(chain.readable) {}
  explicit Reader(std::vector<Buffer> buffers) : BufferCursor(std::move(buffers)) {}
  // Copies the next `len` bytes out; false (nothing consumed) when fewer are left.
  bool ReadExact(void* out, uint64_t len);
  template <typename T>
  bool ReadObject(T& out) {
    return ReadExact(&out, sizeof out);
  }
};

// The device-writable part of a chain.
class Writer : public BufferCursor {
 public:
  explicit Writer(const DescriptorChain& chain) : BufferCursor(chain.writable) {}
  explicit Writer(std::vector<Buffer> buffers) : BufferCursor(std::move(buffers)) {}
  // Copies `len` bytes in; false (nothing written) when the chain has less room.
  bool WriteExact(const void* data, uint64_t len);
  template <typename T>
  bool WriteObject(const T& value) {
    return WriteExact(&value, sizeof value);
  }
  Writer() = default;
};

}  // namespace vmm::devices::virtio
