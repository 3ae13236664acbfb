// Guest RAM: one host mapping laid out as up to two guest-physical regions (below the 32-bit
// MMIO hole and above 4 GiB): anonymous memory, a memfd when another process (a vhost-user
// back end) must map it too, or a snapshot's memory file, copy-on-write. Every access to guest memory goes through this class, which
// checks that the whole range lies inside one region: guest addresses are never trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fd.h"

namespace vmm {

struct MemoryRegion {
  uint64_t guest_addr;
  uint64_t size;
  uint8_t* host;  // start of this region in the host mapping
};

class GuestMemory {
 public:
  // Inaccessible address space mapped right after guest RAM: 4 GiB and a page.
  static constexpr uint64_t kGuardBytes = (uint64_t{1} << 32) + 4096;

  // kFile: a snapshot's memory file (`file_fd`, at least `size_bytes` long), mapped
  // copy-on-write: the guest's writes stay in this process, the file's pages are shared.
  enum class Backing { kPrivate, kSharedMemfd, kFile };
  explicit GuestMemory(uint64_t size_bytes, Backing backing = Backing::kPrivate, int file_fd = -1);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  const std::vector<MemoryRegion>& regions() const { return regions_; }
  uint64_t size() const { return size_; }
  // End of the region that starts at guest address 0 (RAM below the MMIO hole).
  uint64_t low_end() const { return regions_[0].size; }

  // A host pointer to [addr, addr+len) of guest memory, or nullptr if any byte is outside RAM.
  uint8_t* Slice(uint64_t addr, uint64_t len) const;
  // As Slice, but throws VmmError naming `what` when the range is not in RAM.
  uint8_t* SliceOrThrow(uint64_t addr, uint64_t len, const char* what) const;

  void Write(uint64_t addr, const void* data, uint64_t len, const char* what) {
    std::memcpy(SliceOrThrow(addr, len, what), data, len);
  }
  template <typename T>
  void WriteObject(uint64_t addr, const T& value, const char* what) {
    Write(addr, &value, sizeof(T), what);
  }

  // The memfd behind a kSharedMemfd memory (-1 otherwise), and where a region starts in it.
  int shared_fd() const { return memfd_.get(); }
  uint64_t FileOffset(const MemoryRegion& r) const { return static_cast<uint64_t>(r.host - mapping_); }

  // Bytes of guest RAM the host has actually backed with pages (mincore).
  uint64_t ResidentBytes() const;

 private:
  void MapMemfd(const std::string& what);
  void MapFile(int fd, const std::string& what);

  uint8_t* mapping_ = nullptr;
  Fd memfd_;
  uint64_t size_;
  std::vector<MemoryRegion> regions_;
};

}  // namespace vmm
