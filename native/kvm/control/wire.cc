#include "control/wire.h"

#include <sys/socket.h>

#include <cstring>

#include "error.h"

namespace vmm::control {

Writer& Writer::Put(const void* p, size_t n) {
  out_.append(static_cast<const char*>(p), n);  // x86-64: already little-endian
  return *this;
}

Writer& Writer::Str(const std::string& s) {
  U32(static_cast<uint32_t>(s.size()));
  out_ += s;
  return *this;
}

void Reader::Get(void* p, size_t n) {
  if (n > bytes_.size() - pos_) throw VmmError("malformed control message: it ends inside a field");
  std::memcpy(p, bytes_.data() + pos_, n);
  pos_ += n;
}

uint8_t Reader::U8() {
  uint8_t v;
  Get(&v, 1);
  return v;
}

uint32_t Reader::U32() {
  uint32_t v;
  Get(&v, 4);
  return v;
}

uint64_t Reader::U64() {
  uint64_t v;
  Get(&v, 8);
  return v;
}

std::string Reader::Str(size_t max_len) {
  const uint32_t len = U32();
  if (len > max_len || len > bytes_.size() - pos_) throw VmmError("malformed control message: a string is too long");
  std::string s = bytes_.substr(pos_, len);
  pos_ += len;
  return s;
}

void Reader::End() const {
  if (pos_ != bytes_.size()) throw VmmError("malformed control message: bytes left over");
}

void Send(int sock, const std::string& bytes, const std::vector<int>& fds) {
  if (bytes.size() > kMaxMessageBytes || fds.size() > kMaxMessageFds) throw VmmError("control message too large");
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  CheckSys(n, "sendmsg", "the VMM's control channel");
}

bool Receive(int sock, std::string& bytes, std::vector<Fd>& fds) {
  bytes.resize(kMaxMessageBytes + 1);  // one byte more shows a message that was too long
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxMessageFds));
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  // The peer closed with messages of ours unread (status queries a busy VMM never got to): its
  // end all the same. (What it sent and we had not read is lost then: the VMM's supervisor
  // drains its queue before it exits, so that this is rare.)
  if (n < 0 && errno == ECONNRESET) return false;
  CheckSys(n, "recvmsg", "the VMM's control channel");
  fds.clear();
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);  // owned now, so a bad message below still closes them
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) throw VmmError("malformed control message: truncated");
  bytes.resize(n);
  return n > 0;
}

}  // namespace vmm::control
