// A read-only file for the loaders: reads go straight into guest memory or a small buffer, and
// every short read is an error naming the file.
#pragma once

#include <cstdint>
#include <string>

#include "fd.h"
#include "vstate/memory.h"

namespace vmm::loader {

class File {
 public:
  // `role` names the file in errors ("kernel", "initrd"). With `fd` >= 0 the file is already
  // open (a VMM process is handed its files): a duplicate of it is read, `path` only names it.
  File(const std::string& path, const char* role, int fd = -1);

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Reads exactly `len` bytes at `offset`; false if the file is shorter.
  bool ReadAt(uint64_t offset, void* buf, uint64_t len) const;
  // Reads exactly `len` bytes at `offset` into guest memory at `guest_addr`.
  void ReadIntoGuest(uint64_t offset, uint64_t len, GuestMemory& memory, uint64_t guest_addr) const;

 private:
  std::string path_;
  std::string role_;
  Fd fd_;
  uint64_t size_ = 0;
};

}  // namespace vmm::loader
