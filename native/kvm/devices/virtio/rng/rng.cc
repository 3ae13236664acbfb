#include "devices/virtio/rng/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "error.h"

namespace vmm::devices::virtio {

namespace {
void FillRandom(uint8_t* data, uint32_t len) {
  while (len > 0) {
    ssize_t n = getrandom(data, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SysError("getrandom", errno);
    data += n, len -= n;
  }
}
}  // namespace

bool Rng::Process(uint16_t, Queue& queue, const GuestMemory& memory) {
  bool used = false;
  while (auto chain = queue.Pop(memory)) {
    uint64_t written = 0;
    for (const Buffer& b : chain->writable) {
      FillRandom(b.data, b.len);
      written += b.len;
    }
    queue.AddUsed(memory, chain->head, static_cast<uint32_t>(std::min<uint64_t>(written, UINT32_MAX)));
    used = true;
  }
  return used;
}

}  // namespace vmm::devices::virtio
