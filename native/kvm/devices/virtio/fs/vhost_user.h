// The front-end half of the vhost-user protocol (QEMU's docs/interop/vhost-user.rst): the
// messages with which a VMM hands a virtio device's queues to a back-end process over a Unix
// socket. The back end then reads the rings in guest memory (mapped from the memfd this side
// sends), takes doorbells from the kick eventfds and raises call eventfds when it used buffers.
//
// Only what a device that needs no protocol features uses is here: without
// VHOST_USER_F_PROTOCOL_FEATURES a ring is enabled once its kick fd is set, and the back end
// replies only to GET_* requests. Replies are read with the socket's receive timeout, so a back
// end that hangs fails the call instead of stopping the device thread for good.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fd.h"
#include "vstate/memory.h"

namespace vmm::devices::virtio {

class VhostUserFrontend {
 public:
  static constexpr uint64_t kFeatureVersion1 = uint64_t{1} << 32;  // VIRTIO_F_VERSION_1
  static constexpr int kReplyTimeoutSeconds = 5;

  // Where one ring lives, in guest-physical addresses (the transport checked them).
  struct Ring {
    uint16_t size;
    uint64_t desc, avail, used;
  };

  // Takes the connected socket; `name` says which back end, in errors.
  VhostUserFrontend(Fd socket, std::string name);

  // SET_OWNER, then GET_FEATURES: the back end's virtio feature bits.
  uint64_t Connect();
  void SetFeatures(uint64_t features);
  // SET_MEM_TABLE: every region of guest RAM, which must be a shared memfd.
  void SetMemTable(const GuestMemory& memory);
  // SET_VRING_NUM, _ADDR, _BASE (0), _CALL and last _KICK, which starts the ring.
  void StartRing(uint32_t index, const Ring& ring, const GuestMemory& memory, int kick_fd, int call_fd);
  // GET_VRING_BASE: the back end stops the ring and says where it got to.
  uint32_t StopRing(uint32_t index);

  int fd() const { return socket_.get(); }

 private:
  void Send(uint32_t request, const void* payload, uint32_t size, const std::vector<int>& fds = {});
  // Reads the reply to `request`, which must carry exactly `size` bytes.
  void Receive(uint32_t request, void* payload, uint32_t size);

  Fd socket_;
  std::string name_;
};

}  // namespace vmm::devices::virtio
