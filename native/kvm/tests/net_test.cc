// virtio-net against a driver in test memory and a socketpair standing in for passt: frames both
// ways in QEMU's framing, a guest without rx buffers holding frames back (never dropping them), a
// guest that floods a socket nobody reads stopping at the socket, and a hostile guest's chains
// and frames (runts, oversized, offloads it was never offered) dropped or breaking the queue
// cleanly. A corrupt stream from passt's side ends the network, not the VMM.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio/net/net.h"
#include "devices/virtio/queue.h"
#include "tests/check.h"
#include "tests/virtq_driver.h"
#include "vstate/memory.h"

using vmm::Fd;
using vmm::GuestMemory;
using vmm::devices::virtio::Net;
using vmm::devices::virtio::Queue;
using vmm::devices::virtio::QueueError;

namespace {
constexpr uint64_t kMiB = 1 << 20;
constexpr uint16_t kRing = 256;
constexpr uint16_t kNext = 1, kWrite = 2;
constexpr uint64_t kRxDesc = 0x10000, kRxAvail = 0x11000, kRxUsed = 0x12000, kRxBufs = 0x100000;
constexpr uint64_t kTxDesc = 0x20000, kTxAvail = 0x21000, kTxUsed = 0x22000, kTxData = 0x800000;
constexpr uint32_t kRxBufSize = 2048;  // Linux's small buffers: an MTU of 1500 and the header
constexpr std::array<uint8_t, 6> kMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

std::string Frame(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) >> 3);
  return s;
}

std::string Framed(const std::string& frame) {
  const uint32_t n = static_cast<uint32_t>(frame.size());
  const char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
  return std::string(len, 4) + frame;
}

// What passt's end has now, without waiting.
std::string Drain(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return out;
    out.append(buf, n);
  }
}

struct Guest {
  GuestMemory mem{64 * kMiB};
  Queue rx{kRing}, tx{kRing};
  uint16_t rx_avail = 0, rx_used_seen = 0, tx_avail = 0;
  int passt = -1;
  Net dev{Pair(), kMac};

  Fd Pair() {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    passt = sv[1];
    return Fd(sv[0]);
  }

  Guest() {
    vmm_test::ConfigureQueue(rx, kRing, kRxDesc, kRxAvail, kRxUsed);
    vmm_test::ConfigureQueue(tx, kRing, kTxDesc, kTxAvail, kTxUsed);
  }
  ~Guest() { close(passt); }

  // Offers a frame on tx after a virtio-net header (`flags`, `gso`), the header in a buffer of
  // its own or in one with the frame; returns whether the device used the chain.
  bool Send(const std::string& frame, bool split = true, uint8_t flags = 0, uint8_t gso = 0) {
    uint8_t header[Net::kHeaderSize] = {flags, gso};
    const uint16_t slot = tx_avail % (kRing / 2);  // two descriptors a frame
    const uint64_t at = kTxData + slot * uint64_t{0x11000};
    mem.Write(at, header, sizeof header, "header");
    if (!frame.empty()) mem.Write(at + Net::kHeaderSize, frame.data(), frame.size(), "frame");
    const uint32_t len = static_cast<uint32_t>(frame.size());
    if (split && len > 0) {
      vmm_test::WriteDescriptor(mem, kTxDesc, slot * 2, at, Net::kHeaderSize, kNext, slot * 2 + 1);
      vmm_test::WriteDescriptor(mem, kTxDesc, slot * 2 + 1, at + Net::kHeaderSize, len, 0);
    } else {
      vmm_test::WriteDescriptor(mem, kTxDesc, slot * 2, at, Net::kHeaderSize + len, 0);
    }
    vmm_test::OfferChain(mem, kTxAvail, kRing, ++tx_avail, slot * 2);
    dev.Process(Net::kTxQueue, tx, mem);
    return UsedIdx(kTxUsed) == tx_avail;
  }

  void ProvideRx(int count, uint32_t size = kRxBufSize) {
    for (int i = 0; i < count; ++i) {
      const uint16_t slot = rx_avail % kRing;
      vmm_test::WriteDescriptor(mem, kRxDesc, slot, kRxBufs + slot * uint64_t{kRxBufSize}, size, kWrite);
      vmm_test::OfferChain(mem, kRxAvail, kRing, ++rx_avail, slot);
    }
  }

  uint16_t UsedIdx(uint64_t used) {
    uint16_t idx;
    std::memcpy(&idx, mem.Slice(used + 2, 2), 2);
    return idx;
  }

