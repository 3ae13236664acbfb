#include "devices/virtio/net/net.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "devices/virtio/descriptor_utils.h"
#include "error.h"
#include "event_loop.h"

namespace vmm::devices::virtio {

namespace {
constexpr uint32_t kLengthSize = 4;
// Room for two of the longest frames, so that reading never waits on a frame the guest is slow
// to take while the next one is already there.
constexpr size_t kInCapacity = 2 * (kLengthSize + Net::kMaxFrame);
// virtio_net_hdr flags and gso_type (5.1.6): neither may be set when no offload was offered.
constexpr uint8_t kHdrNeedsCsum = 1, kGsoNone = 0;

uint32_t BigEndian32(const uint8_t* p) { return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3]; }
}  // namespace

Net::Net(Fd socket, std::array<uint8_t, 6> mac) : mac_(mac), socket_(std::move(socket)), in_(kInCapacity) {
  const int flags = CheckSys(fcntl(socket_.get(), F_GETFL), "fcntl(F_GETFL)", "the network's socket");
  CheckSys(fcntl(socket_.get(), F_SETFL, flags | O_NONBLOCK), "fcntl(F_SETFL)", "the network's socket");
  epoll_ = Fd(CheckSys(epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
  Watch();
}

void Net::ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) {
  // struct virtio_net_config (5.1.4): mac[6], then fields of features we do not offer.
  for (uint32_t i = 0; i < len; ++i) data[i] = offset + i < mac_.size() ? mac_[offset + i] : 0;
}

void Net::Activate(EventLoop& loop, std::function<void(uint16_t)> process_queue) {
  loop.Add(epoll_.get(), EPOLLIN, [this, process_queue](uint32_t) {
    const Work work = OnSocketEvents();  // outside our lock from here: the transport takes its own first
    if (work.rx) process_queue(kRxQueue);
    if (work.tx) process_queue(kTxQueue);
  });
}

bool Net::Process(uint16_t queue_index, Queue& queue, const GuestMemory& memory) {
  std::lock_guard<std::mutex> lock(mutex_);
  bool used = false;
  if (queue_index == kRxQueue) used = ProcessRx(queue, memory);
  if (queue_index == kTxQueue) used = ProcessTx(queue, memory);
  Watch();
  return used;
}

void Net::Reset() {
  // The socket's stream stays whole across a driver reset: a frame half written to passt is
  // finished, and frames read from it wait for the driver's next rx buffers.
}

Net::Work Net::OnSocketEvents() {
  std::lock_guard<std::mutex> lock(mutex_);
  epoll_event ev;
  Work work;
  if (epoll_wait(epoll_.get(), &ev, 1, 0) == 1) {
    if (ev.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ReadSocket();
    if (ev.events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) work.tx = Flush() && out_.empty();
  }
  work.rx = NextFrame().has_value();
  Watch();
  return work;
}

bool Net::ProcessRx(Queue& queue, const GuestMemory& memory) {
  bool used = false;
  for (;;) {
    std::optional<uint32_t> len = NextFrame();
    if (!len && socket_.valid() && ReadSocket()) len = NextFrame();
    if (!len) return used;
    std::optional<DescriptorChain> chain = queue.Pop(memory);
    if (!chain) return used;  // the frame waits for the guest's next buffers
    if (!chain->readable.empty()) throw QueueError("virtio-net rx chain with a device-readable buffer");
    Writer packet(*chain);
    uint32_t written = 0;
    if (packet.available() < kHeaderSize + uint64_t{*len}) {
      ++dropped_.too_big_for_rx;  // returned empty: the driver counts a length error and recycles it
    } else {
      uint8_t header[kHeaderSize] = {};
      header[10] = 1;  // num_buffers
      packet.WriteExact(header, kHeaderSize);
      packet.WriteExact(in_.data() + in_off_ + kLengthSize, *len);
      written = kHeaderSize + *len;
    }
    in_off_ += kLengthSize + *len;
    queue.AddUsed(memory, chain->head, written);
    used = true;
  }
}

bool Net::ProcessTx(Queue& queue, const GuestMemory& memory) {
  bool used = false;
  // While a frame waits for room in the socket, the guest's frames wait in its ring.
  while (out_.empty() || !socket_.valid()) {
    std::optional<DescriptorChain> chain = queue.Pop(memory);
    if (!chain) break;
    if (!chain->writable.empty()) throw QueueError("virtio-net tx chain with a device-writable buffer");
    Reader packet(*chain);
    uint8_t header[kHeaderSize];
    if (!packet.ReadExact(header, kHeaderSize)) throw QueueError("virtio-net tx chain shorter than its header");
    const uint64_t len = packet.available();
    if ((header[0] & kHdrNeedsCsum) || header[1] != kGsoNone) {
      ++dropped_.offloaded;
    } else if (len < kMinFrame) {
      ++dropped_.runts;
    } else if (len > kMaxFrame) {
      ++dropped_.oversized;
    } else if (socket_.valid()) {
      out_.resize(kLengthSize + len);
      const uint32_t n = static_cast<uint32_t>(len);
      out_[0] = n >> 24, out_[1] = (n >> 16) & 0xff, out_[2] = (n >> 8) & 0xff, out_[3] = n & 0xff;
      packet.ReadExact(out_.data() + kLengthSize, len);
      out_off_ = 0;
      Flush();
    }
    queue.AddUsed(memory, chain->head, 0);
    used = true;
  }
  return used;
}

bool Net::ReadSocket() {
  bool got = false;
  while (socket_.valid()) {
    if (in_off_ > 0) {  // what is left of a frame moves to the front, making room behind it
      std::memmove(in_.data(), in_.data() + in_off_, in_len_ - in_off_);
      in_len_ -= in_off_;
      in_off_ = 0;
    }
    if (in_len_ == in_.size()) break;
    const ssize_t n = read(socket_.get(), in_.data() + in_len_, in_.size() - in_len_);
    if (n > 0) {
      in_len_ += static_cast<size_t>(n);
      got = true;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      Disconnect();  // passt ended, or the socket failed
    }
  }
  return got;
}

bool Net::Flush() {
  while (socket_.valid() && out_off_ < out_.size()) {
    const ssize_t n = send(socket_.get(), out_.data() + out_off_, out_.size() - out_off_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      out_off_ += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;
    } else {
      Disconnect();
    }
  }
  if (!socket_.valid()) return false;
  out_.clear();
  out_off_ = 0;
  return true;
}

std::optional<uint32_t> Net::NextFrame() {
  for (;;) {
    const size_t have = in_len_ - in_off_;
    if (have < kLengthSize) return std::nullopt;
    const uint32_t len = BigEndian32(in_.data() + in_off_);
    if (len > kMaxFrame) {
      // A length no frame has: the stream is corrupt and nothing after it can be trusted.
      Disconnect();
      in_len_ = in_off_ = 0;
      return std::nullopt;
    }
    if (have < kLengthSize + len) return std::nullopt;
    if (len >= kMinFrame) return len;
    ++dropped_.runts;
    in_off_ += kLengthSize + len;
  }
}

void Net::Disconnect() {
  socket_ = Fd();  // closing it takes it out of epoll_
  watched_ = 0;
  out_.clear();
  out_off_ = 0;
}

void Net::Watch() {
  if (!socket_.valid()) return;
  const uint32_t events = (in_len_ - in_off_ < in_.size() ? EPOLLIN : 0u) | (out_.empty() ? 0u : EPOLLOUT);
  if (events == watched_) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = socket_.get();
  if (events == 0) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, socket_.get(), nullptr);
  else CheckSys(epoll_ctl(epoll_.get(), watched_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket_.get(), &ev), "epoll_ctl");
  watched_ = events;
}

}  // namespace vmm::devices::virtio
