// virtio-rng (virtio 1.2, 5.4): one queue; the device fills every writable buffer it is given
// with random bytes from the host kernel.
#pragma once

#include "devices/virtio/device.h"

namespace vmm::devices::virtio {

class Rng : public VirtioDevice {
 public:
  uint32_t device_id() const override { return kDeviceIdEntropy; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  bool Process(uint16_t queue_index, Queue& queue, const GuestMemory& memory) override;
};

}  // namespace vmm::devices::virtio
