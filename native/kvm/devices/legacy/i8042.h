// The part of the i8042 keyboard controller a microVM needs: the reset line. Linux with `reboot=k`
// writes 0xfe to port 0x64 to reset the machine; that is how a guest says it is done.
#pragma once

#include <functional>

#include "devices/bus.h"

namespace vmm::devices {

class I8042 : public BusDevice {
 public:
  static constexpr uint64_t kBase = 0x60;   // data port; the command/status port is base + 4
  static constexpr uint64_t kSize = 5;

  explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}
  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

 private:
  std::function<void()> on_reset_;
};

}  // namespace vmm::devices
