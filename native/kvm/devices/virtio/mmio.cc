#include "devices/virtio/mmio.h"

#include <cstring>

#include "snapshot/byte_stream.h"

namespace vmm::devices::virtio {

namespace {
// Register offsets, virtio 1.2, 4.2.2 (table "MMIO Device Register Layout").
constexpr uint64_t kMagicValue = 0x000, kVersion = 0x004, kDeviceId = 0x008, kVendorId = 0x00c,
                   kDeviceFeatures = 0x010, kDeviceFeaturesSel = 0x014, kDriverFeatures = 0x020,
                   kDriverFeaturesSel = 0x024, kQueueSel = 0x030, kQueueNumMax = 0x034, kQueueNum = 0x038,
                   kQueueReady = 0x044, kInterruptStatus = 0x060, kInterruptAck = 0x064, kStatus = 0x070,
                   kQueueDescLow = 0x080, kQueueDescHigh = 0x084, kQueueDriverLow = 0x090,
                   kQueueDriverHigh = 0x094, kQueueDeviceLow = 0x0a0, kQueueDeviceHigh = 0x0a4,
                   kConfigGeneration = 0x0fc, kConfig = 0x100;
constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kVendor = 0x4e524d56;  // "VMRN"

// Device status bits, virtio 1.2, 2.1.
constexpr uint32_t kStatusFeaturesOk = 8, kStatusDriverOk = 4, kStatusNeedsReset = 64;
constexpr uint64_t kFeatureVersion1 = uint64_t{1} << 32;
constexpr uint32_t kInterruptUsedBuffer = 1, kInterruptConfigChange = 2;

void SetHalf(uint64_t& value, uint32_t half, uint32_t bits) {
  const int shift = half ? 32 : 0;
  value = (value & ~(uint64_t{0xffffffff} << shift)) | (uint64_t{bits} << shift);
}
}  // namespace

MmioTransport::MmioTransport(const GuestMemory& memory, std::unique_ptr<VirtioDevice> device,
                             std::function<void()> interrupt)
    : memory_(memory), device_(std::move(device)), interrupt_(std::move(interrupt)) {
  for (uint16_t max : device_->queue_max_sizes()) queues_.emplace_back(max);
}

void MmioTransport::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (offset >= kConfig) {
    device_->ReadConfig(offset - kConfig, data, len);
    return;
  }
  // The driver must use aligned 32-bit accesses below the config space (4.2.2.2).
  uint32_t value = (len == 4 && offset % 4 == 0) ? ReadRegister(offset) : 0;
  std::memcpy(data, &value, len < 4 ? len : 4);
}

void MmioTransport::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (offset >= kConfig) {
    device_->WriteConfig(offset - kConfig, data, len);
    return;
  }
  if (len != 4 || offset % 4 != 0) return;
  uint32_t value;
  std::memcpy(&value, data, 4);
  WriteRegister(offset, value);
}

Queue* MmioTransport::SelectedQueue() { return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr; }

uint32_t MmioTransport::ReadRegister(uint64_t offset) {
  const uint64_t features = device_->features() | kFeatureVersion1;
  Queue* q = SelectedQueue();
  switch (offset) {
    case kMagicValue: return kMagic;
    case kVersion: return 2;
    case kDeviceId: return device_->device_id();
    case kVendorId: return kVendor;
    case kDeviceFeatures:
      if (device_features_sel_ > 1) return 0;
      return static_cast<uint32_t>(features >> (32 * device_features_sel_));
    case kQueueNumMax: return q ? q->max_size() : 0;
    case kQueueReady: return q && q->ready;
    case kInterruptStatus: return interrupt_status_;
    case kStatus: return status_;
    case kConfigGeneration: return 0;
    default: return 0;
  }
}

void MmioTransport::WriteRegister(uint64_t offset, uint32_t value) {
  Queue* q = SelectedQueue();
  // Queue layout is the driver's to change only until the device runs (4.2.3.2).
  const bool can_configure = q && !(status_ & kStatusDriverOk);
  switch (offset) {
    case kDeviceFeaturesSel: device_features_sel_ = value; break;
    case kDriverFeaturesSel: driver_features_sel_ = value; break;
    case kDriverFeatures:
      if (driver_features_sel_ < 2 && !(status_ & kStatusFeaturesOk)) SetHalf(driver_features_, driver_features_sel_, value);
      break;
    case kQueueSel: queue_sel_ = value; break;
    case kQueueNum: if (can_configure) q->size = static_cast<uint16_t>(value > 0xffff ? 0 : value); break;
    case kQueueReady: if (can_configure) q->ready = value == 1; break;
    case kQueueDescLow: if (can_configure) SetHalf(q->desc_addr, 0, value); break;
    case kQueueDescHigh: if (can_configure) SetHalf(q->desc_addr, 1, value); break;
    case kQueueDriverLow: if (can_configure) SetHalf(q->avail_addr, 0, value); break;
    case kQueueDriverHigh: if (can_configure) SetHalf(q->avail_addr, 1, value); break;
    case kQueueDeviceLow: if (can_configure) SetHalf(q->used_addr, 0, value); break;
    case kQueueDeviceHigh: if (can_configure) SetHalf(q->used_addr, 1, value); break;
    case kInterruptAck: interrupt_status_ &= ~value; break;
    case kStatus: SetStatus(value); break;
    default: break;  // read-only registers, and QueueNotify (handled through the ioeventfd)
  }
}

