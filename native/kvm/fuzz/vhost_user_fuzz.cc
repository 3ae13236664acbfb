// libFuzzer target: the vhost-user front end against a hostile back end (a virtiofsd that the
// guest has taken over through its FUSE requests): the input is everything the back end says,
// replies of any request code, flags, size and length, cut anywhere, then silence, while the
// front end connects, hands rings over and stops them in any order. Every reply must be refused
// or taken whole; nothing may read past what was sent or wait for ever.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "devices/virtio/fs/vhost_user.h"
#include "error.h"
#include "fuzz/harness.h"
#include "vstate/memory.h"

using vmm::devices::virtio::VhostUserFrontend;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vmm::GuestMemory mem(4 << 20, vmm::GuestMemory::Backing::kSharedMemfd);
  vmm_fuzz::Input in{data, size};
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  const int backend = sv[1];
  // The ops first (a few bytes), then the back end's whole say, then the end of its stream:
  // a read past it gets end of file, never the five-second timeout.
  std::vector<uint8_t> ops;
  for (size_t n = in.Take<uint8_t>() % 16; n > 0; --n) ops.push_back(in.Take<uint8_t>());
  if (in.left > 0 && write(backend, in.data, in.left) < 0) {
    close(backend);
    close(sv[0]);
    return 0;
  }
  shutdown(backend, SHUT_WR);
  VhostUserFrontend frontend(vmm::Fd(sv[0]), "fuzzed back end");
  int eventfds[2] = {dup(backend), dup(backend)};  // any fds will do: the back end never uses them here
  for (uint8_t op : ops) {
    try {
      switch (op % 5) {
        case 0: frontend.Connect(); break;
        case 1: frontend.StopRing(op >> 3); break;
        case 2: frontend.SetMemTable(mem); break;
        case 3: frontend.SetFeatures(uint64_t{op} << 30); break;
        case 4: frontend.StartRing(op >> 3, {64, 0x10000, 0x11000, 0x12000}, mem, eventfds[0], eventfds[1]); break;
      }
    } catch (const vmm::VmmError&) {
      // refused: what a hostile back end should get
    }
  }
  close(eventfds[0]);
  close(eventfds[1]);
  close(backend);
  return 0;
}
