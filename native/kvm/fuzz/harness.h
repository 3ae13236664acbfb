// What the fuzz targets share: the input read as a stream of fields, and host Unix listeners for
// vsock connections to reach (drained after every input, so their backlogs never fill up).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace vmm_fuzz {

// Reads fields off the input; zeros once it runs out.
struct Input {
  const uint8_t* data;
  size_t left;
  template <typename T>
  T Take() {
    T v{};
    const size_t n = left < sizeof v ? left : sizeof v;
    std::memcpy(&v, data, n);
    data += n, left -= n;
    return v;
  }
};

// Listening sockets at `<base>_<port>`, where a vsock device sends guest connections.
class HostListeners {
 public:
  HostListeners(const std::string& base, uint32_t first_port, uint32_t count) {
    for (uint32_t port = first_port; port < first_port + count; ++port) {
      const std::string path = base + "_" + std::to_string(port);
      const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);  // drained without blocking
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path, path.data(), path.size());
      bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      listen(s, 4096);
      fds_.push_back(s);
    }
  }
  // Accepts and closes what the last input connected.
  void Drain() {
    for (int l : fds_) {
      for (int c; (c = accept4(l, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) close(c);
    }
  }

 private:
  std::vector<int> fds_;
};

}  // namespace vmm_fuzz
