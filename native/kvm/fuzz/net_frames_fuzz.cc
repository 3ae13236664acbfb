// libFuzzer target: virtio-net between a hostile guest and a socket standing in for passt,
// straight into the device's queues (no transport in the way): tx chains with any header and
// any length, split anywhere; rx buffers of any size, given or withheld; and passt's side
// writing any bytes (lengths in or out of range, frames cut anywhere) or going away.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "devices/virtio/net/net.h"
#include "devices/virtio/queue.h"
#include "fuzz/harness.h"
#include "tests/virtq_driver.h"
#include "vstate/memory.h"

using namespace vmm::devices::virtio;

namespace {
constexpr uint64_t kRamBytes = 4 << 20;
constexpr uint16_t kRing = 64;
constexpr uint64_t kRxDesc = 0x10000, kRxAvail = 0x11000, kRxUsed = 0x12000, kRxBufs = 0x100000;
constexpr uint64_t kTxDesc = 0x20000, kTxAvail = 0x21000, kTxUsed = 0x22000, kTxData = 0x200000;
constexpr uint32_t kSlot = 0x4000;  // each chain's room in test memory
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmm_fuzz::Input in{data, size};
  vmm::GuestMemory mem(kRamBytes);
  Queue rx(256), tx(256);
  vmm_test::ConfigureQueue(rx, kRing, kRxDesc, kRxAvail, kRxUsed);
  vmm_test::ConfigureQueue(tx, kRing, kTxDesc, kTxAvail, kTxUsed);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  int passt = sv[1];
  int small = 4096;  // a socket that fills up soon, so that back-pressure paths run
  setsockopt(passt, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  Net dev(vmm::Fd(sv[0]), {2, 0, 0, 0, 0, 1});
  uint16_t rx_idx = 0, tx_idx = 0;
  try {
    for (int ops = 0; in.left > 0 && ops < 64; ++ops) {
      switch (in.Take<uint8_t>() % 6) {
        case 0: {  // a frame on tx: a header with any bytes, any length, split anywhere
          const uint16_t slot = static_cast<uint16_t>(tx_idx % (kRing / 2));
          const uint64_t at = kTxData + uint64_t{slot} * kSlot;
          uint8_t header[Net::kHeaderSize];
          for (uint8_t& b : header) b = in.Take<uint8_t>() & 1 ? 0 : in.Take<uint8_t>();
          mem.Write(at, header, sizeof header, "header");
          const uint32_t total = in.Take<uint16_t>() % kSlot;
          const uint32_t cut = total ? in.Take<uint16_t>() % (total + 1) : 0;
          const uint16_t head = static_cast<uint16_t>(slot * 2);
          if (cut == 0 || cut == total) {
            vmm_test::WriteDescriptor(mem, kTxDesc, head, at, total, in.Take<uint8_t>() % 8 == 0 ? 2 : 0, 0);
          } else {
            vmm_test::WriteDescriptor(mem, kTxDesc, head, at, cut, 1, static_cast<uint16_t>(head + 1));
            vmm_test::WriteDescriptor(mem, kTxDesc, static_cast<uint16_t>(head + 1), at + cut, total - cut, 0, 0);
          }
          vmm_test::OfferChain(mem, kTxAvail, kRing, ++tx_idx, head);
          dev.Process(Net::kTxQueue, tx, mem);
          break;
        }
        case 1: {  // an rx buffer of any size
          const uint16_t head = static_cast<uint16_t>(rx_idx % kRing);
          const uint32_t len = 1 + in.Take<uint16_t>() % kSlot;
          vmm_test::WriteDescriptor(mem, kRxDesc, head, kRxBufs + uint64_t{head} * kSlot, len, in.Take<uint8_t>() % 8 == 0 ? 0 : 2, 0);
          vmm_test::OfferChain(mem, kRxAvail, kRing, ++rx_idx, head);
          dev.Process(Net::kRxQueue, rx, mem);
          break;
        }
        case 2: {  // passt writes: a length (in range or not) and some of a frame
          std::vector<uint8_t> bytes(4 + in.Take<uint16_t>() % 3000);
          for (uint8_t& b : bytes) b = in.Take<uint8_t>();
          if (in.Take<uint8_t>() & 1) {  // mostly a plausible length
            const uint32_t n = static_cast<uint32_t>(bytes.size() - 4 + in.Take<uint8_t>() % 8);
            bytes[0] = 0, bytes[1] = 0, bytes[2] = static_cast<uint8_t>(n >> 8), bytes[3] = static_cast<uint8_t>(n);
          }
          if (passt >= 0) (void)!send(passt, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
          break;
        }
        case 3: {  // the device's thread wakes up for the socket
          const Net::Work work = dev.OnSocketEvents();
          if (work.rx) dev.Process(Net::kRxQueue, rx, mem);
          if (work.tx) dev.Process(Net::kTxQueue, tx, mem);
          break;
        }
        case 4: {  // passt reads some, or goes away
          char sink[8192];
          if (passt >= 0 && in.Take<uint8_t>() % 16 == 0) {
            close(passt);
            passt = -1;
          } else if (passt >= 0) {
            (void)!recv(passt, sink, sizeof sink, MSG_DONTWAIT);
          }
          break;
        }
        default:
          dev.Reset();
          break;
      }
    }
  } catch (const QueueError&) {
    // the transport would mark the device as needing a reset: a valid outcome
  }
  if (passt >= 0) close(passt);
  return 0;
}
