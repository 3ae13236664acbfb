#include "devices/virtio/block/block.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "devices/virtio/descriptor_utils.h"
#include "error.h"

namespace vmm::devices::virtio {

namespace {
// virtio 1.2, 5.2.3 and 5.2.6.
constexpr uint64_t kFeatureReadOnly = 1 << 5;
constexpr uint64_t kFeatureFlush = 1 << 9;
constexpr uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8;
constexpr uint8_t kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupported = 2;
constexpr uint32_t kIdBytes = 20;

// struct virtio_blk_outhdr.
struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

// Runs `op(iov, offset)` over `iovs` until each is done; false on any I/O error or a short count.
template <typename Op>
bool Transfer(const std::vector<iovec>& iovs, uint64_t offset, Op op) {
  for (const iovec& v : iovs) {
    for (size_t done = 0; done < v.iov_len;) {
      ssize_t n = op(static_cast<uint8_t*>(v.iov_base) + done, v.iov_len - done, offset);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += n, offset += n;
    }
  }
  return true;
}
}  // namespace

Block::Block(const std::string& path, bool read_only) : read_only_(read_only) {
  int fd = open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) throw VmmError("disk " + path + ": " + std::strerror(errno));
  fd_ = Fd(fd);
  struct stat st;
  CheckSys(fstat(fd, &st), "fstat", path);
  if (S_ISBLK(st.st_mode)) {
    CheckSys(ioctl(fd, BLKGETSIZE64, &size_bytes_), "BLKGETSIZE64", path);
  } else if (S_ISREG(st.st_mode)) {
    size_bytes_ = st.st_size;
  } else {
    throw VmmError("disk " + path + ": not a regular file or block device");
  }
  id_ = path.substr(path.find_last_of('/') + 1).substr(0, kIdBytes);
}

uint64_t Block::features() const { return kFeatureFlush | (read_only_ ? kFeatureReadOnly : 0); }

void Block::ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) {
  // struct virtio_blk_config begins with le64 capacity (in 512-byte sectors); the rest is zero.
  uint8_t config[8];
  const uint64_t capacity = capacity_sectors();
  std::memcpy(config, &capacity, sizeof config);
  for (uint32_t i = 0; i < len; ++i) data[i] = offset + i < sizeof config ? config[offset + i] : 0;
}

bool Block::Process(uint16_t, Queue& queue, const GuestMemory& memory) {
  bool used = false;
  while (auto chain = queue.Pop(memory)) {
    // A request is a header the device reads and a status byte it writes last; without them
    // there is no request to answer, and the queue is broken.
    Reader request(*chain);
    Writer data(*chain), status;
    RequestHeader header;
    if (!request.ReadObject(header) || !data.SplitTail(1, status)) {
      throw QueueError("virtio-blk request without its header or status byte");
    }
    const uint8_t code = Execute(header.type, header.sector, request, data);
    status.WriteObject(code);
    // The data bytes given to the guest, then the status byte.
    const uint64_t given = code == kStatusOk ? data.consumed() : 0;
    queue.AddUsed(memory, chain->head, static_cast<uint32_t>(std::min<uint64_t>(given, UINT32_MAX - 1)) + 1);
    used = true;
  }
  return used;
}

uint8_t Block::Execute(uint32_t type, uint64_t sector, Reader& request, Writer& data) {
  const uint64_t disk_bytes = capacity_sectors() * kSectorSize;
  auto in_range = [&](uint64_t len) {
    return sector <= capacity_sectors() && len <= disk_bytes - sector * kSectorSize;
  };
  const int fd = fd_.get();
  const uint64_t file_bytes = size_bytes_;
  switch (type) {
    case kTypeIn: {
      const uint64_t len = data.available();
      if (!in_range(len)) return kStatusIoErr;
      // Past the end of the file, inside its last partial sector, the disk reads as zeros.
      auto read = [fd, file_bytes](uint8_t* p, size_t n, uint64_t off) -> ssize_t {
        if (off < file_bytes) return pread(fd, p, std::min<uint64_t>(n, file_bytes - off), off);
        std::memset(p, 0, n);
        return static_cast<ssize_t>(n);
      };
      return Transfer(data.Take(len), sector * kSectorSize, read) ? kStatusOk : kStatusIoErr;
    }
    case kTypeOut: {
      const uint64_t len = request.available();
      if (read_only_ || !in_range(len)) return kStatusIoErr;
      auto write = [fd](uint8_t* p, size_t n, uint64_t off) { return pwrite(fd, p, n, off); };
      return Transfer(request.Take(len), sector * kSectorSize, write) ? kStatusOk : kStatusIoErr;
    }
    case kTypeFlush:
      return read_only_ || fdatasync(fd) == 0 ? kStatusOk : kStatusIoErr;
    case kTypeGetId: {
      char id[kIdBytes] = {};
      std::memcpy(id, id_.data(), std::min<size_t>(id_.size(), kIdBytes));
      // As Linux does: a buffer shorter than 20 bytes gets what fits.
      const uint64_t n = std::min<uint64_t>(data.available(), kIdBytes);
      if (n == 0) return kStatusIoErr;
      data.WriteExact(id, n);
      return kStatusOk;
    }
    default:
      return kStatusUnsupported;
  }
}

}  // namespace vmm::devices::virtio
