#include "devices/virtio/block/block.h"

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
// virtio 1.2, 5.2.3 and 5.2.6.
constexpr uint64_t kFeatureReadOnly = 1 << 5;
constexpr uint64_t kFeatureFlush = 1 << 9;
constexpr uint32_t kTypeIn = 0, kTypeOut = 1, kTypeFlush = 4, kTypeGetId = 8;
constexpr uint8_t kStatusOk = 0, kStatusIoErr = 1, kStatusUnsupported = 2;
constexpr uint32_t kIdBytes = 20;
constexpr uint32_t kHeaderBytes = 16;  // le32 type, le32 reserved, le64 sector

// Copies between the disk and a list of guest buffers at `offset`; false on any I/O error.
template <typename Op>
bool Transfer(const std::vector<Buffer>& buffers, uint64_t offset, Op op) {
  for (const Buffer& b : buffers) {
    for (uint32_t done = 0; done < b.len;) {
      ssize_t n = op(b.data + done, b.len - done, offset);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += n, offset += n;
    }
  }
  return true;
}

uint64_t TotalLength(const std::vector<Buffer>& buffers) {
  uint64_t total = 0;
  for (const Buffer& b : buffers) total += b.len;
  return total;
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
    if (chain->readable.empty() || chain->readable[0].len < kHeaderBytes || chain->writable.empty()) {
      throw QueueError("virtio-blk request without its header or status byte");
    }
    uint32_t type;
    uint64_t sector;
    std::memcpy(&type, chain->readable[0].data, sizeof type);
    std::memcpy(&sector, chain->readable[0].data + 8, sizeof sector);
    uint32_t written = 0;
    const uint8_t status = Execute(*chain, type, sector, written);
    const Buffer& status_buffer = chain->writable.back();
    status_buffer.data[status_buffer.len - 1] = status;
    queue.AddUsed(memory, chain->head, written + 1);
    used = true;
  }
  return used;
}

uint8_t Block::Execute(const DescriptorChain& chain, uint32_t type, uint64_t sector, uint32_t& written) {
  // Data buffers: what follows the header (OUT) or precedes the status byte (IN, GET_ID).
  std::vector<Buffer> in_data(chain.writable.begin(), chain.writable.end() - 1);
  if (chain.writable.back().len > 1) in_data.push_back({chain.writable.back().data, chain.writable.back().len - 1});
  std::vector<Buffer> out_data(chain.readable.begin() + 1, chain.readable.end());
  if (chain.readable[0].len > kHeaderBytes) {
    out_data.insert(out_data.begin(), {chain.readable[0].data + kHeaderBytes, chain.readable[0].len - kHeaderBytes});
  }

  const uint64_t disk_bytes = capacity_sectors() * kSectorSize;
  auto in_range = [&](uint64_t len) {
    return sector <= capacity_sectors() && len <= disk_bytes - sector * kSectorSize;
  };
  const int fd = fd_.get();
  const uint64_t file_bytes = size_bytes_;
  switch (type) {
    case kTypeIn: {
      const uint64_t len = TotalLength(in_data);
      if (!in_range(len)) return kStatusIoErr;
      // Past the end of the file, inside its last partial sector, the disk reads as zeros.
      auto read = [fd, file_bytes](uint8_t* p, size_t n, uint64_t off) -> ssize_t {
        if (off < file_bytes) return pread(fd, p, std::min<uint64_t>(n, file_bytes - off), off);
        std::memset(p, 0, n);
        return static_cast<ssize_t>(n);
      };
      if (!Transfer(in_data, sector * kSectorSize, read)) return kStatusIoErr;
      written = static_cast<uint32_t>(std::min<uint64_t>(len, UINT32_MAX - 1));
      return kStatusOk;
    }
    case kTypeOut: {
      if (read_only_ || !in_range(TotalLength(out_data))) return kStatusIoErr;
      return Transfer(out_data, sector * kSectorSize, [fd](uint8_t* p, size_t n, uint64_t off) { return pwrite(fd, p, n, off); })
                 ? kStatusOk
                 : kStatusIoErr;
    }
    case kTypeFlush:
      return read_only_ || fdatasync(fd) == 0 ? kStatusOk : kStatusIoErr;
    case kTypeGetId: {
      if (in_data.empty()) return kStatusIoErr;
      const uint32_t n = std::min<uint32_t>(in_data[0].len, kIdBytes);
      std::memset(in_data[0].data, 0, n);
      std::memcpy(in_data[0].data, id_.data(), std::min<size_t>(id_.size(), n));
      written = n;
      return kStatusOk;
    }
    default:
      return kStatusUnsupported;
  }
}

}  // namespace vmm::devices::virtio
