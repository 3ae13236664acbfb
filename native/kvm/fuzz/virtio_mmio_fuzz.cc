// libFuzzer target: a hostile driver against the virtio-mmio transport and each device behind it
// (rng, blk read-only and read-write, vsock, net, and virtio-fs, whose back end's socket only
// answers the handshake: its rings are handed over on the device thread, which does not run here). The input is a program: register writes and reads
// in any order, bytes written anywhere in guest RAM (rings, descriptors, buffers), doorbells, and
// the host side waking vsock, interleaved as vCPU and device threads may interleave them. Guest
// RAM is small and followed by GuestMemory's 4 GiB guard, so a stray access faults under ASan.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "devices/virtio/block/block.h"
#include "devices/virtio/fs/fs.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/net/net.h"
#include "devices/virtio/rng/rng.h"
#include "devices/virtio/vsock/vsock.h"
#include "fuzz/harness.h"
#include "vstate/memory.h"

using namespace vmm::devices::virtio;
using vmm::devices::virtio::vsock::Vsock;

namespace {
constexpr uint64_t kRamBytes = 1 << 20;

std::string temp_dir;
std::string disk_path;
vmm_fuzz::HostListeners* listeners = nullptr;

void Setup() {
  if (!temp_dir.empty()) return;
  char dir[] = "/tmp/vmrun-fuzz-XXXXXX";
  temp_dir = mkdtemp(dir);
  disk_path = temp_dir + "/disk.img";
  const int fd = open(disk_path.c_str(), O_CREAT | O_RDWR, 0600);
  (void)!ftruncate(fd, 64 * 1024 + 100);  // a partial last sector too
  close(fd);
  // Host listeners for the guest to connect to (vsock host ports 1024 and 1025).
  listeners = new vmm_fuzz::HostListeners(temp_dir + "/v.sock", 1024, 2);
}

int net_peer = -1;  // passt's (or virtiofsd's) end of the device's socket, for one input
constexpr uint8_t kDevices = 7, kFs = 6;

std::unique_ptr<VirtioDevice> MakeDevice(uint8_t which, Vsock** host, const vmm::GuestMemory& memory) {
  switch (which % kDevices) {
    case 0: return std::make_unique<Rng>();
    case 1: return std::make_unique<Block>(disk_path, true);
    case 2: return std::make_unique<Block>(disk_path, false);
    case 3:  // layers end to end, with a gap: reads across part boundaries and through zeros
      return std::make_unique<Block>(DiskImage({{disk_path, 0}, {disk_path, 128 * 1024}}, true));
    case 4: {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return std::make_unique<Rng>();
      net_peer = sv[1];
      return std::make_unique<Net>(vmm::Fd(sv[0]), std::array<uint8_t, 6>{2, 0, 0, 0, 0, 1});
    }
    case kFs: {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return std::make_unique<Rng>();
      net_peer = sv[1];
      // GET_FEATURES' reply, VIRTIO_F_VERSION_1, waiting before the device asks.
      const uint32_t header[3] = {1, 5, 8};
      const uint64_t features = uint64_t{1} << 32;
      (void)!write(net_peer, header, sizeof header);
      (void)!write(net_peer, &features, sizeof features);
      return std::make_unique<Fs>(vmm::Fd(sv[0]), "fuzz", memory);
    }
    default: {
      auto v = std::make_unique<Vsock>(3, temp_dir + "/v.sock");
      *host = v.get();
      return v;
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Setup();
  vmm_fuzz::Input in{data, size};
  const uint8_t which = in.Take<uint8_t>();
  vmm::GuestMemory memory(kRamBytes, which % kDevices == kFs ? vmm::GuestMemory::Backing::kSharedMemfd : vmm::GuestMemory::Backing::kPrivate);
  Vsock* host = nullptr;
  MmioTransport transport(memory, MakeDevice(which, &host, memory), [] {});
  uint64_t desc_table = 0, avail_ring = 0;
  uint16_t ring_size = 1, avail_idx = 0;
  auto out = [&](uint64_t offset, uint32_t value) { transport.Write(offset, reinterpret_cast<uint8_t*>(&value), 4); };
  for (int ops = 0; in.left > 0 && ops < 256; ++ops) {
    switch (in.Take<uint8_t>() % 9) {
      case 0: {  // a register write, anywhere in the page
        const uint16_t offset = in.Take<uint16_t>() % MmioTransport::kSize;
        out(offset, in.Take<uint32_t>());
        break;
      }
      case 1: {  // a register read, of any width
        uint8_t buf[8];
        const uint16_t offset = in.Take<uint16_t>() % MmioTransport::kSize;
        transport.Read(offset, buf, 1 + in.Take<uint8_t>() % 8);
        break;
      }
      case 2: {  // bytes anywhere in RAM
        const uint64_t addr = in.Take<uint32_t>() % kRamBytes;
        uint8_t len = in.Take<uint8_t>();
        if (len > in.left) len = static_cast<uint8_t>(in.left);
        if (uint8_t* p = memory.Slice(addr, len)) std::memcpy(p, in.data, len);
        in.data += len, in.left -= len;
        break;
      }
      case 3:  // a doorbell, handled on the device thread
        transport.ProcessQueue(in.Take<uint8_t>() % 4);
        break;
      case 4: {  // Linux's bring-up of every queue, with rings wherever the input says
        out(0x70, 1);
        out(0x70, 3);
        out(0x24, 1);
        out(0x20, 1);
        out(0x24, 0);
        out(0x20, in.Take<uint32_t>());
        out(0x70, 11);
        ring_size = static_cast<uint16_t>(1u << (in.Take<uint8_t>() % 9));
        for (uint32_t q = 0; q < transport.queue_count(); ++q) {
          desc_table = (in.Take<uint16_t>() * uint64_t{16}) % kRamBytes;
          avail_ring = (in.Take<uint16_t>() * uint64_t{2}) % kRamBytes;
          out(0x30, q);
          out(0x38, ring_size);
          out(0x80, static_cast<uint32_t>(desc_table));
          out(0x90, static_cast<uint32_t>(avail_ring));
          out(0xa0, static_cast<uint32_t>((in.Take<uint16_t>() * uint64_t{4}) % kRamBytes));
          out(0x44, 1);
        }
        out(0x70, 15);
        avail_idx = 0;
        break;
      }
      case 5: {  // a descriptor in the last queue's table
        uint8_t d[16];
        const uint16_t index = in.Take<uint16_t>() % ring_size;
        const uint64_t addr = (in.Take<uint8_t>() & 1) ? in.Take<uint64_t>() : uint64_t{in.Take<uint32_t>() % kRamBytes};
        const uint32_t len = in.Take<uint16_t>() | (in.Take<uint8_t>() & 1 ? 0xffff0000u : 0);
        const uint16_t flags = in.Take<uint8_t>() & 7;
        const uint16_t next = in.Take<uint16_t>();
        std::memcpy(d, &addr, 8);
        std::memcpy(d + 8, &len, 4);
        std::memcpy(d + 12, &flags, 2);
        std::memcpy(d + 14, &next, 2);
        if (uint8_t* p = memory.Slice(desc_table + 16 * uint64_t{index}, 16)) std::memcpy(p, d, 16);
        break;
      }
      case 6: {  // a chain made available in the last queue
        const uint16_t head = in.Take<uint16_t>();
        if (uint8_t* p = memory.Slice(avail_ring + 4 + 2 * static_cast<uint64_t>(avail_idx % ring_size), 2)) std::memcpy(p, &head, 2);
        ++avail_idx;
        if (uint8_t* p = memory.Slice(avail_ring + 2, 2)) std::memcpy(p, &avail_idx, 2);
        break;
      }
      case 7:  // the host side of vsock wakes up
        if (host && host->OnHostEvents()) transport.ProcessQueue(Vsock::kRxQueue);
        break;
      default: {  // the device's config space
        uint8_t buf[8] = {};
        const uint16_t offset = static_cast<uint16_t>(0x100 + in.Take<uint8_t>());
        if (in.Take<uint8_t>() & 1) transport.Write(offset, buf, 1 + in.Take<uint8_t>() % 8);
        else transport.Read(offset, buf, 1 + in.Take<uint8_t>() % 8);
        break;
      }
    }
  }
  listeners->Drain();
  if (net_peer >= 0) close(net_peer);
  net_peer = -1;
  return 0;
}
