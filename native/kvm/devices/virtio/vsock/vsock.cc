#include "devices/virtio/vsock/vsock.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "error.h"
#include "event_loop.h"

namespace vmm::devices::virtio::vsock {

namespace {
// `<uds_path>_<port>` must fit sun_path with its NUL whatever the port ("_4294967295" is 11 bytes).
constexpr size_t kMaxUdsPath = sizeof(sockaddr_un{}.sun_path) - 1 - 11;

sockaddr_un UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// "CONNECT <port>" (the newline already gone): the port, or nothing for anything else.
std::optional<uint32_t> ParseConnectLine(const std::string& line) {
  static const std::string kPrefix = "CONNECT ";
  if (line.compare(0, kPrefix.size(), kPrefix) != 0 || line.size() == kPrefix.size()) return std::nullopt;
  uint64_t port = 0;
  for (size_t i = kPrefix.size(); i < line.size(); ++i) {
    if (line[i] < '0' || line[i] > '9') return std::nullopt;
    port = port * 10 + (line[i] - '0');
    if (port > UINT32_MAX) return std::nullopt;
  }
  return static_cast<uint32_t>(port);
}

// A device-writable chain that can carry a header and at least one byte of data: anything less
// could never carry data, and a guest could make us spin on it.
void CheckRxChain(const DescriptorChain& chain) {
  if (!chain.readable.empty()) throw QueueError("virtio-vsock rx chain with a device-readable buffer");
  if (Writer(chain).available() <= kHeaderSize) throw QueueError("virtio-vsock rx buffer too small for a packet");
}
}  // namespace

Vsock::Vsock(uint64_t guest_cid, const std::string& uds_path) : guest_cid_(guest_cid), uds_path_(uds_path) {
  // Linux takes 32-bit CIDs, and U32_MAX is VMADDR_CID_ANY.
  if (guest_cid < kMinGuestCid || guest_cid >= UINT32_MAX) {
    throw VmmError("vsock guest CID must be between 3 and 4294967294, not " + std::to_string(guest_cid));
  }
  if (uds_path.empty() || uds_path.size() > kMaxUdsPath) {
    throw VmmError("vsock socket path " + uds_path + " is " + std::to_string(uds_path.size()) +
                   " bytes; with _<port> appended it must fit a Unix socket address, so at most " +
                   std::to_string(kMaxUdsPath));
  }
  epoll_ = Fd(CheckSys(epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
  kick_ = Fd(CheckSys(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));
  Watch(kick_.get(), EPOLLIN);
  Fd listener(CheckSys(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket"));
  Watch(listener.get(), EPOLLIN);
  const sockaddr_un addr = UnixAddress(uds_path);
  if (bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    throw VmmError("vsock socket " + uds_path + ": " + std::strerror(errno));
  }
  if (listen(listener.get(), 64) < 0) {
    const int err = errno;
    unlink(uds_path.c_str());  // bound by us: the destructor will not run to remove it
    throw SysError("listen", err, uds_path);
  }
  listener_ = std::move(listener);
}

Vsock::~Vsock() {
  if (listener_.valid()) unlink(uds_path_.c_str());
}

void Vsock::ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) {
  // struct virtio_vsock_config (5.10.4): le64 guest_cid.
  uint8_t config[8];
  std::memcpy(config, &guest_cid_, sizeof config);
  for (uint32_t i = 0; i < len; ++i) data[i] = offset + i < sizeof config ? config[offset + i] : 0;
}

void Vsock::Activate(EventLoop& loop, std::function<void(uint16_t)> process_queue) {
  loop.Add(epoll_.get(), EPOLLIN, [this, process_queue](uint32_t) {
    if (OnHostEvents()) process_queue(kRxQueue);  // outside our lock: the transport takes its own first
  });
}

bool Vsock::Process(uint16_t queue_index, Queue& queue, const GuestMemory& memory) {
  std::lock_guard<std::mutex> lock(mutex_);
  switch (queue_index) {
    case kRxQueue: return ProcessRx(queue, memory);
    case kTxQueue: return ProcessTx(queue, memory);
    default:
      // The event queue: the guest refilled it, so it has handled a TRANSPORT_RESET we sent. The
      // rx queue may then go on, woken through the device thread as host events wake it.
      if (awaiting_reset_ack_) {
        awaiting_reset_ack_ = false;
        const uint64_t one = 1;
        (void)!write(kick_.get(), &one, sizeof one);
      }
      return false;
  }
}

bool Vsock::PrepareSnapshot(std::vector<Queue>& queues, const GuestMemory& memory) {
  std::lock_guard<std::mutex> lock(mutex_);
  DropEverything();
  std::optional<DescriptorChain> chain = queues.at(kEventQueue).Pop(memory);
  if (!chain) return false;  // a driver with no event buffer gets no event (Linux always keeps some)
  Writer event(*chain);
  const uint32_t transport_reset = 0;  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
  if (!event.WriteObject(transport_reset)) throw QueueError("vsock event buffer shorter than an event");
  queues.at(kEventQueue).AddUsed(memory, chain->head, sizeof transport_reset);
  awaiting_reset_ack_ = true;
  return true;
}

std::vector<uint8_t> Vsock::SaveState() {
  std::lock_guard<std::mutex> lock(mutex_);
  return {static_cast<uint8_t>(awaiting_reset_ack_)};
}

void Vsock::RestoreState(const std::vector<uint8_t>& bytes, const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (bytes.size() != 1 || bytes[0] > 1) throw snapshot::SnapshotError(what + " holds vsock state of another shape");
  awaiting_reset_ack_ = bytes[0] == 1;
}

void Vsock::Reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  DropEverything();
  awaiting_reset_ack_ = false;
}

void Vsock::DropEverything() {
  while (!connections_.empty()) Kill(*connections_.begin()->second, false);
  control_.clear();
  ready_.clear();
  scheduled_.clear();
  spare_rx_.reset();
  rx_starved_ = false;
}

bool Vsock::ProcessRx(Queue& queue, const GuestMemory& memory) {
  if (awaiting_reset_ack_) return false;
  SetRxStarved(false);  // the guest just gave buffers (or we are asked to try)
  bool used = false;
  // Each turn uses a chain or takes a connection off ready_ for good, so this ends.
  while (!control_.empty() || !ready_.empty()) {
    std::optional<DescriptorChain> chain = std::move(spare_rx_);
    spare_rx_.reset();
    if (!chain) {
      chain = queue.Pop(memory);
      if (!chain) {
        SetRxStarved(true);
        break;
      }
      CheckRxChain(*chain);
    }
    // The packet's header, and the room for its payload after it (CheckRxChain: at least a byte).
    Writer header(*chain), payload;
    header.SplitAt(kHeaderSize, payload);
    uint32_t written = 0;
    if (!control_.empty()) {
      WriteHeader(header, control_.front());
      control_.pop_front();
      written = kHeaderSize;
    } else {
      const Key key = ready_.front();
      ready_.pop_front();
      scheduled_.erase(key);
      Connection& c = *connections_.at(key);  // Kill takes a key off ready_ with its connection
      written = c.FillRx(header, payload);
      Settle(c);
    }
    if (written == 0) {
      spare_rx_ = std::move(chain);
      continue;
    }
    queue.AddUsed(memory, chain->head, written);
    used = true;
  }
  return used;
}

bool Vsock::ProcessTx(Queue& queue, const GuestMemory& memory) {
  bool used = false;
  while (auto chain = queue.Pop(memory)) {
    if (!chain->writable.empty()) throw QueueError("virtio-vsock tx chain with a device-writable buffer");
    Reader packet(*chain);
    Header h;
    if (!ReadHeader(packet, h)) throw QueueError("virtio-vsock packet shorter than its header");
    if (h.len > kMaxPayload) throw QueueError("virtio-vsock packet len above 64 KiB");
    if (packet.available() != h.len) throw QueueError("virtio-vsock packet len does not match its buffers");
    OnGuestPacket(h, packet.Take(h.len));
    queue.AddUsed(memory, chain->head, 0);
    used = true;
  }
  // Replies go through the rx queue, which the transport runs for us only from outside Process.
  if (!control_.empty() || !ready_.empty()) Kick();
  return used;
}

void Vsock::OnGuestPacket(const Header& h, const std::vector<iovec>& payload) {
  // Spoofed or misdirected: not ours to answer, so dropped.
  if (h.src_cid != guest_cid_ || h.dst_cid != kHostCid) return;
  auto it = connections_.find({h.dst_port, h.src_port});
  Connection* c = it == connections_.end() ? nullptr : it->second.get();
  if (h.op == kOpRst) {
    if (c) Kill(*c, false);
    return;
  }
  const bool known_op = h.op >= kOpRequest && h.op <= kOpCreditRequest;
  // Only RW carries payload; a REQUEST for a connection that exists is the guest confused.
  if (h.type != kTypeStream || !known_op || (h.op != kOpRw && h.len != 0) || (c && h.op == kOpRequest)) {
    if (c) Kill(*c, true);
    else QueueRst(h.dst_port, h.src_port);
    return;
  }
  if (h.op == kOpRequest) {
    OnGuestRequest(h);
    return;
  }
  if (!c) {
    QueueRst(h.dst_port, h.src_port);
    return;
  }
  c->UpdatePeerCredit(h);
  using State = Connection::State;
  if (c->state() != (h.op == kOpResponse ? State::kRequesting : State::kEstablished)) {
    Kill(*c, true);
    return;
  }
  switch (h.op) {
    case kOpResponse:
      if (!c->Accepted()) {
        Kill(*c, true);
        return;
      }
      break;
    case kOpRw: c->WriteFromGuest(payload, h.len); break;
    case kOpShutdown: c->ShutdownFromGuest(h.flags); break;
    case kOpCreditRequest: c->RequestCredit(); break;
    default: break;  // CREDIT_UPDATE: its header said it all
  }
  Settle(*c);
}

void Vsock::OnGuestRequest(const Header& h) {
  const std::string path = uds_path_ + "_" + std::to_string(h.dst_port);
  if (connections_.size() >= kMaxConnections) {
    QueueRst(h.dst_port, h.src_port);
    return;
  }
  Fd socket_fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const sockaddr_un addr = UnixAddress(path);
  // A Unix connect completes at once or fails (EAGAIN when the listener's backlog is full: refused
  // too); EINPROGRESS is handled all the same.
  const int result =
      socket_fd.valid() ? connect(socket_fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) : -1;
  if (result < 0 && (!socket_fd.valid() || errno != EINPROGRESS)) {
    QueueRst(h.dst_port, h.src_port);
    return;
  }
  auto c = std::make_unique<Connection>(std::move(socket_fd), guest_cid_, h.dst_port, h.src_port,
                                        Connection::State::kConnecting);
  c->UpdatePeerCredit(h);
  if (result == 0) c->Connected();
  Settle(Add(std::move(c)));
}

bool Vsock::OnHostEvents() {
  std::lock_guard<std::mutex> lock(mutex_);
  epoll_event events[32];
  const int n = epoll_wait(epoll_.get(), events, 32, 0);
  for (int i = 0; i < n; ++i) {
    const int fd = events[i].data.fd;
    if (fd == kick_.get()) {
      uint64_t count;
      (void)!read(fd, &count, sizeof count);
    } else if (fd == listener_.get()) {
      AcceptHostClients();
    } else if (host_clients_.count(fd)) {
      ReadConnectLine(fd);
    } else if (auto it = by_fd_.find(fd); it != by_fd_.end()) {
      OnConnectionEvents(*connections_.at(it->second), events[i].events);
    }
  }
  return !control_.empty() || !ready_.empty();
}

void Vsock::OnConnectionEvents(Connection& c, uint32_t events) {
  const bool failed = events & (EPOLLERR | EPOLLHUP);
  if (c.state() == Connection::State::kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (failed || getsockopt(c.fd(), SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
      Kill(c, true);
      return;
    }
    c.Connected();
  } else {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) c.FlushToHost();
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) c.SetHostReadable();
  }
  Settle(c);
}

void Vsock::AcceptHostClients() {
  for (;;) {
    Fd client(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client.valid()) return;  // EAGAIN, or a client that left already
    if (host_clients_.size() >= kMaxHostClients) continue;  // closed: come back later
    const int fd = client.get();
    host_clients_[fd] = {std::move(client), ""};
    Watch(fd, EPOLLIN);
  }
}

void Vsock::ReadConnectLine(int fd) {
  HostClient& client = host_clients_.at(fd);
  // A byte at a time, so that nothing after the newline is taken from the stream.
  for (;;) {
    char ch;
    const ssize_t n = recv(fd, &ch, 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0 || client.line.size() == kMaxConnectLine) break;  // gone, or garbage
    if (ch == '\n') {
      const std::optional<uint32_t> port = ParseConnectLine(client.line);
      if (!port || connections_.size() >= kMaxConnections) break;
      Fd socket_fd = std::move(client.socket);
      Watch(fd, 0);
      host_clients_.erase(fd);
      Settle(Add(std::make_unique<Connection>(std::move(socket_fd), guest_cid_, AllocateHostPort(), *port,
                                              Connection::State::kRequesting)));
      return;
    }
    client.line += ch;
  }
  Watch(fd, 0);
  host_clients_.erase(fd);  // closes it
}

uint32_t Vsock::AllocateHostPort() {
  for (;;) {
    const uint32_t port = next_host_port_++;
    if (next_host_port_ == 0) next_host_port_ = kFirstHostPort;
    bool taken = false;
    for (const auto& entry : connections_) taken = taken || entry.first.first == port;
    if (!taken) return port;  // found within kMaxConnections + 1 tries
  }
}

Connection& Vsock::Add(std::unique_ptr<Connection> c) {
  const Key key{c->local_port(), c->peer_port()};
  by_fd_[c->fd()] = key;
  return *(connections_[key] = std::move(c));
}

void Vsock::Settle(Connection& c) {
  if (c.broken() || c.Done()) {
    Kill(c, true);
    return;
  }
  const Key key{c.local_port(), c.peer_port()};
  if (c.HasRxWork() && scheduled_.insert(key).second) ready_.push_back(key);
  Watch(c.fd(), c.WantedEvents(rx_starved_));
}

void Vsock::Kill(Connection& c, bool send_rst) {
  const Key key{c.local_port(), c.peer_port()};
  if (send_rst) QueueRst(key.first, key.second);
  Watch(c.fd(), 0);
  by_fd_.erase(c.fd());
  // Nothing of a dead connection may stay queued: a guest that connects and resets in a loop,
  // giving no rx buffers, would grow ready_ without end.
  if (scheduled_.erase(key)) ready_.erase(std::find(ready_.begin(), ready_.end(), key));
  connections_.erase(key);  // closes the socket; the host side sees end of file
}

void Vsock::Watch(int fd, uint32_t events) {
  auto it = watched_.find(fd);
  const uint32_t current = it == watched_.end() ? 0 : it->second;
  if (events == current) return;
  if (events == 0) {
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    watched_.erase(it);
    return;
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  CheckSys(epoll_ctl(epoll_.get(), current ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev), "epoll_ctl");
  watched_[fd] = events;
}

void Vsock::SetRxStarved(bool starved) {
  if (rx_starved_ == starved) return;
  rx_starved_ = starved;
  for (auto& entry : connections_) Watch(entry.second->fd(), entry.second->WantedEvents(starved));
}

void Vsock::QueueRst(uint32_t host_port, uint32_t guest_port) {
  if (control_.size() >= kMaxControlPackets) return;  // a guest that floods us and gives no rx buffers
  control_.push_back(StreamHeader(kOpRst, kHostCid, host_port, guest_cid_, guest_port));
}

void Vsock::Kick() {
  uint64_t one = 1;
  (void)!write(kick_.get(), &one, sizeof one);
}

}  // namespace vmm::devices::virtio::vsock
