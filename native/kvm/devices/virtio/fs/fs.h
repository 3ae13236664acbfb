// virtio-fs (virtio 1.2, 5.11) as a vhost-user device: the guest's FUSE requests are served by a
// virtiofsd process of their own, which maps guest memory and works the queues itself. The VMM
// only presents the device (its tag and queue count), passes the queues' layout on when the
// driver starts it, and turns the back end's "used" notifications into the transport's
// interrupt (virtio-mmio's interrupt status must say why the line was raised, which the back
// end cannot set).
//
// A hostile guest reaches virtiofsd's FUSE parser through the queues; that process is sandboxed
// on its own (namespaces, seccomp, a root that is the shared directory), so what it can reach is
// the share and no more.
//
// Threads: the transport calls DriverReady and Reset on a vCPU thread; the vhost-user messages
// they call for are sent from the device thread, which Activate wakes through an eventfd.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/device.h"
#include "devices/virtio/fs/vhost_user.h"
#include "fd.h"

namespace vmm::devices::virtio {

class Fs : public VirtioDevice {
 public:
  static constexpr size_t kTagMax = 36;  // the config space's tag field
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint32_t kRequestQueues = 1;  // after the high-priority queue

  // Connects to the back end on `socket` and gives it `memory` (which must be a shared memfd);
  // throws VmmError when the tag is not 1 to 36 bytes or the back end does not speak virtio 1.
  Fs(Fd socket, std::string tag, const GuestMemory& memory);

  uint32_t device_id() const override { return kDeviceIdFs; }
  std::vector<uint16_t> queue_max_sizes() const override {
    return std::vector<uint16_t>(1 + kRequestQueues, kQueueSize);
  }
  void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) override;
  // Called when the back end signalled a queue: it used buffers, so the driver is interrupted.
  bool Process(uint16_t, Queue&, const GuestMemory&) override { return true; }
  void Reset() override;
  void Activate(EventLoop& loop, std::function<void(uint16_t queue_index)> process_queue) override;
  bool TakeDoorbell(uint16_t queue_index, int doorbell_fd) override;
  void DriverReady(const std::vector<Queue>& queues) override;

 private:
  // On the device thread: stops the back end's rings, then starts them as the driver last set
  // them up, if it did.
  void Apply();
  void Wake();

  const GuestMemory& memory_;
  const std::string tag_;
  VhostUserFrontend backend_;
  std::vector<Fd> kicks_, calls_;
  Fd apply_;  // eventfd: the driver started or reset the device

  std::mutex mutex_;
  std::optional<std::vector<std::optional<VhostUserFrontend::Ring>>> wanted_;  // guarded by mutex_
  std::vector<uint32_t> started_;  // rings the back end runs; device thread only
};

}  // namespace vmm::devices::virtio
