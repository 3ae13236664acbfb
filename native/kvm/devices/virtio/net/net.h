// virtio-net (virtio 1.2, 5.1) whose other end is passt: a connected stream socket carrying each
// Ethernet frame after its length (32-bit, big-endian), the framing of QEMU's `-netdev stream`
// that passt speaks (libkrun and podman use passt the same way). No offloads are offered, so the
// guest checksums and segments every frame itself and none is longer than its MTU.
//
// A guest that floods the network fills the socket and then its own tx queue: the device stops
// taking tx chains while a frame waits for room, and stops reading the socket while the guest
// gives no rx buffers, so neither side is ever buffered without bound.
//
// Threads: Process runs on the device thread (doorbells), and so does the socket's handler
// Activate adds; Reset comes from a vCPU thread. One mutex covers the lot.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "devices/virtio/device.h"
#include "fd.h"

namespace vmm::devices::virtio {

class Net : public VirtioDevice {
 public:
  static constexpr uint16_t kRxQueue = 0, kTxQueue = 1;
  // struct virtio_net_hdr_v1 (5.1.6): with VIRTIO_F_VERSION_1 always 12 bytes, num_buffers too.
  static constexpr uint32_t kHeaderSize = 12;
  // An Ethernet header; anything shorter is a runt and dropped.
  static constexpr uint32_t kMinFrame = 14;
  // The longest frame either side may send: Linux's largest MTU plus an Ethernet header with a
  // VLAN tag. A longer length from passt means the stream is corrupt.
  static constexpr uint32_t kMaxFrame = 65535 + 18;
  static constexpr uint64_t kFeatureMac = 1u << 5;  // VIRTIO_NET_F_MAC

  // Takes the connected socket; `mac` is the guest's address.
  Net(Fd socket, std::array<uint8_t, 6> mac);

  uint32_t device_id() const override { return kDeviceIdNet; }
  uint64_t features() const override { return kFeatureMac; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256}; }
  void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) override;
  bool Process(uint16_t queue_index, Queue& queue, const GuestMemory& memory) override;
  void Reset() override;
  void Activate(EventLoop& loop, std::function<void(uint16_t queue_index)> process_queue) override;

  // Handles the socket's readiness; says which queues then have work. Activate's handler calls it
  // on the device thread; tests call it directly. `events_fd` is readable while there is
  // something to handle.
  struct Work {
    bool rx = false, tx = false;
  };
  Work OnSocketEvents();
  int events_fd() const { return epoll_.get(); }

  // What was dropped, for tests and diagnostics.
  struct Dropped {
    uint64_t runts = 0, oversized = 0, too_big_for_rx = 0, offloaded = 0;
  };
  Dropped dropped() {
    std::lock_guard<std::mutex> lock(mutex_);
    return dropped_;
  }
  // Whether passt's side is gone (end of stream, an error, or a corrupt length).
  bool disconnected() {
    std::lock_guard<std::mutex> lock(mutex_);
    return !socket_.valid();
  }

 private:
  bool ProcessRx(Queue& queue, const GuestMemory& memory);
  bool ProcessTx(Queue& queue, const GuestMemory& memory);
  // Reads what the socket has, while there is room; false when the stream ended or broke.
  bool ReadSocket();
  // Writes what waits in out_; false when the stream broke.
  bool Flush();
  // The length of the first whole frame in in_, if there is one.
  std::optional<uint32_t> NextFrame();
  void Disconnect();
  void Watch();

  const std::array<uint8_t, 6> mac_;
  std::mutex mutex_;
  Fd socket_;
  Fd epoll_;  // the socket, for what Watch() asks
  uint32_t watched_ = 0;
  std::vector<uint8_t> in_;   // bytes from passt: given to the guest up to in_off_, read up to in_len_
  size_t in_off_ = 0, in_len_ = 0;
  std::vector<uint8_t> out_;  // a frame for passt (length first) not yet written whole
  size_t out_off_ = 0;
  Dropped dropped_;
};

}  // namespace vmm::devices::virtio
