// virtio-blk (virtio 1.2, 5.2): a DiskImage (a host file, or read-only files end to end) as a
// disk. One queue; reads, writes, flush and the device id. Requests run synchronously on the
// device thread.
#pragma once

#include <cstdint>
#include <string>

#include "devices/virtio/block/disk_image.h"
#include "devices/virtio/descriptor_utils.h"
#include "devices/virtio/device.h"

namespace vmm::devices::virtio {

class Block : public VirtioDevice {
 public:
  explicit Block(DiskImage image) : image_(std::move(image)) {}
  // One file (a regular file or block device); throws VmmError naming it when it cannot open it.
  Block(const std::string& path, bool read_only) : Block(DiskImage({{path, 0}}, read_only)) {}

  uint32_t device_id() const override { return kDeviceIdBlock; }
  uint64_t features() const override;
  std::vector<uint16_t> queue_max_sizes() const override { return {256}; }
  void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) override;
  bool Process(uint16_t queue_index, Queue& queue, const GuestMemory& memory) override;

  // A file whose size is not a whole number of sectors (an image layer, say) gets its last
  // sector zero-padded, so that the guest can read every byte of it.
  uint64_t capacity_sectors() const { return (image_.size_bytes() + kSectorSize - 1) / kSectorSize; }

 private:
  static constexpr uint64_t kSectorSize = 512;
  // Runs one request (its data after the header in `request`, or room for data before the status
  // byte in `data`) and returns its status byte.
  uint8_t Execute(uint32_t type, uint64_t sector, Reader& request, Writer& data);

  DiskImage image_;
};

}  // namespace vmm::devices::virtio
