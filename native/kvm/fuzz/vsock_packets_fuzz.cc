// libFuzzer target: virtio-vsock packets from a hostile guest, straight into the device's queues
// (no transport in the way): headers with any fields, payloads split across descriptors as the
// input says, rx buffers given or withheld, and the host sockets' events in between. Connections
// reach real host listeners, so data, credit, shutdown and reset paths all run.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "devices/virtio/queue.h"
#include "devices/virtio/vsock/packet.h"
#include "devices/virtio/vsock/vsock.h"
#include "fuzz/harness.h"
#include "tests/virtq_driver.h"
#include "vstate/memory.h"

using namespace vmm::devices::virtio;
using namespace vmm::devices::virtio::vsock;

namespace {
constexpr uint64_t kRamBytes = 4 << 20;
constexpr uint16_t kRing = 64;
constexpr uint64_t kRxDesc = 0x10000, kRxAvail = 0x11000, kRxUsed = 0x12000, kRxBufs = 0x100000;
constexpr uint64_t kTxDesc = 0x20000, kTxAvail = 0x21000, kTxUsed = 0x22000, kTxData = 0x200000;

std::string base;
vmm_fuzz::HostListeners* listeners = nullptr;

void Setup() {
  if (!base.empty()) return;
  char dir[] = "/tmp/vmrun-fuzz-vsock-XXXXXX";
  base = std::string(mkdtemp(dir)) + "/v.sock";
  listeners = new vmm_fuzz::HostListeners(base, 1024, 4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Setup();
  vmm_fuzz::Input in{data, size};
  vmm::GuestMemory mem(kRamBytes);
  Queue rx(256), tx(256);
  vmm_test::ConfigureQueue(rx, kRing, kRxDesc, kRxAvail, kRxUsed);
  vmm_test::ConfigureQueue(tx, kRing, kTxDesc, kTxAvail, kTxUsed);
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
            vmm_test::WriteDescriptor(mem, kTxDesc, head, at, total, 0, 0);
          } else {
            vmm_test::WriteDescriptor(mem, kTxDesc, head, at, cut, 1, static_cast<uint16_t>(head + 1));
            vmm_test::WriteDescriptor(mem, kTxDesc, static_cast<uint16_t>(head + 1), at + cut, total - cut, 0, 0);
          }
          ++tx_slot;
          vmm_test::OfferChain(mem, kTxAvail, kRing, ++tx_idx, head);
          dev.Process(Vsock::kTxQueue, tx, mem);
          break;
        }
        case 1: {  // rx buffers, of a size from the input
          const uint32_t len = kHeaderSize + 1 + in.Take<uint16_t>() % 4096;
          const uint16_t head = static_cast<uint16_t>(rx_slot % kRing);
          vmm_test::WriteDescriptor(mem, kRxDesc, head, kRxBufs + uint64_t{head} * 0x2000, len, 2, 0);
          ++rx_slot;
          vmm_test::OfferChain(mem, kRxAvail, kRing, ++rx_idx, head);
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
  listeners->Drain();
  return 0;
}
