// virtio-blk requests as the device sees them: reads, writes, flush and GET_ID on a temp file,
// a read-only disk refusing writes, requests past the end failing with IOERR, and requests
// without a header or status byte breaking the queue.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "devices/virtio/block/block.h"
#include "devices/virtio/queue.h"
#include "tests/check.h"
#include "tests/virtq_driver.h"
#include "vstate/memory.h"

using vmm::GuestMemory;
using vmm::VmmError;
using vmm::devices::virtio::Block;
using vmm::devices::virtio::DiskImage;
using vmm::devices::virtio::Queue;
using vmm::devices::virtio::QueueError;

namespace {
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kDesc = 0x10000, kAvail = 0x11000, kUsed = 0x12000, kHeader = 0x20000, kData = 0x21000,
                   kStatus = 0x30000;
constexpr uint16_t kNext = 1, kWrite = 2;
constexpr uint32_t kIn = 0, kOut = 1, kFlush = 4, kGetId = 8, kBogus = 99;

struct Disk {
  std::string path;
  explicit Disk(size_t size = 4096) {
    char name[] = "/tmp/vmm-blk-test-XXXXXX";
    int fd = mkstemp(name);
    path = name;
    std::string content(size, '\0');
    std::memcpy(&content[512], "sector-one", 10);
    (void)!write(fd, content.data(), content.size());
    close(fd);
  }
  ~Disk() { unlink(path.c_str()); }
  std::string Read(off_t offset, size_t len) const {
    std::string s(len, '\0');
    FILE* f = std::fopen(path.c_str(), "rb");
    std::fseek(f, offset, SEEK_SET);
    (void)!std::fread(&s[0], 1, len, f);
    std::fclose(f);
    return s;
  }
};

struct Driver {
  GuestMemory mem{64 * kMiB};
  Queue queue{256};
  uint16_t avail = 0;
  Driver() {
    queue.size = 8;
    queue.ready = true;
    queue.desc_addr = kDesc;
    queue.avail_addr = kAvail;
    queue.used_addr = kUsed;
  }
  void Desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    vmm_test::WriteDescriptor(mem, kDesc, i, addr, len, flags, next);
  }
  // A request as Linux builds it: header, data (if any), status. Returns the status byte.
  uint8_t Request(Block& blk, uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable) {
    uint8_t header[16] = {};
    std::memcpy(header, &type, 4);
    std::memcpy(header + 8, &sector, 8);
    mem.Write(kHeader, header, 16, "header");
    mem.WriteObject<uint8_t>(kStatus, 0xee, "status");
    Desc(0, kHeader, 16, kNext, data_len ? 1 : 2);
    if (data_len) Desc(1, kData, data_len, kNext | (data_writable ? kWrite : 0), 2);
    Desc(2, kStatus, 1, kWrite, 0);
    vmm_test::OfferChain(mem, kAvail, 8, ++avail, 0);
    blk.Process(0, queue, mem);
    uint8_t status;
    std::memcpy(&status, mem.Slice(kStatus, 1), 1);
    return status;
  }
  std::string Data(size_t len) { return std::string(reinterpret_cast<char*>(mem.Slice(kData, len)), len); }
};
}  // namespace

TEST(block_reads_writes_flushes) {
  Disk disk;
  Block blk(disk.path, false);
  CHECK_EQ(blk.capacity_sectors(), 8u);
  uint64_t capacity = 0;
  blk.ReadConfig(0, reinterpret_cast<uint8_t*>(&capacity), 8);
  CHECK_EQ(capacity, 8u);
  Driver d;
  CHECK_EQ(d.Request(blk, kIn, 1, 512, true), 0);
  CHECK_EQ(d.Data(10), std::string("sector-one"));
  d.mem.Write(kData, "from-the-guest", 14, "data");
  CHECK_EQ(d.Request(blk, kOut, 3, 512, false), 0);
  CHECK_EQ(disk.Read(3 * 512, 14), std::string("from-the-guest"));
  CHECK_EQ(d.Request(blk, kFlush, 0, 0, false), 0);
  CHECK_EQ(d.Request(blk, kGetId, 0, 20, true), 0);
  CHECK_EQ(std::string(d.Data(20).c_str()), disk.path.substr(disk.path.find_last_of('/') + 1));
  CHECK_EQ(d.Request(blk, kBogus, 0, 0, false), 2);  // UNSUPP
}

