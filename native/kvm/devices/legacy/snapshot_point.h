// The snapshot point: the port the vmrun agent writes once it has come up, when its kernel
// command line has `vmrun.snapshot=1` (guest/agent/main.c). A VMM that is taking a snapshot
// stops the guest on that write and saves it; every VM restored from that snapshot goes on from
// the instruction after it. Only such a VMM maps the port: elsewhere a write is a no-op.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>

#include "devices/bus.h"

namespace vmm::devices {

class SnapshotPoint : public BusDevice {
 public:
  // Next to the boot timer; nothing in Linux probes it either.
  static constexpr uint64_t kPort = 0x441;
  static constexpr uint64_t kSize = 1;

  // `reached` runs on the writing vCPU's thread, at each write.
  explicit SnapshotPoint(std::function<void()> reached) : reached_(std::move(reached)) {}
  void Read(uint64_t, uint8_t* data, uint32_t len) override { std::memset(data, 0, len); }
  void Write(uint64_t, const uint8_t*, uint32_t) override { reached_(); }

 private:
  std::function<void()> reached_;
};

}  // namespace vmm::devices
