// The MP table: how a guest without ACPI finds its CPUs and IOAPIC. A bad checksum or count and
// Linux silently boots with one CPU or no IOAPIC.
#include <cstdint>
#include <cstring>
#include <string>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "error.h"
#include "tests/check.h"
#include "vstate/memory.h"

using vmm::GuestMemory;

namespace {
uint8_t Sum(const uint8_t* p, size_t len) {
  uint8_t s = 0;
  for (size_t i = 0; i < len; ++i) s += p[i];
  return s;
}
template <typename T>
T Get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void CheckTable(uint32_t n) {
  GuestMemory mem(64 << 20);
  CHECK_NOTHROW(vmm::x86_64::WriteMpTable(mem, n));
  const uint8_t* fp = mem.Slice(0x9fc00, 16);
  CHECK(std::memcmp(fp, "_MP_", 4) == 0);
  CHECK_EQ(fp[8], uint8_t{1});  // length in 16-byte units
  CHECK_EQ(fp[9], uint8_t{4});  // spec 1.4
  CHECK_EQ(Sum(fp, 16), uint8_t{0});
  for (int i = 11; i < 16; ++i) CHECK_EQ(fp[i], uint8_t{0});  // feature bytes: no default config
  const uint32_t table_addr = Get<uint32_t>(fp + 4);
  CHECK(table_addr >= 0x9fc00 + 16 && table_addr < 0xa0000);  // inside the EBDA
  const uint8_t* hdr = mem.Slice(table_addr, 44);
  if (!hdr) return void(CHECK(hdr != nullptr));
  CHECK(std::memcmp(hdr, "PCMP", 4) == 0);
  const uint16_t length = Get<uint16_t>(hdr + 4);
  CHECK_EQ(hdr[6], uint8_t{4});
  const uint8_t* table = mem.Slice(table_addr, length);
  // Past ~37 CPUs the table outgrows the 1 KiB EBDA; it must still end below 1 MiB, where all
  // of 0x9fc00..0x100000 is reserved in the e820 map.
  CHECK(table != nullptr && table_addr + length <= 0x100000);
  if (!table) return;
  CHECK_EQ(Sum(table, length), uint8_t{0});
  const uint16_t count = Get<uint16_t>(hdr + 34);
  CHECK_EQ(count, uint16_t(n + 1 + 1 + 24 + 2));  // CPUs, ISA bus, IOAPIC, 24 pins, LINT0/1
  CHECK_EQ(Get<uint32_t>(hdr + 36), uint32_t{0xfee00000});  // local APIC

  // Walk the entries by their types and sizes, as Linux's smp_read_mpc does.
  size_t pos = 44;
  uint32_t cpus = 0, bsps = 0, ioapics = 0, buses = 0, ioints = 0, lints = 0;
  bool ids_in_order = true, cpus_enabled = true, bsp_is_cpu0 = false, ioapic_ok = false, ints_to_ioapic = true;
  for (uint16_t i = 0; i < count && pos < length; ++i) {
    const uint8_t* e = table + pos;
    switch (e[0]) {
      case 0:
        if (e[1] != cpus) ids_in_order = false;
        if (!(e[3] & 1)) cpus_enabled = false;
        if (e[3] & 2) {
          ++bsps;
          bsp_is_cpu0 = e[1] == 0;
        }
        ++cpus, pos += 20;
        break;
      case 1:
        ++buses, pos += 8;
        break;
      case 2:
        ++ioapics;
        ioapic_ok = e[1] == n + 1 && (e[3] & 1) && Get<uint32_t>(e + 4) == 0xfec00000;
        pos += 8;
        break;
      case 3:
        if (e[6] != n + 1) ints_to_ioapic = false;
        ++ioints, pos += 8;
        break;
      case 4:
        ++lints, pos += 8;
        break;
      default:
        pos = length;  // unknown type: stop
        break;
    }
  }
  CHECK_EQ(pos, size_t{length});  // the entries fill the table exactly
  CHECK_EQ(cpus, n);
  CHECK(ids_in_order);  // APIC ids 0..n-1
  CHECK(cpus_enabled);
  CHECK_EQ(bsps, uint32_t{1});
  CHECK(bsp_is_cpu0);
  CHECK_EQ(buses, uint32_t{1});
  CHECK_EQ(ioapics, uint32_t{1});
  CHECK(ioapic_ok);  // id n+1, enabled, at 0xfec00000
  CHECK_EQ(ioints, uint32_t{24});
  CHECK(ints_to_ioapic);
  CHECK_EQ(lints, uint32_t{2});
}
}  // namespace

TEST(mptable_1_cpu) { CheckTable(1); }
TEST(mptable_4_cpus) { CheckTable(4); }
TEST(mptable_254_cpus) { CheckTable(vmm::x86_64::kMpTableMaxCpus); }

TEST(mptable_refuses_bad_counts) {
  GuestMemory mem(64 << 20);
  CHECK_THROWS(vmm::x86_64::WriteMpTable(mem, 0), vmm::VmmError, "1 to 254 vCPUs");
  CHECK_THROWS(vmm::x86_64::WriteMpTable(mem, 255), vmm::VmmError, "1 to 254 vCPUs");
  CHECK_THROWS(vmm::x86_64::WriteMpTable(mem, 100000), vmm::VmmError, "1 to 254 vCPUs");
  CHECK_EQ(*mem.Slice(0x9fc00, 1), uint8_t{0});  // nothing written
}
