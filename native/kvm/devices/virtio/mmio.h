// The virtio-mmio transport, version 2 (virtio 1.2, 4.2.2): the register page through which the
// driver discovers a device, negotiates features, sets up its queues and drives its status.
// Doorbells (QueueNotify) normally never reach it: the builder routes them to an ioeventfd, and
// the device thread calls ProcessQueue.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "devices/bus.h"
#include "devices/virtio/device.h"
#include "devices/virtio/queue.h"
#include "vstate/memory.h"

namespace vmm::devices::virtio {

class MmioTransport : public BusDevice {
 public:
  static constexpr uint64_t kSize = 0x1000;
  static constexpr uint64_t kQueueNotifyOffset = 0x50;

  // `interrupt` signals the device's interrupt line (an irqfd).
  MmioTransport(const GuestMemory& memory, std::unique_ptr<VirtioDevice> device, std::function<void()> interrupt);

  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

  uint16_t queue_count() const { return static_cast<uint16_t>(queues_.size()); }

  // Lets the device prepare for a snapshot (VirtioDevice::PrepareSnapshot), interrupting the
  // guest if it used a buffer for that.
  void PrepareSnapshot();
  // The registers and every queue, for a snapshot (the device's own state is the device's).
  std::vector<uint8_t> SaveState();
  // Puts them back before the guest runs again, refusing (SnapshotError naming `what`) a state
  // the driver could not have reached through the registers: another queue count, a queue that
  // is ready but invalid while the device runs. A running device hears DriverReady as it did.
  void RestoreState(const std::vector<uint8_t>& bytes, const std::string& what);
  // After a restore, before the guest runs: tells the driver that the config changed if
  // `config_changed` (a disk given its backing at restore), and interrupts it again for what was
  // pending at the snapshot (an interrupt in flight then may not be in KVM's saved state).
  void Resume(bool config_changed);
  uint32_t device_id() const { return device_->device_id(); }
  uint64_t device_features() const { return device_->features(); }
  // Runs the device on one queue, if the driver has it running; called on the device thread.
  void ProcessQueue(uint16_t index);

 private:
  uint32_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint32_t value);
  void SetStatus(uint32_t status);
  void Reset();
  void MarkBroken();
  Queue* SelectedQueue();

  const GuestMemory& memory_;
  std::unique_ptr<VirtioDevice> device_;
  std::function<void()> interrupt_;

  std::mutex mutex_;  // vCPU threads (registers) against the device thread (queues)
  std::vector<Queue> queues_;
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  uint32_t interrupt_status_ = 0;
};

}  // namespace vmm::devices::virtio
