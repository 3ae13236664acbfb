#include "devices/virtio/fs/vhost_user.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.h"

namespace vmm::devices::virtio {

namespace {
// Request codes (vhost-user.rst, "Front-end message types").
constexpr uint32_t kGetFeatures = 1, kSetFeatures = 2, kSetOwner = 3, kSetMemTable = 5, kSetVringNum = 8,
                   kSetVringAddr = 9, kSetVringBase = 10, kGetVringBase = 11, kSetVringKick = 12,
                   kSetVringCall = 13;
constexpr uint32_t kVersion = 0x1, kReplyFlag = 0x4, kVersionMask = 0x3;
constexpr uint32_t kMaxRegions = 8;  // VHOST_MEMORY_BASELINE_NREGIONS

struct Header {
  uint32_t request, flags, size;
};
struct VringState {
  uint32_t index, num;
};
struct VringAddr {
  uint32_t index, flags;
  uint64_t desc, used, avail, log;
};
struct MemRegion {
  uint64_t guest_addr, size, user_addr, mmap_offset;
};
struct MemTable {
  uint32_t count, padding;
  MemRegion regions[kMaxRegions];
};

uint64_t HostAddress(const GuestMemory& memory, uint64_t guest_addr, uint64_t len) {
  return reinterpret_cast<uint64_t>(memory.SliceOrThrow(guest_addr, len, "a vhost-user ring"));
}
}  // namespace

VhostUserFrontend::VhostUserFrontend(Fd socket, std::string name) : socket_(std::move(socket)), name_(std::move(name)) {
  const timeval timeout{kReplyTimeoutSeconds, 0};
  CheckSys(setsockopt(socket_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout), "setsockopt(SO_RCVTIMEO)", name_);
  CheckSys(setsockopt(socket_.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout), "setsockopt(SO_SNDTIMEO)", name_);
}

void VhostUserFrontend::Send(uint32_t request, const void* payload, uint32_t size, const std::vector<int>& fds) {
  Header header{request, kVersion, size};
  iovec iov[2] = {{&header, sizeof header}, {const_cast<void*>(payload), size}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = size ? 2 : 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxRegions)];
  if (fds.size() > kMaxRegions) throw VmmError(name_ + ": too many descriptors for one vhost-user message");
  if (!fds.empty()) {
    const size_t bytes = sizeof(int) * fds.size();
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    std::memcpy(CMSG_DATA(c), fds.data(), bytes);
  }
  ssize_t n;
  do n = sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw SysError("sendmsg", errno, name_);
  if (static_cast<size_t>(n) != sizeof header + size) throw VmmError(name_ + ": a vhost-user message was cut short");
}

void VhostUserFrontend::Receive(uint32_t request, void* payload, uint32_t size) {
  auto read_exactly = [this](void* to, size_t len) {
    auto* p = static_cast<uint8_t*>(to);
    while (len > 0) {
      ssize_t n = read(socket_.get(), p, len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) throw VmmError(name_ + " did not answer in time");
      if (n < 0) throw SysError("read", errno, name_);
      if (n == 0) throw VmmError(name_ + " closed its socket");
      p += n;
      len -= static_cast<size_t>(n);
    }
  };
  Header header;
  read_exactly(&header, sizeof header);
  // The back end is another process: what it says is checked like anything from outside.
  if (header.request != request || (header.flags & kVersionMask) != kVersion || !(header.flags & kReplyFlag) ||
      header.size != size) {
    throw VmmError(name_ + " sent a malformed vhost-user reply (request " + std::to_string(header.request) + ", " +
                   std::to_string(header.size) + " bytes)");
  }
  read_exactly(payload, size);
}

uint64_t VhostUserFrontend::Connect() {
  Send(kSetOwner, nullptr, 0);
  Send(kGetFeatures, nullptr, 0);
  uint64_t features = 0;
  Receive(kGetFeatures, &features, sizeof features);
  return features;
}

void VhostUserFrontend::SetFeatures(uint64_t features) { Send(kSetFeatures, &features, sizeof features); }

void VhostUserFrontend::SetMemTable(const GuestMemory& memory) {
  if (memory.shared_fd() < 0) throw VmmError(name_ + ": guest memory is not shared, so a vhost-user back end cannot map it");
  MemTable table{};
  std::vector<int> fds;
  for (const MemoryRegion& r : memory.regions()) {
    table.regions[table.count++] = {r.guest_addr, r.size, reinterpret_cast<uint64_t>(r.host), memory.FileOffset(r)};
    fds.push_back(memory.shared_fd());
  }
  Send(kSetMemTable, &table, static_cast<uint32_t>(8 + table.count * sizeof(MemRegion)), fds);
}

void VhostUserFrontend::StartRing(uint32_t index, const Ring& ring, const GuestMemory& memory, int kick_fd, int call_fd) {
  const VringState num{index, ring.size};
  Send(kSetVringNum, &num, sizeof num);
  // The ring's addresses as this process sees them: the back end translates them through the
  // memory table's user addresses.
  const VringAddr addr{index,
                       0,
                       HostAddress(memory, ring.desc, uint64_t{16} * ring.size),
                       HostAddress(memory, ring.used, 6 + uint64_t{8} * ring.size),
                       HostAddress(memory, ring.avail, 6 + uint64_t{2} * ring.size),
                       0};
  Send(kSetVringAddr, &addr, sizeof addr);
  const VringState base{index, 0};
  Send(kSetVringBase, &base, sizeof base);
  const uint64_t which = index;
  Send(kSetVringCall, &which, sizeof which, {call_fd});
  Send(kSetVringKick, &which, sizeof which, {kick_fd});
}

uint32_t VhostUserFrontend::StopRing(uint32_t index) {
  const VringState state{index, 0};
  Send(kGetVringBase, &state, sizeof state);
  VringState reply{};
  Receive(kGetVringBase, &reply, sizeof reply);
  return reply.num;
}

}  // namespace vmm::devices::virtio
