// The control channel's framing: one message per SOCK_SEQPACKET record, fields little-endian,
// descriptors alongside (SCM_RIGHTS). Both ends parse with Reader, which checks every length: the
// host must treat a VMM process's messages as hostile (it runs next to the guest).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fd.h"

namespace vmm::control {

constexpr size_t kMaxMessageBytes = 64 * 1024;
constexpr size_t kMaxMessageFds = 253;  // SCM_MAX_FD

class Writer {
 public:
  Writer& U8(uint8_t v) { return Put(&v, 1); }
  Writer& U32(uint32_t v) { return Put(&v, 4); }
  Writer& U64(uint64_t v) { return Put(&v, 8); }
  Writer& Str(const std::string& s);
  const std::string& bytes() const { return out_; }

 private:
  Writer& Put(const void* p, size_t n);
  std::string out_;
};

// Reads fields in order; any read past the end, or bytes left over at End(), throws VmmError.
class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  uint8_t U8();
  uint32_t U32();
  uint64_t U64();
  std::string Str(size_t max_len);
  void End() const;

 private:
  void Get(void* p, size_t n);
  const std::string& bytes_;
  size_t pos_ = 0;
};

// Sends one message with `fds` (borrowed); throws SysError.
void Send(int sock, const std::string& bytes, const std::vector<int>& fds = {});

// Receives one message and its descriptors (close-on-exec). False at end of stream; throws
// VmmError on a truncated message or descriptor list.
bool Receive(int sock, std::string& bytes, std::vector<Fd>& fds);

}  // namespace vmm::control
