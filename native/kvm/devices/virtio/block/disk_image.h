// What a virtio disk reads and writes: one host file or block device, or several files laid end
// to end at given offsets, like crosvm's composite disks. An image's layers are one such disk (a
// partition table and one filesystem per layer), so its layer count is not bounded by the VM's
// device slots.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fd.h"

namespace vmm::devices::virtio {

// A file placed at `offset` bytes into the disk (a multiple of 512). With `fd` >= 0 the file is
// already open (a VMM process is handed its files): a duplicate of it is used, `path` names it.
struct DiskPart {
  std::string path;
  uint64_t offset = 0;
  int fd = -1;
};

class DiskImage {
 public:
  // Opens every part; throws VmmError naming the file or the mistake: parts out of order or
  // overlapping, offsets not sector-aligned, a writable part that does not end on a sector.
  DiskImage(const std::vector<DiskPart>& parts, bool read_only);

  // Bytes from the start of the disk to the end of its last part. Gaps between parts, and the
  // rest of the last sector, read as zeros; writes there fail with EIO (no file holds them).
  uint64_t size_bytes() const { return size_bytes_; }
  bool read_only() const { return read_only_; }
  // The first part's file name: what the guest sees as the disk's id.
  const std::string& name() const { return name_; }

  // pread/pwrite-like: up to `n` bytes at disk offset `off`, within one part or gap; the count
  // done or -1 with errno. The caller keeps requests inside the disk.
  ssize_t ReadAt(uint8_t* p, size_t n, uint64_t off) const;
  ssize_t WriteAt(const uint8_t* p, size_t n, uint64_t off) const;
  int Flush() const;

 private:
  struct Extent {
    Fd fd;
    uint64_t offset, bytes;
  };
  // The extent holding byte `off`, or null when `off` is in a gap that ends at *gap_end.
  const Extent* ExtentAt(uint64_t off, uint64_t* gap_end) const;

  std::vector<Extent> extents_;  // in disk order, not overlapping
  bool read_only_;
  uint64_t size_bytes_ = 0;
  std::string name_;
};

}  // namespace vmm::devices::virtio
