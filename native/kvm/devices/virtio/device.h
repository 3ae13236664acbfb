// What a virtio device is to its transport: an id, features, queues, a config space, and one
// entry point to handle what the driver queued. A device never knows how it is wired.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "devices/virtio/queue.h"
#include "snapshot/byte_stream.h"
#include "vstate/memory.h"

namespace vmm {
class EventLoop;
}  // namespace vmm

namespace vmm::devices::virtio {

// Device ids, virtio 1.2, 5.
constexpr uint32_t kDeviceIdNet = 1;
constexpr uint32_t kDeviceIdBlock = 2;
constexpr uint32_t kDeviceIdEntropy = 4;
constexpr uint32_t kDeviceIdVsock = 19;
constexpr uint32_t kDeviceIdFs = 26;

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_id() const = 0;
  // Device-specific feature bits; the transport adds VIRTIO_F_VERSION_1.
  virtual uint64_t features() const { return 0; }
  virtual std::vector<uint16_t> queue_max_sizes() const = 0;
  virtual void ReadConfig(uint64_t /*offset*/, uint8_t* data, uint32_t len) { std::memset(data, 0, len); }
  virtual void WriteConfig(uint64_t /*offset*/, const uint8_t* /*data*/, uint32_t /*len*/) {}
  // Handles the chains the driver made available on `queue`; true when some were used (the
  // driver is then interrupted). Throws QueueError when the guest broke the queue.
  virtual bool Process(uint16_t queue_index, Queue& queue, const GuestMemory& memory) = 0;
  // The driver reset the device. Called on a vCPU thread.
  virtual void Reset() {}
  // For a device that the host wakes too (sockets, say): called once by the builder before the
  // device thread starts, to add its fds to `loop`. Its handlers run on the device thread and ask
  // for a queue to be processed through `process_queue`, never from inside Process, where the
  // transport holds its lock.
  virtual void Activate(EventLoop& /*loop*/, std::function<void(uint16_t queue_index)> /*process_queue*/) {}
  // For a device whose queues another process serves (vhost-user): keeps (a duplicate of) the
  // queue's doorbell eventfd, to hand over, and returns true; the builder then leaves it off the
  // device thread. Called once per queue by the builder.
  virtual bool TakeDoorbell(uint16_t /*queue_index*/, int /*doorbell_fd*/) { return false; }
  // A snapshot is about to be taken, every vCPU paused: the device brings its state and the
  // guest's to where a restore can resume them (Firecracker's prepare_save). True when it used a
  // buffer, so that the guest is interrupted (the interrupt is then in the snapshot). Called with
  // the transport's lock held, only while the driver runs the device.
  virtual bool PrepareSnapshot(std::vector<Queue>& /*queues*/, const GuestMemory& /*memory*/) { return false; }
  // What the device itself holds that a restore needs (the transport saves its queues), and its
  // return; a device that holds nothing refuses any bytes. Called with the transport's lock held.
  virtual std::vector<uint8_t> SaveState() { return {}; }
  virtual void RestoreState(const std::vector<uint8_t>& bytes, const std::string& what) {
    if (!bytes.empty()) throw snapshot::SnapshotError(what + " holds device state this device does not have");
  }
  // The driver set DRIVER_OK and every ready queue is valid. Called on a vCPU thread, with the
  // transport's lock held.
  virtual void DriverReady(const std::vector<Queue>& /*queues*/) {}
};

}  // namespace vmm::devices::virtio
