// The boot timer keeps the host time of the guest's first write only, and reads as zero.
#include <cstdint>

#include "devices/bus.h"
#include "devices/legacy/boot_timer.h"
#include "tests/check.h"

TEST(boot_timer_first_write) {
  uint64_t now = 1000;
  auto timer = std::make_shared<vmm::devices::BootTimer>([&] { return now; });
  vmm::devices::Bus pio;
  pio.Insert(vmm::devices::BootTimer::kPort, vmm::devices::BootTimer::kSize, timer);
  CHECK_EQ(timer->FirstWriteNs(), uint64_t{0});

  uint8_t b = 123;
  CHECK(pio.Write(vmm::devices::BootTimer::kPort, &b, 1));
  CHECK_EQ(timer->FirstWriteNs(), uint64_t{1000});
  now = 5000;
  CHECK(pio.Write(vmm::devices::BootTimer::kPort, &b, 1));
  CHECK_EQ(timer->FirstWriteNs(), uint64_t{1000});  // later writes change nothing

  uint8_t r = 0xaa;
  CHECK(pio.Read(vmm::devices::BootTimer::kPort, &r, 1));
  CHECK_EQ(r, uint8_t{0});
}

TEST(boot_timer_monotonic_clock) {
  const uint64_t a = vmm::devices::BootTimer::MonotonicNs();
  const uint64_t b = vmm::devices::BootTimer::MonotonicNs();
  CHECK(a > 0 && b >= a);
}
