#include "devices/virtio/block/block.h"

#include <errno.h>

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

uint64_t Block::features() const { return kFeatureFlush | (image_.read_only() ? kFeatureReadOnly : 0); }

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
  const DiskImage& image = image_;
  switch (type) {
    case kTypeIn: {
      const uint64_t len = data.available();
      if (!in_range(len)) return kStatusIoErr;
      // Past the end of the image, inside its last partial sector, the disk reads as zeros.
      const uint64_t image_bytes = image.size_bytes();
      auto read = [&image, image_bytes](uint8_t* p, size_t n, uint64_t off) -> ssize_t {
        if (off < image_bytes) return image.ReadAt(p, std::min<uint64_t>(n, image_bytes - off), off);
        std::memset(p, 0, n);
        return static_cast<ssize_t>(n);
      };
      return Transfer(data.Take(len), sector * kSectorSize, read) ? kStatusOk : kStatusIoErr;
    }
    case kTypeOut: {
      const uint64_t len = request.available();
      if (image.read_only() || !in_range(len)) return kStatusIoErr;
      auto write = [&image](uint8_t* p, size_t n, uint64_t off) { return image.WriteAt(p, n, off); };
      return Transfer(request.Take(len), sector * kSectorSize, write) ? kStatusOk : kStatusIoErr;
    }
    case kTypeFlush:
      return image.Flush() == 0 ? kStatusOk : kStatusIoErr;
    case kTypeGetId: {
      char id[kIdBytes] = {};
      std::memcpy(id, image.name().data(), std::min<size_t>(image.name().size(), kIdBytes));
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