void MmioTransport::SetStatus(uint32_t status) {
  if (status == 0) {
    Reset();
    return;
  }
  // The driver sets bits one at a time and clears them only by a reset (2.1.2); a write that
  // clears one (DEVICE_NEEDS_RESET above all, whatever the guest writes) is refused, and breaks
  // the device until it is reset.
  if (status_ & ~status) {
    MarkBroken();
    return;
  }
  // FEATURES_OK sticks only for features we offered (3.1.1), VERSION_1 among them.
  const uint64_t offered = device_->features() | kFeatureVersion1;
  if ((status & kStatusFeaturesOk) && !(status_ & kStatusFeaturesOk) &&
      ((driver_features_ & ~offered) || !(driver_features_ & kFeatureVersion1))) {
    status &= ~kStatusFeaturesOk;
  }
  const bool starting = (status & kStatusDriverOk) && !(status_ & kStatusDriverOk);
  status_ = status;
  if (!starting) return;
  for (Queue& q : queues_) {
    if (q.ready && !q.IsValid(memory_)) {
      MarkBroken();
      return;
    }
  }
  device_->DriverReady(queues_);
}

void MmioTransport::Reset() {
  for (Queue& q : queues_) q.Reset();
  device_->Reset();
  status_ = 0;
  driver_features_ = 0;
  interrupt_status_ = 0;
}

void MmioTransport::MarkBroken() {
  status_ |= kStatusNeedsReset;
  interrupt_status_ |= kInterruptConfigChange;
  interrupt_();
}

void MmioTransport::PrepareSnapshot() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset)) return;
  try {
    if (device_->PrepareSnapshot(queues_, memory_)) {
      interrupt_status_ |= kInterruptUsedBuffer;
      interrupt_();
    }
  } catch (const QueueError&) {
    MarkBroken();
  }
}

std::vector<uint8_t> MmioTransport::SaveState() {
  std::lock_guard<std::mutex> lock(mutex_);
  snapshot::ByteWriter w;
  w.Put(status_);
  w.Put(device_features_sel_);
  w.Put(driver_features_sel_);
  w.Put(driver_features_);
  w.Put(queue_sel_);
  w.Put(interrupt_status_);
  std::vector<QueueState> queues;
  for (const Queue& q : queues_) queues.push_back(q.Save());
  w.PutVector(queues);
  w.PutBytes(device_->SaveState());
  return std::move(w.bytes());
}

void MmioTransport::RestoreState(const std::vector<uint8_t>& bytes, const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  snapshot::ByteReader r(bytes.data(), bytes.size(), what);
  const uint32_t status = r.Get<uint32_t>();
  device_features_sel_ = r.Get<uint32_t>();
  driver_features_sel_ = r.Get<uint32_t>();
  driver_features_ = r.Get<uint64_t>();
  queue_sel_ = r.Get<uint32_t>();
  interrupt_status_ = r.Get<uint32_t>() & (kInterruptUsedBuffer | kInterruptConfigChange);
  const std::vector<QueueState> queues = r.GetVector<QueueState>();
  const std::vector<uint8_t> device = r.GetBytes();
  r.ExpectEnd();
  if (queues.size() != queues_.size()) {
    throw snapshot::SnapshotError(what + " has " + std::to_string(queues.size()) + " queues, the device " +
                                  std::to_string(queues_.size()));
  }
  for (size_t i = 0; i < queues.size(); ++i) queues_[i].Restore(queues[i]);
  device_->RestoreState(device, what);
  status_ = status;
  if (!(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset)) return;
  for (const Queue& q : queues_) {
    if (q.ready && !q.IsValid(memory_)) throw snapshot::SnapshotError(what + " has a ready queue that is not valid");
  }
  device_->DriverReady(queues_);
}

void MmioTransport::Resume(bool config_changed) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset)) return;
  if (config_changed) interrupt_status_ |= kInterruptConfigChange;
  if (interrupt_status_) interrupt_();
}

void MmioTransport::ProcessQueue(uint16_t index) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (index >= queues_.size() || !(status_ & kStatusDriverOk) || (status_ & kStatusNeedsReset)) return;
  Queue& q = queues_[index];
  if (!q.ready) return;
  try {
    if (device_->Process(index, q, memory_)) {
      interrupt_status_ |= kInterruptUsedBuffer;
      interrupt_();
    }
  } catch (const QueueError&) {
    MarkBroken();  // a guest that breaks its queue gets a device that needs a reset, nothing more
  }
}

}  // namespace vmm::devices::virtio
