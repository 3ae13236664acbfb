#include "devices/virtio/block/disk_image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "error.h"

namespace vmm::devices::virtio {

namespace {
constexpr uint64_t kSectorSize = 512;

uint64_t SizeOf(int fd, const std::string& path) {
  struct stat st;
  CheckSys(fstat(fd, &st), "fstat", path);
  if (S_ISREG(st.st_mode)) return st.st_size;
  if (!S_ISBLK(st.st_mode)) throw VmmError("disk " + path + ": not a regular file or block device");
  uint64_t bytes = 0;
  CheckSys(ioctl(fd, BLKGETSIZE64, &bytes), "BLKGETSIZE64", path);
  return bytes;
}
}  // namespace

DiskImage::DiskImage(const std::vector<DiskPart>& parts, bool read_only) : read_only_(read_only) {
  if (parts.empty()) throw VmmError("a disk needs at least one file");
  for (const DiskPart& part : parts) {
    if (part.offset % kSectorSize != 0) {
      throw VmmError("disk part " + part.path + ": offset " + std::to_string(part.offset) + " is not a multiple of 512");
    }
    if (part.offset < size_bytes_) {
      throw VmmError("disk part " + part.path + ": offset " + std::to_string(part.offset) + " overlaps the part before it");
    }
    int fd = part.fd >= 0 ? fcntl(part.fd, F_DUPFD_CLOEXEC, 0) : open(part.path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) throw VmmError("disk " + part.path + ": " + std::strerror(errno));
    Extent extent{Fd(fd), part.offset, 0};
    extent.bytes = SizeOf(fd, part.path);
    if (extent.bytes > UINT64_MAX / 2 - part.offset) throw VmmError("disk part " + part.path + ": too large");
    // A guest writing the sector that holds a part's end would need bytes no file has.
    if (!read_only && parts.size() > 1 && extent.bytes % kSectorSize != 0) {
      throw VmmError("disk part " + part.path + ": a writable part must be a whole number of 512-byte sectors");
    }
    size_bytes_ = part.offset + extent.bytes;
    extents_.push_back(std::move(extent));
  }
  const std::string& first = parts[0].path;
  name_ = first.substr(first.find_last_of('/') + 1);
}

const DiskImage::Extent* DiskImage::ExtentAt(uint64_t off, uint64_t* gap_end) const {
  // The last extent starting at or before `off`; the bytes from `off` to the next extent (or
  // the end) that it does not cover are a gap.
  auto next = std::upper_bound(extents_.begin(), extents_.end(), off, [](uint64_t o, const Extent& e) { return o < e.offset; });
  *gap_end = next == extents_.end() ? UINT64_MAX : next->offset;
  if (next != extents_.begin() && off < (next - 1)->offset + (next - 1)->bytes) return &*(next - 1);
  return nullptr;
}

ssize_t DiskImage::ReadAt(uint8_t* p, size_t n, uint64_t off) const {
  uint64_t gap_end;
  if (const Extent* e = ExtentAt(off, &gap_end)) {
    return pread(e->fd.get(), p, std::min<uint64_t>(n, e->offset + e->bytes - off), off - e->offset);
  }
  const size_t zeros = std::min<uint64_t>(n, gap_end - off);
  std::memset(p, 0, zeros);
  return static_cast<ssize_t>(zeros);
}

ssize_t DiskImage::WriteAt(const uint8_t* p, size_t n, uint64_t off) const {
  if (read_only_) {
    errno = EROFS;
    return -1;
  }
  // A single file takes writes into its last partial sector; a part of several cannot.
  if (extents_.size() == 1 && extents_[0].offset == 0) return pwrite(extents_[0].fd.get(), p, n, off);
  uint64_t gap_end;
  const Extent* e = ExtentAt(off, &gap_end);
  if (!e) {
    errno = EIO;
    return -1;
  }
  return pwrite(e->fd.get(), p, std::min<uint64_t>(n, e->offset + e->bytes - off), off - e->offset);
}

int DiskImage::Flush() const {
  if (read_only_) return 0;
  for (const Extent& e : extents_) {
    if (fdatasync(e.fd.get()) != 0) return -1;
  }
  return 0;
}

}  // namespace vmm::devices::virtio
