// libFuzzer target: what the host reads from a VMM process (control/messages.h), which a guest
// that took over its VMM writes. Every input is decoded both as a VMM's message and as a config;
// anything but a clean decode or VmmError is a finding.
#include <cstdint>
#include <string>

#include "control/messages.h"
#include "error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    vmm::control::Message m = vmm::control::DecodeMessage(bytes);
    (void)vmm::control::Encode(m);
  } catch (const vmm::VmmError&) {
  }
  try {
    vmm::control::Config c = vmm::control::DecodeConfig(bytes);
    (void)c.FdCount();
  } catch (const vmm::VmmError&) {
  }
  return 0;
}
