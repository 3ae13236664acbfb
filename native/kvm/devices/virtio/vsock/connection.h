// One stream connection between a guest port and a host Unix socket (virtio 1.2, 5.10.6.3 to
// 5.10.6.6): its state, the credit of both directions, and the bytes from the guest that the
// socket could not take yet. It knows nothing of queues or epoll: the device asks it for the next
// packet for the guest, hands it the guest's packets, and watches what it says it wants.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "devices/virtio/vsock/packet.h"
#include "fd.h"

namespace vmm::devices::virtio::vsock {

class Connection {
 public:
  enum class State {
    kConnecting,   // the guest asked (REQUEST); our connect() to the host socket is in progress
    kRequesting,   // the host asked (CONNECT line); our REQUEST awaits the guest's RESPONSE
    kEstablished,
  };
  // What we advertise as buf_alloc: the most guest bytes we hold for a socket that is slow to
  // take them. A guest that sends beyond it ignored its credit and loses the connection.
  static constexpr uint32_t kBufAlloc = 256 * 1024;
  // Freed receive space worth a CREDIT_UPDATE of its own (any packet we send carries fwd_cnt).
  static constexpr uint32_t kCreditUpdateThreshold = 64 * 1024;

  Connection(Fd socket, uint64_t guest_cid, uint32_t local_port, uint32_t peer_port, State state);

  int fd() const { return socket_.get(); }
  State state() const { return state_; }
  uint32_t local_port() const { return local_port_; }
  uint32_t peer_port() const { return peer_port_; }

  // The host socket finished connecting: RESPONSE goes to the guest first.
  void Connected();
  // The guest accepted our REQUEST: tell the host client "OK <local port>\n". False when it is gone.
  bool Accepted();

  // From the guest. Every packet's header carries its credit (5.10.6.3).
  void UpdatePeerCredit(const Header& h);
  // Payload of a RW packet; false when the guest overran its credit or the socket failed.
  bool WriteFromGuest(const std::vector<iovec>& payload, uint32_t len);
  void ShutdownFromGuest(uint32_t flags);
  void RequestCredit() { credit_update_pending_ = true; }

  // Sends what the socket will take of the held guest bytes; false when the socket failed.
  bool FlushToHost();
  // Epoll said the host socket has something to read (data, end of file or an error).
  void SetHostReadable() { host_readable_ = true; }

  // Writes the connection's next packet for the guest, its header into `header` (44 bytes) and
  // its payload into `payload` (at least a byte), and returns its length: 0 when there is nothing
  // to send now.
  uint32_t FillRx(Writer& header, Writer& payload);
  bool HasRxWork() const;
  // The epoll events to watch on the socket now; 0 when there is nothing to wait for.
  uint32_t WantedEvents(bool rx_starved) const;
  // Needs a RST: the socket failed or the guest broke the rules.
  bool broken() const { return broken_; }
  // Both directions have ended and every byte was delivered: time for RST and close.
  bool Done() const;

 private:
  bool CanReadHost() const;
  uint32_t PeerCredit() const;
  Header MakeHeader(uint16_t op, uint32_t len = 0, uint32_t flags = 0);
  uint32_t Emit(Writer& header, const Header& h);

  Fd socket_;
  uint64_t guest_cid_;
  uint32_t local_port_;
  uint32_t peer_port_;
  State state_;
  bool broken_ = false;

  // Control packets owed to the guest.
  bool request_pending_ = false;
  bool response_pending_ = false;
  bool credit_update_pending_ = false;

  // Host -> guest. Counters wrap, as the spec's do.
  uint32_t rx_cnt_ = 0;  // payload bytes sent to the guest
  uint32_t peer_buf_alloc_ = 0;
  uint32_t peer_fwd_cnt_ = 0;
  bool host_readable_ = false;
  bool host_eof_ = false;    // the socket said end of file; SHUTDOWN(send) went to the guest
  bool guest_no_recv_ = false;

  // Guest -> host.
  std::string held_;  // bytes the socket could not take yet, at most kBufAlloc
  size_t held_offset_ = 0;
  uint32_t fwd_cnt_ = 0;  // guest bytes written to the socket
  uint32_t fwd_cnt_sent_ = 0;  // the fwd_cnt the guest last heard
  bool guest_no_send_ = false;
  bool host_write_shut_ = false;
};

}  // namespace vmm::devices::virtio::vsock
