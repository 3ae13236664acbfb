#include "devices/legacy/i8042.h"

#include <cstring>

namespace vmm::devices {

namespace {
constexpr uint64_t kCommandPort = 4;
constexpr uint8_t kCmdResetCpu = 0xfe;
}  // namespace

void I8042::Read(uint64_t, uint8_t* data, uint32_t len) {
  // Status 0: output buffer empty, input buffer empty, so `kb_wait()` returns at once.
  std::memset(data, 0, len);
}

void I8042::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  if (offset == kCommandPort && len == 1 && data[0] == kCmdResetCpu) on_reset_();
}

}  // namespace vmm::devices
