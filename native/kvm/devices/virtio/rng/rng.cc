#include "devices/virtio/rng/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "devices/virtio/descriptor_utils.h"
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
    Writer entropy(*chain);
    const uint64_t len = entropy.available();
    for (const iovec& v : entropy.Take(len)) FillRandom(static_cast<uint8_t*>(v.iov_base), static_cast<uint32_t>(v.iov_len));
    queue.AddUsed(memory, chain->head, static_cast<uint32_t>(std::min<uint64_t>(len, UINT32_MAX)));
    used = true;
  }
  return used;
}

}  // namespace vmm::devices::virtio
