// The I/O bus: a vCPU exit is dispatched by address; misses read as all ones.
#include <cstdint>
#include <memory>
#include <vector>

#include "devices/bus.h"
#include "error.h"
#include "tests/check.h"

using vmm::devices::Bus;
using vmm::devices::BusDevice;

namespace {
struct Recorder : BusDevice {
  uint8_t fill;
  explicit Recorder(uint8_t f) : fill(f) {}
  std::vector<uint64_t> reads, writes;
  std::vector<uint32_t> lens;
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override {
    reads.push_back(offset);
    lens.push_back(len);
    for (uint32_t i = 0; i < len; ++i) data[i] = fill;
  }
  void Write(uint64_t offset, const uint8_t*, uint32_t len) override {
    writes.push_back(offset);
    lens.push_back(len);
  }
};
}  // namespace

TEST(bus_overlapping_inserts_throw) {
  Bus bus;
  auto d = std::make_shared<Recorder>(0);
  CHECK_NOTHROW(bus.Insert(0x100, 0x10, d));
  CHECK_THROWS(bus.Insert(0x100, 0x10, d), vmm::VmmError, "overlap");  // same range
  CHECK_THROWS(bus.Insert(0xf8, 0x10, d), vmm::VmmError, "overlap");   // over the start
  CHECK_THROWS(bus.Insert(0x10f, 0x10, d), vmm::VmmError, "overlap");  // over the end
  CHECK_THROWS(bus.Insert(0x104, 0x4, d), vmm::VmmError, "overlap");   // inside
  CHECK_THROWS(bus.Insert(0x0, 0x1000, d), vmm::VmmError, "overlap");  // around
  CHECK_THROWS(bus.Insert(0x200, 0, d), vmm::VmmError, "overlap");     // empty range
  // A range whose end wraps past 2^64 still overlaps what lies after its base.
  CHECK_THROWS(bus.Insert(0x80, UINT64_MAX, d), vmm::VmmError, "overlap");
  CHECK_NOTHROW(bus.Insert(0xf0, 0x10, d));   // adjacent below
  CHECK_NOTHROW(bus.Insert(0x110, 0x10, d));  // adjacent above
  CHECK_NOTHROW(bus.Insert(UINT64_MAX - 0xf, 0x10, d));  // ends exactly at 2^64
  CHECK_THROWS(bus.Insert(UINT64_MAX - 4, 1, d), vmm::VmmError, "overlap");  // inside that one
  CHECK_THROWS(bus.Insert(UINT64_MAX, 1, d), vmm::VmmError, "overlap");
}

TEST(bus_dispatch_and_misses) {
  Bus bus;
  auto serial = std::make_shared<Recorder>(0x42);
  auto other = std::make_shared<Recorder>(0x17);
  bus.Insert(0x3f8, 8, serial);
  bus.Insert(0x60, 5, other);

  uint8_t buf[4] = {0, 0, 0, 0};
  CHECK(bus.Read(0x3f8, buf, 1));
  CHECK_EQ(buf[0], uint8_t{0x42});
  CHECK(bus.Read(0x3ff, buf, 1));  // last port
  CHECK(bus.Read(0x3fc, buf, 4));  // ends exactly at the range's end
  CHECK(serial->reads == (std::vector<uint64_t>{0, 7, 4}));
  CHECK(bus.Write(0x3f9, buf, 1));
  CHECK(serial->writes == std::vector<uint64_t>{1});
  CHECK(bus.Read(0x64, buf, 1));
  CHECK_EQ(buf[0], uint8_t{0x17});
  CHECK(other->reads == std::vector<uint64_t>{4});

  const size_t serial_reads = serial->reads.size();
  uint8_t miss[4] = {1, 2, 3, 4};
  CHECK(!bus.Read(0x3f7, miss, 1));  // just below
  CHECK_EQ(miss[0], uint8_t{0xff});
  CHECK_EQ(miss[1], uint8_t{2});     // only `len` bytes are filled
  CHECK(!bus.Read(0x400, miss, 4));  // just above
  CHECK(miss[0] == 0xff && miss[1] == 0xff && miss[2] == 0xff && miss[3] == 0xff);
  CHECK(!bus.Read(0x3fe, miss, 4));  // straddles the end
  CHECK(!bus.Read(0x3ff, miss, 2));
  CHECK(!bus.Read(0x3f6, miss, 4));  // straddles the start
  CHECK(!bus.Read(0, miss, 1));      // below every range
  CHECK(!bus.Read(UINT64_MAX, miss, 1));
  CHECK(!bus.Write(0x3fe, miss, 4));
  CHECK(!bus.Write(0x500, miss, 1));
  CHECK_EQ(serial->reads.size(), serial_reads);  // no miss reached the device
  CHECK_EQ(serial->writes.size(), size_t{1});
}