TEST(block_refuses_what_it_must) {
  Disk disk;
  Block ro(disk.path, true);
  Driver d;
  d.mem.Write(kData, "nope", 4, "data");
  CHECK_EQ(d.Request(ro, kOut, 0, 512, false), 1);  // IOERR on a read-only disk
  CHECK_EQ(disk.Read(0, 4), std::string(4, '\0'));
  CHECK_EQ(d.Request(ro, kIn, 8, 512, true), 1);            // starts at the end
  CHECK_EQ(d.Request(ro, kIn, 7, 1024, true), 1);           // runs past the end
  CHECK_EQ(d.Request(ro, kIn, UINT64_MAX / 256, 512, true), 1);  // sector * 512 would wrap
  CHECK_EQ(d.Request(ro, kIn, 7, 512, true), 0);            // the last sector is fine
  CHECK_THROWS(Block("/nonexistent/disk.img", true), VmmError, "disk /nonexistent/disk.img");
}

TEST(block_pads_a_partial_last_sector_with_zeros) {
  Disk disk(1000);  // one whole sector and 488 bytes
  {
    FILE* f = std::fopen(disk.path.c_str(), "r+b");
    std::fseek(f, 990, SEEK_SET);
    std::fwrite("tail-bytes", 1, 10, f);
    std::fclose(f);
  }
  Block ro(disk.path, true);
  CHECK_EQ(ro.capacity_sectors(), 2u);
  Driver d;
  d.mem.Write(kData, std::string(1024, 'x').data(), 1024, "data");
  CHECK_EQ(d.Request(ro, kIn, 0, 1024, true), 0);
  CHECK_EQ(d.Data(1000).substr(990), std::string("tail-bytes"));
  CHECK_EQ(d.Data(1024).substr(1000), std::string(24, '\0'));
  CHECK_EQ(d.Request(ro, kIn, 2, 512, true), 1);  // nothing past the padded sector
}

TEST(block_malformed_requests_break_the_queue) {
  Disk disk;
  Block blk(disk.path, false);
  Driver d;
  // No status byte: only a header.
  d.Desc(0, kHeader, 16, 0, 0);
  vmm_test::OfferChain(d.mem, kAvail, 8, 1, 0);
  CHECK_THROWS(blk.Process(0, d.queue, d.mem), QueueError, "header or status");
  // A header too short to hold type and sector.
  Driver e;
  e.Desc(0, kHeader, 8, kNext, 1);
  e.Desc(1, kStatus, 1, kWrite, 0);
  vmm_test::OfferChain(e.mem, kAvail, 8, 1, 0);
  CHECK_THROWS(blk.Process(0, e.queue, e.mem), QueueError, "header or status");
}

// Regression: a status descriptor of length 0 made the device write its status byte at
// data[len - 1], about 4 GiB past guest RAM. Such a chain is refused before any device sees it.
TEST(block_status_descriptor_of_length_zero_is_refused) {
  Disk disk;
  Block blk(disk.path, false);
  Driver d;
  d.Desc(0, kHeader, 16, kNext, 1);
  d.Desc(1, kStatus, 0, kWrite, 0);
  vmm_test::OfferChain(d.mem, kAvail, 8, 1, 0);
  CHECK_THROWS(blk.Process(0, d.queue, d.mem), QueueError, "zero-length");
}

// The status byte is the last byte of the chain wherever the guest puts it: in a buffer of its
// own, or at the end of the data buffer.
TEST(block_status_byte_at_the_end_of_a_data_buffer) {
  Disk disk;
  Block blk(disk.path, true);
  Driver d;
  uint8_t header[16] = {};  // IN, sector 1
  header[8] = 1;
  d.mem.Write(kHeader, header, 16, "header");
  d.mem.Write(kData, std::string(513, 'x').data(), 513, "data");
  d.Desc(0, kHeader, 16, kNext, 1);
  d.Desc(1, kData, 513, kWrite, 0);
  vmm_test::OfferChain(d.mem, kAvail, 8, 1, 0);
  blk.Process(0, d.queue, d.mem);
  CHECK_EQ(d.Data(10), std::string("sector-one"));
  CHECK_EQ(static_cast<int>(d.mem.Slice(kData + 512, 1)[0]), 0);  // OK
  uint32_t used_len;
  std::memcpy(&used_len, d.mem.Slice(kUsed + 8, 4), 4);
  CHECK_EQ(used_len, 513u);
}

