// libFuzzer target: virtio-vsock packets from a hostile guest, straight into the device's queues
// (no transport in the way): headers with any fields, payloads split across descriptors as the
// input says, rx buffers given or withheld, and the host sockets' events in between. Connections
// reach real host listeners, so data, credit, shutdown and reset paths all run.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio/queue.h"
#include "devices/virtio/vsock/packet.h"
#include "devices/virtio/vsock/vsock.h"
#include "vstate/memory.h"

using namespace vmm::devices::virtio;
using namespace vmm::devices::virtio::vsock;

namespace {
constexpr uint64_t kRamBytes = 4 << 20;
constexpr uint16_t kRing = 64;
constexpr uint64_t kRxDesc = 0x10000, kRxAvail = 0x11000, kRxUsed = 0x12000, kRxBufs = 0x100000;
constexpr uint64_t kTxDesc = 0x20000, kTxAvail = 0x21000, kTxUsed = 0x22000, kTxData = 0x200000;

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

std::string base;
std::vector<int> listeners;

// Accepts and closes what the last input connected: the listeners' backlogs never fill up.
void DrainListeners() {
  for (int l : listeners) {
    for (int c; (c = accept4(l, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) close(c);
  }
}

void Setup() {
  if (!base.empty()) return;
  char dir[] = "/tmp/vmrun-fuzz-vsock-XXXXXX";
  base = std::string(mkdtemp(dir)) + "/v.sock";
  for (int port = 1024; port < 1028; ++port) {
    const std::string path = base + "_" + std::to_string(port);
    const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);  // drained without blocking
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(s, 4096);
    listeners.push_back(s);
  }
}

void Desc(vmm::GuestMemory& mem, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  uint8_t d[16];
  std::memcpy(d, &addr, 8);
  std::memcpy(d + 8, &len, 4);
  std::memcpy(d + 12, &flags, 2);
  std::memcpy(d + 14, &next, 2);
  mem.Write(table + 16 * uint64_t{i}, d, 16, "descriptor");
}

void Offer(vmm::GuestMemory& mem, uint64_t avail, uint16_t& idx, uint16_t head) {
  mem.WriteObject<uint16_t>(avail + 4 + 2 * static_cast<uint64_t>(idx % kRing), head, "avail ring");
  mem.WriteObject<uint16_t>(avail + 2, ++idx, "avail idx");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Setup();
  Input in{data, size};
  vmm::GuestMemory mem(kRamBytes);
  Queue rx(256), tx(256);
  for (auto [q, desc, avail, used] : {std::tuple<Queue*, uint64_t, uint64_t, uint64_t>{&rx, kRxDesc, kRxAvail, kRxUsed},
                                      {&tx, kTxDesc, kTxAvail, kTxUsed}}) {
    q->size = kRing;
    q->ready = true;
    q->desc_addr = desc;
    q->avail_addr = avail;
    q->used_addr = used;
  }
  Vsock dev(3, base);
  uint16_t rx_idx = 0, tx_idx = 0, rx_slot = 0, tx_slot = 0;
  try {
    for (int ops = 0; in.left > 0 && ops < 64; ++ops) {
      switch (in.Take<uint8_t>() % 4) {
        case 0: {  // a packet on tx: a header with fields from the input, a payload, split anywhere
          uint8_t header[kHeaderSize];
          Header h = StreamHeader(1 + in.Take<uint8_t>() % 8, in.Take<uint8_t>() & 1 ? 3 : in.Take<uint64_t>(),
                                  in.Take<uint8_t>() % 4 ? 5555 : in.Take<uint32_t>(), 2, 1024 + in.Take<uint8_t>() % 4,
                                  in.Take<uint32_t>(), in.Take<uint32_t>());
          h.type = in.Take<uint8_t>() & 1 ? kTypeStream : in.Take<uint16_t>();
          h.flags = in.Take<uint8_t>() % 4;
          const uint16_t payload = in.Take<uint16_t>() % 2048;
          h.len = in.Take<uint8_t>() & 1 ? payload : in.Take<uint32_t>();
          EncodeHeader(h, header);
          const uint64_t at = kTxData + static_cast<uint64_t>(tx_slot % kRing) * 0x2000;
          mem.Write(at, header, kHeaderSize, "header");
          const uint32_t total = kHeaderSize + payload;
          const uint32_t cut = in.Take<uint16_t>() % (total + 1);
          const uint16_t head = static_cast<uint16_t>((tx_slot * 2) % kRing);
          if (cut == 0 || cut == total) {
            Desc(mem, kTxDesc, head, at, total, 0, 0);
          } else {
            Desc(mem, kTxDesc, head, at, cut, 1, static_cast<uint16_t>(head + 1));
            Desc(mem, kTxDesc, static_cast<uint16_t>(head + 1), at + cut, total - cut, 0, 0);
          }
          ++tx_slot;
          Offer(mem, kTxAvail, tx_idx, head);
          dev.Process(Vsock::kTxQueue, tx, mem);
          break;
        }
        case 1: {  // rx buffers, of a size from the input
          const uint32_t len = kHeaderSize + 1 + in.Take<uint16_t>() % 4096;
          const uint16_t head = static_cast<uint16_t>(rx_slot % kRing);
          Desc(mem, kRxDesc, head, kRxBufs + uint64_t{head} * 0x2000, len, 2, 0);
          ++rx_slot;
          Offer(mem, kRxAvail, rx_idx, head);
          dev.Process(Vsock::kRxQueue, rx, mem);
          break;
        }
        case 2:  // the host sockets
          if (dev.OnHostEvents()) dev.Process(Vsock::kRxQueue, rx, mem);
          break;
        default:
          dev.Reset();
          break;
      }
    }
  } catch (const QueueError&) {
    // the transport would mark the device as needing a reset: a valid outcome
  }
  DrainListeners();
  return 0;
}
