// A boot timer, as Firecracker's: the guest writes a byte to one I/O port when its init starts,
// and the device keeps the host's CLOCK_MONOTONIC time of that first write. The vmrun agent
// writes it first thing as PID 1 (guest/agent/main.c), so the host learns when the kernel handed
// over to init on its own clock, with no console parsing and no guest clock to convert.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "devices/bus.h"

namespace vmm::devices {

class BootTimer : public BusDevice {
 public:
  // Free on a microVM's PC port map (and on QEMU's microvm): nothing in Linux probes it.
  static constexpr uint64_t kPort = 0x440;
  static constexpr uint64_t kSize = 1;

  // `clock` returns host nanoseconds; tests pass their own.
  explicit BootTimer(std::function<uint64_t()> clock = MonotonicNs) : clock_(std::move(clock)) {}
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

  // The host time of the first write, or 0 if the guest has not written yet.
  uint64_t FirstWriteNs() const { return first_write_ns_.load(std::memory_order_acquire); }

  static uint64_t MonotonicNs();

 private:
  std::function<uint64_t()> clock_;
  std::atomic<uint64_t> first_write_ns_{0};
};

}  // namespace vmm::devices