// Image layers end to end on one read-only disk: each part reads back at its offset, reads span
// part boundaries, gaps and the partial last sector read as zeros, and nothing can be written.
TEST(block_composite_disk_of_several_files) {
  Disk a(1000), b(600);  // "sector-one" at byte 512 of each
  Block blk(DiskImage({{a.path, 0}, {b.path, 2048}}, true));
  CHECK_EQ(blk.capacity_sectors(), 6u);  // 2048 + 600 bytes, rounded up
  Driver d;
  d.mem.Write(kData, std::string(3072, 'x').data(), 3072, "data");
  CHECK_EQ(d.Request(blk, kIn, 0, 3072, true), 0);
  const std::string disk = d.Data(3072);
  CHECK_EQ(disk.substr(512, 10), std::string("sector-one"));
  CHECK_EQ(disk.substr(1000, 1048), std::string(1048, '\0'));  // a's end to b's start
  CHECK_EQ(disk.substr(2048 + 512, 10), std::string("sector-one"));
  CHECK_EQ(disk.substr(2648, 424), std::string(424, '\0'));  // b's end to the sector's end
  CHECK_EQ(d.Request(blk, kIn, 6, 512, true), 1);  // past the end
  CHECK_EQ(d.Request(blk, kOut, 0, 512, false), 1);
  CHECK_EQ(a.Read(0, 4), std::string(4, '\0'));
}

// The disk an unpack writes: each write lands in the part that holds it, at the right place in
// that file; one spanning two parts is split between them; a write into a gap fails.
TEST(block_writable_composite_disk) {
  Disk a(1024), b(1024);
  Block blk(DiskImage({{a.path, 0}, {b.path, 2048}}, false));
  Driver d;
  d.mem.Write(kData, std::string(512, 'y').data(), 512, "data");
  CHECK_EQ(d.Request(blk, kOut, 5, 512, false), 0);  // sector 5: b's second sector
  CHECK_EQ(b.Read(512, 4), std::string("yyyy"));
  CHECK_EQ(b.Read(0, 4), std::string(4, '\0'));
  CHECK_EQ(d.Request(blk, kOut, 2, 512, false), 1);  // sector 2: the gap between them
  CHECK_EQ(d.Request(blk, kOut, 1, 512, false), 0);  // a's last sector
  CHECK_EQ(a.Read(512, 4), std::string("yyyy"));
  Disk c(1024), e(1024);
  Block joined(DiskImage({{c.path, 0}, {e.path, 1024}}, false));
  d.mem.Write(kData, std::string(1024, 'z').data(), 1024, "data");
  CHECK_EQ(d.Request(joined, kOut, 1, 1024, false), 0);  // c's second sector and e's first
  CHECK_EQ(c.Read(512, 4), std::string("zzzz"));
  CHECK_EQ(e.Read(0, 4), std::string("zzzz"));
  CHECK_EQ(e.Read(512, 4), std::string("sect"));  // untouched
}

TEST(block_composite_disk_refuses_bad_layouts) {
  Disk a(1000), b(600);
  CHECK_THROWS(DiskImage({{a.path, 0}, {b.path, 512}}, true), VmmError, "overlaps");
  CHECK_THROWS(DiskImage({{a.path, 0}, {b.path, 1100}}, true), VmmError, "not a multiple of 512");
  CHECK_THROWS(DiskImage({{a.path, 0}, {b.path, 2048}}, false), VmmError, "whole number of 512-byte sectors");
  CHECK_THROWS(DiskImage({}, true), VmmError, "at least one file");
  CHECK_THROWS(DiskImage({{a.path, 0}, {"/nonexistent/layer", 2048}}, true), VmmError, "/nonexistent/layer");
}
