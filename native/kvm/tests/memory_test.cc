// GuestMemory: every guest address goes through Slice, so its bounds are what keeps a guest (or a
// bad kernel image) from reaching host memory outside the mapping.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>

#include "arch/x86_64/layout.h"
#include "error.h"
#include "tests/check.h"
#include "vstate/memory.h"

using vmm::GuestMemory;

namespace {
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGiB = 1ull << 30;
}  // namespace

TEST(memory_small_bounds) {
  GuestMemory mem(64 * kMiB);
  const uint64_t size = 64 * kMiB;
  CHECK_EQ(mem.size(), size);
  CHECK_EQ(mem.regions().size(), size_t{1});
  CHECK_EQ(mem.low_end(), size);
  uint8_t* base = mem.Slice(0, 1);
  CHECK(base != nullptr);
  CHECK(mem.Slice(0, size) == base);
  CHECK(mem.Slice(0x1000, 16) == base + 0x1000);
  CHECK(mem.Slice(size - 1, 1) == base + size - 1);  // last byte
  CHECK(mem.Slice(size - 16, 16) == base + size - 16);
  CHECK(mem.Slice(size, 0) != nullptr);  // empty range at the end
  CHECK(mem.Slice(size - 1, 2) == nullptr);  // crosses the end
  CHECK(mem.Slice(size, 1) == nullptr);
  CHECK(mem.Slice(0, size + 1) == nullptr);
  CHECK(mem.Slice(size + 1, 0) == nullptr);
  // addr + len wraps around 2^64: a naive `addr + len <= end` would let these through.
  CHECK(mem.Slice(UINT64_MAX, 1) == nullptr);
  CHECK(mem.Slice(UINT64_MAX - 15, 32) == nullptr);
  CHECK(mem.Slice(1, UINT64_MAX) == nullptr);
  CHECK(mem.Slice(0x1000, UINT64_MAX - 0x800) == nullptr);
  CHECK(mem.Slice(0, UINT64_MAX) == nullptr);

  // Fresh memory reads as zero; Write lands where Slice points.
  CHECK_EQ(*mem.Slice(0x2000, 1), uint8_t{0});
  mem.WriteObject<uint32_t>(0x2000, 0xdeadbeef, "word");
  CHECK_EQ(base[0x2000], uint8_t{0xef});
  CHECK_EQ(base[0x2003], uint8_t{0xde});
  CHECK_THROWS(mem.WriteObject<uint32_t>(size - 2, 1, "edge word"), vmm::VmmError, "edge word does not fit");
  CHECK_THROWS(mem.SliceOrThrow(UINT64_MAX - 1, 4, "wrap"), vmm::VmmError, "wrap does not fit");
  CHECK(mem.ResidentBytes() >= 4096);
  CHECK(mem.ResidentBytes() < size);  // NORESERVE: untouched pages cost nothing
}

TEST(memory_exactly_3g_has_one_region) {
  GuestMemory mem(vmm::layout::kMmioHoleStart);
  CHECK_EQ(mem.regions().size(), size_t{1});
  CHECK_EQ(mem.low_end(), vmm::layout::kMmioHoleStart);
  CHECK(mem.Slice(vmm::layout::kMmioHoleStart - 1, 1) != nullptr);
  CHECK(mem.Slice(vmm::layout::kHighRamStart, 1) == nullptr);
}

TEST(memory_above_3g_splits_around_the_hole) {
  const uint64_t size = 3 * kGiB + 64 * kMiB;
  GuestMemory mem(size);
  const auto& r = mem.regions();
  CHECK_EQ(r.size(), size_t{2});
  if (r.size() != 2) return;
  CHECK_EQ(r[0].guest_addr, uint64_t{0});
  CHECK_EQ(r[0].size, uint64_t{0xc0000000});
  CHECK_EQ(r[1].guest_addr, uint64_t{0x100000000});
  CHECK_EQ(r[1].size, 64 * kMiB);
  CHECK(r[1].host == r[0].host + 0xc0000000);  // the two regions do not alias
  CHECK_EQ(mem.low_end(), uint64_t{0xc0000000});

  uint8_t* base = r[0].host;
  CHECK(mem.Slice(0xbfffffff, 1) == base + 0xbfffffff);
  CHECK(mem.Slice(0xbffffff0, 0x20) == nullptr);  // runs into the hole
  CHECK(mem.Slice(0xc0000000, 1) == nullptr);     // the hole itself
  CHECK(mem.Slice(0xfec00000, 4) == nullptr);     // IOAPIC
  CHECK(mem.Slice(0xffffffff, 1) == nullptr);
  CHECK(mem.Slice(0xffffffff, 2) == nullptr);  // hole into high RAM
  CHECK(mem.Slice(0x100000000 - 0x10, 0x20) == nullptr);
  CHECK(mem.Slice(0x100000000, 1) == base + 0xc0000000);
  CHECK(mem.Slice(0x100000000, 64 * kMiB) == base + 0xc0000000);
  CHECK(mem.Slice(0x100000000 + 64 * kMiB - 1, 1) == base + size - 1);
  CHECK(mem.Slice(0x100000000 + 64 * kMiB - 1, 2) == nullptr);
  CHECK(mem.Slice(0x100000000 + 64 * kMiB, 1) == nullptr);
  CHECK(mem.Slice(0, 0xc0000001) == nullptr);  // low RAM cannot spill into high RAM
  CHECK(mem.Slice(0x100000000 + 16, UINT64_MAX - 8) == nullptr);
  CHECK(mem.Slice(UINT64_MAX, 1) == nullptr);

  mem.WriteObject<uint64_t>(0x100000000, 0x1122334455667788, "high");
  CHECK_EQ(*mem.Slice(0, 1), uint8_t{0});  // a write to 4 GiB does not land at 0 or 3 GiB
  CHECK_EQ(base[0xc0000000], uint8_t{0x88});
  CHECK_THROWS(mem.WriteObject<uint32_t>(0xc0000000, 1, "hole write"), vmm::VmmError, "hole write");
}

// A write that overruns guest RAM by up to 4 GiB (a 32-bit length that wrapped) faults in the
// guard mapped after it, instead of landing in the VMM's own memory.
TEST(memory_guard_after_ram_faults) {
  GuestMemory mem(32 * kMiB);
  uint8_t* end = mem.regions()[0].host + mem.size();
  for (uint64_t past : {uint64_t{0}, uint64_t{0xffffffff}}) {
    const pid_t child = fork();
    if (child == 0) {
      end[past] = 0x5a;
      _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
  }
}