  // Lets the device see passt's bytes, as the event loop would, then runs the rx queue; the
  // frames used since the last call (each with its 12-byte header, checked here).
  std::vector<std::string> Receive() {
    pollfd p{dev.events_fd(), POLLIN, 0};
    if (poll(&p, 1, 200) == 1) dev.OnSocketEvents();
    dev.Process(Net::kRxQueue, rx, mem);
    std::vector<std::string> out;
    for (const uint16_t used = UsedIdx(kRxUsed); rx_used_seen != used; ++rx_used_seen) {
      uint32_t elem[2];
      std::memcpy(elem, mem.Slice(kRxUsed + 4 + 8 * (rx_used_seen % kRing), 8), 8);
      const uint8_t* buf = mem.Slice(kRxBufs + elem[0] * uint64_t{kRxBufSize}, kRxBufSize);
      if (elem[1] == 0) {
        out.push_back("");
        continue;
      }
      uint16_t num_buffers;
      std::memcpy(&num_buffers, buf + 10, 2);
      CHECK_EQ(num_buffers, uint16_t{1});
      out.push_back(std::string(reinterpret_cast<const char*>(buf) + Net::kHeaderSize, elem[1] - Net::kHeaderSize));
    }
    return out;
  }
};

void Write(int fd, const std::string& s) { CHECK_EQ(write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
}  // namespace

TEST(net_device_identity_and_mac) {
  Guest g;
  CHECK_EQ(g.dev.device_id(), 1u);
  CHECK_EQ(g.dev.features(), Net::kFeatureMac);
  uint8_t config[8];
  g.dev.ReadConfig(0, config, sizeof config);
  CHECK(std::memcmp(config, kMac.data(), 6) == 0);
  CHECK_EQ(config[6], uint8_t{0});
  uint8_t byte;
  g.dev.ReadConfig(3, &byte, 1);
  CHECK_EQ(byte, uint8_t{0x12});
}

TEST(net_guest_frames_reach_passt_in_qemu_framing) {
  Guest g;
  const std::string a = Frame(60, 1), b = Frame(1514, 2);
  CHECK(g.Send(a));
  CHECK(g.Send(b, false));
  CHECK_EQ(Drain(g.passt), Framed(a) + Framed(b));
}

TEST(net_passt_frames_reach_the_guest) {
  Guest g;
  g.ProvideRx(8);
  const std::string a = Frame(42, 3), b = Frame(1514, 4);
  Write(g.passt, Framed(a) + Framed(b).substr(0, 100));
  std::vector<std::string> got = g.Receive();
  CHECK_EQ(got.size(), size_t{1});
  CHECK(got.size() == 1 && got[0] == a);
  Write(g.passt, Framed(b).substr(100));  // the rest of a frame split across reads
  got = g.Receive();
  CHECK(got.size() == 1 && got[0] == b);
}

TEST(net_without_rx_buffers_frames_wait_and_none_is_lost) {
  Guest g;
  std::string all;
  for (unsigned i = 0; i < 40; ++i) all += Framed(Frame(1000 + i, i));
  Write(g.passt, all);
  CHECK(g.Receive().empty());
  // Given buffers a few at a time, the guest gets every frame, in order.
  std::vector<std::string> got;
  for (int round = 0; round < 40 && got.size() < 40; ++round) {
    g.ProvideRx(7);
    for (std::string& f : g.Receive()) got.push_back(f);
  }
  CHECK_EQ(got.size(), size_t{40});
  bool same = got.size() == 40;
  for (unsigned i = 0; same && i < 40; ++i) same = got[i] == Frame(1000 + i, i);
  CHECK(same);
}

TEST(net_flooding_guest_stops_at_a_full_socket) {
  Guest g;
  int sndbuf = 16384;
  setsockopt(g.passt, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
  // Nobody reads passt's end: the device takes chains only while the socket has room, then
  // leaves the rest in the guest's ring.
  constexpr int kFrames = kRing / 2;
  for (int i = 0; i < kFrames; ++i) g.Send(Frame(1514, i));
  CHECK(g.UsedIdx(kTxUsed) < kFrames);
  // Once passt reads, the device takes the waiting frames on the socket's next room.
  std::string got = Drain(g.passt);
  for (int round = 0; round < kFrames && g.UsedIdx(kTxUsed) < kFrames; ++round) {
    pollfd p{g.dev.events_fd(), POLLIN, 0};
    if (poll(&p, 1, 200) == 1 && g.dev.OnSocketEvents().tx) g.dev.Process(Net::kTxQueue, g.tx, g.mem);
    got += Drain(g.passt);
  }
  CHECK_EQ(g.UsedIdx(kTxUsed), uint16_t{kFrames});
  got += Drain(g.passt);
  std::string want;
  for (int i = 0; i < kFrames; ++i) want += Framed(Frame(1514, i));
  CHECK(got == want);
}

TEST(net_hostile_frames_are_dropped_and_counted) {
  Guest g;
  CHECK(g.Send(Frame(13, 1)));                       // a runt
  CHECK(g.Send(Frame(Net::kMaxFrame + 1, 2)));       // longer than any frame
  CHECK(g.Send(Frame(100, 3), true, 1));             // asks for a checksum offload never offered
  CHECK(g.Send(Frame(100, 4), true, 0, 1));          // asks for segmentation never offered
  CHECK(g.Send("", false));                          // a header and no frame
  CHECK_EQ(Drain(g.passt), std::string());
  const Net::Dropped d = g.dev.dropped();
  CHECK_EQ(d.runts, uint64_t{2});
  CHECK_EQ(d.oversized, uint64_t{1});
  CHECK_EQ(d.offloaded, uint64_t{2});
  CHECK(g.Send(Frame(60, 5)));  // and the device goes on
  CHECK_EQ(Drain(g.passt), Framed(Frame(60, 5)));
}

TEST(net_hostile_chains_break_the_queue) {
  {
    Guest g;  // a tx chain shorter than its header
    vmm_test::WriteDescriptor(g.mem, kTxDesc, 0, kTxData, 5, 0);
    vmm_test::OfferChain(g.mem, kTxAvail, kRing, 1, 0);
    CHECK_THROWS(g.dev.Process(Net::kTxQueue, g.tx, g.mem), QueueError, "virtio-net tx");
  }
  {
    Guest g;  // a tx chain the device would write to
    vmm_test::WriteDescriptor(g.mem, kTxDesc, 0, kTxData, 64, kWrite);
    vmm_test::OfferChain(g.mem, kTxAvail, kRing, 1, 0);
    CHECK_THROWS(g.dev.Process(Net::kTxQueue, g.tx, g.mem), QueueError, "virtio-net tx");
  }
  {
    Guest g;  // an rx chain the device would read from
    Write(g.passt, Framed(Frame(60, 1)));
    vmm_test::WriteDescriptor(g.mem, kRxDesc, 0, kRxBufs, 2048, 0);
    vmm_test::OfferChain(g.mem, kRxAvail, kRing, 1, 0);
    g.dev.OnSocketEvents();
    CHECK_THROWS(g.dev.Process(Net::kRxQueue, g.rx, g.mem), QueueError, "device-readable");
  }
}

TEST(net_rx_buffer_too_small_drops_the_frame_not_the_stream) {
  Guest g;
  g.ProvideRx(1, 64);
  g.ProvideRx(1);
  Write(g.passt, Framed(Frame(1000, 1)) + Framed(Frame(50, 2)));
  std::vector<std::string> got = g.Receive();
  CHECK_EQ(got.size(), size_t{2});
  CHECK(got.size() == 2 && got[0].empty() && got[1] == Frame(50, 2));
  CHECK_EQ(g.dev.dropped().too_big_for_rx, uint64_t{1});
}

TEST(net_runts_from_passt_are_skipped) {
  Guest g;
  g.ProvideRx(4);
  Write(g.passt, Framed(Frame(3, 1)) + Framed("") + Framed(Frame(60, 2)));
  std::vector<std::string> got = g.Receive();
  CHECK(got.size() == 1 && got[0] == Frame(60, 2));
  CHECK_EQ(g.dev.dropped().runts, uint64_t{2});
}

TEST(net_corrupt_length_from_passt_disconnects) {
  Guest g;
  g.ProvideRx(4);
  Write(g.passt, std::string("\x7f\xff\xff\xff", 4) + Frame(100, 1));
  CHECK(g.Receive().empty());
  CHECK(g.dev.disconnected());
  // The guest's frames are then dropped, never stuck in its ring.
  CHECK(g.Send(Frame(60, 1)));
  CHECK(g.Send(Frame(60, 2)));
}

TEST(net_passt_gone_is_a_disconnect) {
  Guest g;
  g.ProvideRx(4);
  Write(g.passt, Framed(Frame(60, 1)));
  close(g.passt);
  g.passt = -1;
  std::vector<std::string> got = g.Receive();
  CHECK(got.size() == 1 && got[0] == Frame(60, 1));  // what came before the end still arrives
  g.Receive();
  CHECK(g.dev.disconnected());
  CHECK(g.Send(Frame(60, 2)));
}
