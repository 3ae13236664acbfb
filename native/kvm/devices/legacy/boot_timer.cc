#include "devices/legacy/boot_timer.h"

#include <time.h>

#include <cstring>

namespace vmm::devices {

uint64_t BootTimer::MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void BootTimer::Read(uint64_t, uint8_t* data, uint32_t len) { std::memset(data, 0, len); }

void BootTimer::Write(uint64_t, const uint8_t*, uint32_t) {
  // Any vCPU may write; only the first write is the boot's end. The clock is read first so that
  // a racing second write cannot delay the first one's stamp.
  const uint64_t now = clock_();
  uint64_t unset = 0;
  first_write_ns_.compare_exchange_strong(unset, now, std::memory_order_acq_rel);
}

}  // namespace vmm::devices
