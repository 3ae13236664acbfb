#include "devices/virtio/vsock/connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace vmm::devices::virtio::vsock {

namespace {
bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }
}  // namespace

Connection::Connection(Fd socket, uint64_t guest_cid, uint32_t local_port, uint32_t peer_port, State state)
    : socket_(std::move(socket)),
      guest_cid_(guest_cid),
      local_port_(local_port),
      peer_port_(peer_port),
      state_(state),
      request_pending_(state == State::kRequesting) {}

void Connection::Connected() {
  state_ = State::kEstablished;
  response_pending_ = true;
}

bool Connection::Accepted() {
  state_ = State::kEstablished;
  // Firecracker's answer to "CONNECT <port>\n". The socket is fresh and holds nothing yet, so a
  // line this short goes out whole or the client is gone.
  const std::string line = "OK " + std::to_string(local_port_) + "\n";
  return send(fd(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(line.size());
}

void Connection::UpdatePeerCredit(const Header& h) {
  peer_buf_alloc_ = h.buf_alloc;
  peer_fwd_cnt_ = h.fwd_cnt;
}

uint32_t Connection::PeerCredit() const {
  // 5.10.6.3: buf_alloc - (tx_cnt - fwd_cnt). A fwd_cnt ahead of what we sent makes the wrapped
  // difference huge, which reads as no credit: a lying guest only starves itself.
  const uint32_t in_flight = rx_cnt_ - peer_fwd_cnt_;
  return in_flight >= peer_buf_alloc_ ? 0 : peer_buf_alloc_ - in_flight;
}

bool Connection::WriteFromGuest(const std::vector<iovec>& payload, uint32_t len) {
  const size_t held = held_.size() - held_offset_;
  // Everything the guest sent that the socket has not taken is still in flight: more than we
  // advertised means the guest ignored its credit.
  if (guest_no_send_ || held + len > kBufAlloc) {
    broken_ = true;
    return false;
  }
  size_t written = 0;
  if (held == 0 && len > 0) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(payload.data());
    msg.msg_iovlen = payload.size();
    const ssize_t n = sendmsg(fd(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && !WouldBlock(errno) && errno != EINTR) {
      broken_ = true;
      return false;
    }
    written = n > 0 ? static_cast<size_t>(n) : 0;
    fwd_cnt_ += written;
  }
  if (held_offset_ > 0) {
    held_.erase(0, held_offset_);
    held_offset_ = 0;
  }
  for (const iovec& v : payload) {
    const size_t skip = std::min(written, v.iov_len);
    written -= skip;
    held_.append(static_cast<const char*>(v.iov_base) + skip, v.iov_len - skip);
  }
  return FlushToHost();
}

bool Connection::FlushToHost() {
  while (held_offset_ < held_.size()) {
    const ssize_t n = send(fd(), held_.data() + held_offset_, held_.size() - held_offset_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && WouldBlock(errno)) break;
    if (n < 0) {
      broken_ = true;
      return false;
    }
    held_offset_ += n;
    fwd_cnt_ += n;
  }
  if (held_offset_ == held_.size()) {
    held_.clear();
    held_offset_ = 0;
    // The guest's end of stream reaches the socket only after its last byte.
    if (guest_no_send_ && !host_write_shut_) {
      shutdown(fd(), SHUT_WR);
      host_write_shut_ = true;
    }
  }
  if (!guest_no_send_ && fwd_cnt_ - fwd_cnt_sent_ >= kCreditUpdateThreshold) credit_update_pending_ = true;
  return true;
}

void Connection::ShutdownFromGuest(uint32_t flags) {
  if ((flags & kShutdownRcv) && !guest_no_recv_) {
    guest_no_recv_ = true;
    shutdown(fd(), SHUT_RD);
  }
  if (flags & kShutdownSend) guest_no_send_ = true;
  FlushToHost();
}

bool Connection::CanReadHost() const {
  return state_ == State::kEstablished && !response_pending_ && !host_eof_ && !guest_no_recv_ && PeerCredit() > 0;
}

bool Connection::HasRxWork() const {
  return request_pending_ || response_pending_ || credit_update_pending_ || (host_readable_ && CanReadHost());
}

uint32_t Connection::WantedEvents(bool rx_starved) const {
  if (state_ == State::kConnecting) return EPOLLOUT;
  uint32_t events = 0;
  if (held_offset_ < held_.size()) events |= EPOLLOUT;
  // Read only what can go to the guest now: with no credit or no rx buffers the bytes wait in
  // the socket, and the host writer feels the back pressure.
  if (CanReadHost() && !host_readable_ && !rx_starved) events |= EPOLLIN;
  return events;
}

bool Connection::Done() const {
  return state_ == State::kEstablished && !response_pending_ && (host_eof_ || guest_no_recv_) && guest_no_send_ &&
         held_offset_ == held_.size();
}

Header Connection::MakeHeader(uint16_t op, uint32_t len, uint32_t flags) {
  Header h = StreamHeader(op, kHostCid, local_port_, guest_cid_, peer_port_, kBufAlloc, fwd_cnt_);
  h.len = len;
  h.flags = flags;
  return h;
}

uint32_t Connection::Emit(Writer& header, const Header& h) {
  WriteHeader(header, h);
  // Every header tells the guest our buf_alloc and fwd_cnt: no separate update is owed now.
  fwd_cnt_sent_ = h.fwd_cnt;
  credit_update_pending_ = false;
  return kHeaderSize + h.len;
}

uint32_t Connection::FillRx(Writer& header, Writer& payload) {
  if (request_pending_) {
    request_pending_ = false;
    return Emit(header, MakeHeader(kOpRequest));
  }
  if (response_pending_) {
    response_pending_ = false;
    return Emit(header, MakeHeader(kOpResponse));
  }
  if (host_readable_ && CanReadHost()) {
    const uint32_t max = static_cast<uint32_t>(std::min<uint64_t>({payload.available(), PeerCredit(), kMaxPayload}));
    const std::vector<iovec> data = payload.Take(max);
    const ssize_t n = readv(fd(), data.data(), data.size());
    if (n > 0) {
      rx_cnt_ += n;
      return Emit(header, MakeHeader(kOpRw, static_cast<uint32_t>(n)));
    }
    if (n == 0) {  // end of file: after the last byte, as the socket delivers them in order
      host_eof_ = true;
      host_readable_ = false;
      return Emit(header, MakeHeader(kOpShutdown, 0, kShutdownSend));
    }
    if (WouldBlock(errno)) {
      host_readable_ = false;
    } else if (errno != EINTR) {
      broken_ = true;
      return 0;
    }
  }
  if (credit_update_pending_) return Emit(header, MakeHeader(kOpCreditUpdate));
  return 0;
}

}  // namespace vmm::devices::virtio::vsock
