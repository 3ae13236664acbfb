// virtio-vsock against a driver in test memory and real Unix sockets in a temp dir: connections
// both ways (guest REQUEST, host CONNECT line), data both ways, credit honoured in both
// directions, end of stream after the last byte, RST where the spec wants one, and a hostile
// guest's headers and chains either answered with RST, dropped, or breaking the queue cleanly.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio/queue.h"
#include "devices/virtio/vsock/connection.h"
#include "devices/virtio/vsock/packet.h"
#include "devices/virtio/vsock/vsock.h"
#include "tests/check.h"
#include "tests/virtq_driver.h"
#include "vstate/memory.h"

using vmm::GuestMemory;
using vmm::VmmError;
using vmm::devices::virtio::Queue;
using vmm::devices::virtio::QueueError;
using namespace vmm::devices::virtio::vsock;

namespace {
constexpr uint64_t kMiB = 1 << 20;
constexpr uint16_t kRing = 256;
constexpr uint16_t kNext = 1, kWrite = 2;
constexpr uint64_t kRxDesc = 0x10000, kRxAvail = 0x11000, kRxUsed = 0x12000, kRxBufs = 0x100000;
constexpr uint64_t kTxDesc = 0x20000, kTxAvail = 0x21000, kTxUsed = 0x22000, kTxData = 0x400000;
constexpr uint32_t kRxBufSize = 4096;
constexpr uint64_t kCid = 3;
constexpr uint32_t kGuestPort = 5555, kHostPort = 1024;

struct Packet {
  Header h;
  std::string data;
};

// How a guest lays a packet out in its tx chain.
enum class Layout { kHeaderThenData, kOneBuffer, kSplitHeader };

// A temp dir with the device's socket path in it, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/vmm-vsock-test-XXXXXX";
    path = mkdtemp(name);
  }
  ~TempDir() { (void)!std::system(("rm -rf " + path).c_str()); }
};

int UnixSocket() { return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); }

sockaddr_un Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}

int Listen(const std::string& path) {
  int fd = UnixSocket();
  sockaddr_un addr = Address(path);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  listen(fd, 8);
  return fd;
}

int Connect(const std::string& path) {
  int fd = UnixSocket();
  sockaddr_un addr = Address(path);
  return connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? fd : -1;
}

bool Readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1;
}

int Accept(int listener) { return Readable(listener, 1000) ? accept(listener, nullptr, nullptr) : -1; }

// What the host socket has now, without waiting; `eof` is set when it has ended.
std::string Drain(int fd, bool* eof = nullptr) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      out.append(buf, n);
      continue;
    }
    // A socket closed with bytes of ours unread reports ECONNRESET instead of end of file.
    if (eof) *eof = n == 0 || (n < 0 && errno == ECONNRESET);
    return out;
  }
}

void WriteAll(int fd, const std::string& s) {
  for (size_t done = 0; done < s.size();) {
    ssize_t n = send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += n;
  }
}

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) >> 3);
  return s;
}

// The driver side: rx and tx queues in test memory, and the device under test.
struct Guest {
  GuestMemory mem{64 * kMiB};
  Queue rx{kRing}, tx{kRing};
  uint16_t rx_avail = 0, rx_used_seen = 0, tx_avail = 0;
  TempDir dir;
  std::string base = dir.path + "/v.sock";
  Vsock dev{kCid, base};
  uint32_t buf_alloc = 256 * 1024;  // what this guest advertises
  uint32_t fwd_cnt = 0;

  Guest() {
    vmm_test::ConfigureQueue(rx, kRing, kRxDesc, kRxAvail, kRxUsed);
    vmm_test::ConfigureQueue(tx, kRing, kTxDesc, kTxAvail, kTxUsed);
  }

  Header Make(uint16_t op, uint32_t len = 0, uint32_t flags = 0, uint32_t host_port = kHostPort) const {
    Header h = StreamHeader(op, kCid, kGuestPort, kHostCid, host_port, buf_alloc, fwd_cnt);
    h.len = len;
    h.flags = flags;
    return h;
  }

  // Offers one chain of (address, length, flags) descriptors on the tx queue and runs the device.
  void SendChain(const std::vector<std::tuple<uint64_t, uint32_t, uint16_t>>& descs) {
    for (uint16_t i = 0; i < descs.size(); ++i) {
      auto [addr, len, flags] = descs[i];
      const bool last = i + size_t{1} == descs.size();
      vmm_test::WriteDescriptor(mem, kTxDesc, i, addr, len, flags | (last ? 0 : kNext), i + 1);
    }
    vmm_test::OfferChain(mem, kTxAvail, kRing, ++tx_avail, 0);
    dev.Process(Vsock::kTxQueue, tx, mem);
  }

  void Send(const Header& h, const std::string& payload = "", Layout layout = Layout::kHeaderThenData) {
    uint8_t raw[kHeaderSize];
    EncodeHeader(h, raw);
    mem.Write(kTxData, raw, kHeaderSize, "header");
    const uint64_t data = layout == Layout::kOneBuffer ? kTxData + kHeaderSize : kTxData + 0x1000;
    if (!payload.empty()) mem.Write(data, payload.data(), payload.size(), "payload");
    const uint32_t len = static_cast<uint32_t>(payload.size());
    std::vector<std::tuple<uint64_t, uint32_t, uint16_t>> descs;
    if (layout == Layout::kOneBuffer) {
      descs.push_back({kTxData, kHeaderSize + len, 0});
    } else {
      if (layout == Layout::kSplitHeader) {
        descs.push_back({kTxData, 20, 0});
        descs.push_back({kTxData + 20, kHeaderSize - 20, 0});
      } else {
        descs.push_back({kTxData, kHeaderSize, 0});
      }
      if (len) descs.push_back({data, len, 0});
    }
    SendChain(descs);
  }

  void ProvideRx(int count, uint32_t size = kRxBufSize) {
    for (int i = 0; i < count; ++i) {
      const uint16_t slot = rx_avail % kRing;
      vmm_test::WriteDescriptor(mem, kRxDesc, slot, kRxBufs + slot * uint64_t{kRxBufSize}, size, kWrite);
      vmm_test::OfferChain(mem, kRxAvail, kRing, ++rx_avail, slot);
    }
  }

  // Runs the rx queue and returns the packets the device used since the last call.
  std::vector<Packet> Receive() {
    dev.Process(Vsock::kRxQueue, rx, mem);
    std::vector<Packet> out;
    uint16_t used_idx;
    std::memcpy(&used_idx, mem.Slice(kRxUsed + 2, 2), 2);
    for (; rx_used_seen != used_idx; ++rx_used_seen) {
      uint32_t elem[2];
      std::memcpy(elem, mem.Slice(kRxUsed + 4 + 8 * (rx_used_seen % kRing), 8), 8);
      const uint8_t* buf = mem.Slice(kRxBufs + elem[0] * uint64_t{kRxBufSize}, kRxBufSize);
      Packet p{DecodeHeader(buf), std::string(reinterpret_cast<const char*>(buf) + kHeaderSize, elem[1] - kHeaderSize)};
      out.push_back(p);
    }
    return out;
  }

  // The device handles host socket events, then fills the rx queue, as the event loop would.
  std::vector<Packet> Pump() {
    dev.OnHostEvents();
    return Receive();
  }

  // Pumps until `pred` holds for the packets so far (the host sockets may lag a little).
  std::vector<Packet> PumpUntil(bool (*pred)(const std::vector<Packet>&), int rounds = 50) {
    std::vector<Packet> all;
    for (int i = 0; i < rounds && !pred(all); ++i) {
      if (i) Readable(dev.host_events_fd(), 20);
      for (Packet& p : Pump()) all.push_back(p);
    }
    return all;
  }

  // The guest read these bytes: its fwd_cnt moves on.
  std::string Consume(const std::vector<Packet>& packets) {
    std::string data;
    for (const Packet& p : packets) {
      if (p.h.op == kOpRw) data += p.data;
    }
    fwd_cnt += data.size();
    return data;
  }
};

bool HasOp(const std::vector<Packet>& ps, uint16_t op) {
  for (const Packet& p : ps) {
    if (p.h.op == op) return true;
  }
  return false;
}

// A guest connection from kGuestPort to host port 1024, accepted on the host: `host` is its fd.
struct Established : Guest {
  int listener = -1, host = -1;
  std::vector<Packet> handshake;
  Established() {
    listener = Listen(base + "_1024");
    ProvideRx(64);
    Send(Make(kOpRequest));
    handshake = Pump();
    host = Accept(listener);
  }
  ~Established() {
    close(host);
    close(listener);
  }
};
}  // namespace

TEST(vsock_device_identity_and_config) {
  Guest g;
  CHECK_EQ(g.dev.device_id(), 19u);
  CHECK_EQ(g.dev.queue_max_sizes().size(), size_t{3});
  CHECK_EQ(g.dev.features(), uint64_t{0});  // stream sockets are implied when no bit is offered
  uint64_t cid = 0;
  g.dev.ReadConfig(0, reinterpret_cast<uint8_t*>(&cid), 8);
  CHECK_EQ(cid, kCid);
  uint32_t high = 0xffffffff;
  g.dev.ReadConfig(4, reinterpret_cast<uint8_t*>(&high), 4);
  CHECK_EQ(high, 0u);
}

TEST(vsock_bad_configuration_is_refused_by_name) {
  TempDir dir;
  CHECK_THROWS(Vsock(2, dir.path + "/a.sock"), VmmError, "guest CID must be between 3 and");
  CHECK_THROWS(Vsock(3, dir.path + "/" + std::string(100, 'x')), VmmError, "must fit a Unix socket address");
  Vsock first(3, dir.path + "/taken.sock");
  CHECK_THROWS(Vsock(4, dir.path + "/taken.sock"), VmmError, "Address already in use");
  CHECK_EQ(access((dir.path + "/taken.sock").c_str(), F_OK), 0);
}

TEST(vsock_listening_socket_is_removed_with_the_device) {
  TempDir dir;
  { Vsock dev(3, dir.path + "/gone.sock"); }
  CHECK(access((dir.path + "/gone.sock").c_str(), F_OK) != 0);
}

TEST(vsock_guest_connects_and_data_flows_both_ways) {
  Established g;
  CHECK_EQ(g.handshake.size(), size_t{1});
  const Header& r = g.handshake.at(0).h;
  CHECK_EQ(r.op, kOpResponse);
  CHECK_EQ(r.src_cid, kHostCid);
  CHECK_EQ(r.dst_cid, kCid);
  CHECK_EQ(r.src_port, kHostPort);
  CHECK_EQ(r.dst_port, kGuestPort);
  CHECK_EQ(r.type, kTypeStream);
  CHECK_EQ(r.buf_alloc, Connection::kBufAlloc);
  CHECK(g.host >= 0);

  g.Send(g.Make(kOpRw, 5), "hello");
  CHECK_EQ(Drain(g.host), std::string("hello"));
  g.Send(g.Make(kOpRw, 6), "split!", Layout::kSplitHeader);
  g.Send(g.Make(kOpRw, 3), "one", Layout::kOneBuffer);
  CHECK_EQ(Drain(g.host), std::string("split!one"));

  WriteAll(g.host, "world");
  std::vector<Packet> got = g.PumpUntil([](const std::vector<Packet>& ps) { return HasOp(ps, kOpRw); });
  CHECK_EQ(got.size(), size_t{1});
  CHECK_EQ(got.at(0).h.op, kOpRw);
  CHECK_EQ(got.at(0).h.len, 5u);
  CHECK_EQ(got.at(0).data, std::string("world"));
  CHECK_EQ(got.at(0).h.fwd_cnt, 14u);  // the guest's 14 bytes went to the socket
}

TEST(vsock_refused_connect_gets_rst) {
  Guest g;
  g.ProvideRx(4);
  g.Send(g.Make(kOpRequest, 0, 0, 4321));  // nobody listens on <base>_4321
  std::vector<Packet> got = g.Pump();
  CHECK_EQ(got.size(), size_t{1});
  CHECK_EQ(got.at(0).h.op, kOpRst);
  CHECK_EQ(got.at(0).h.src_port, 4321u);
  CHECK_EQ(got.at(0).h.dst_port, kGuestPort);
}

TEST(vsock_host_never_overruns_guest_credit) {
  Established g;
  g.buf_alloc = 1000;
  g.Send(g.Make(kOpCreditUpdate));
  WriteAll(g.host, Pattern(5000, 1));
  std::vector<Packet> got = g.PumpUntil([](const std::vector<Packet>& ps) { return HasOp(ps, kOpRw); });
  for (int i = 0; i < 5; ++i) {
    for (Packet& p : g.Pump()) got.push_back(p);
  }
  std::string data = g.Consume(got);
  CHECK_EQ(data.size(), size_t{1000});
  // Out of credit with bytes waiting: nothing for epoll to report, so nothing spins.
  CHECK(!g.dev.OnHostEvents());
  CHECK(!Readable(g.dev.host_events_fd()));

  g.Send(g.Make(kOpCreditUpdate));  // the guest read them
  got = g.PumpUntil([](const std::vector<Packet>& ps) { return HasOp(ps, kOpRw); });
  for (Packet& p : g.Pump()) got.push_back(p);
  data += g.Consume(got);
  CHECK_EQ(data.size(), size_t{2000});
  CHECK(data == Pattern(5000, 1).substr(0, 2000));
}

TEST(vsock_without_rx_buffers_host_sockets_wait) {
  Guest g;
  int listener = Listen(g.base + "_1024");
  g.ProvideRx(1);
  g.Send(g.Make(kOpRequest));
  CHECK_EQ(g.Pump().size(), size_t{1});  // RESPONSE: the only rx buffer is used
  int host = Accept(listener);
  const std::string payload = Pattern(20000, 7);
  WriteAll(host, payload);
  g.PumpUntil([](const std::vector<Packet>&) { return false; }, 3);  // finds no rx buffer
  CHECK(!Readable(g.dev.host_events_fd()));  // EPOLLIN is off while the queue is empty: nothing spins

  g.ProvideRx(kRing - 1);
  std::vector<Packet> got = g.Receive();  // the rx doorbell
  for (Packet& p : g.Pump()) got.push_back(p);
  CHECK(g.Consume(got) == payload);
  for (const Packet& p : got) CHECK(p.data.size() <= kRxBufSize - kHeaderSize);
  close(host);
  close(listener);
}

TEST(vsock_guest_that_overruns_its_credit_gets_rst) {
  Established g;
  const std::string chunk = Pattern(kMaxPayload, 3);
  uint64_t sent = 0;
  uint32_t advertised_fwd = 0;
  bool reset = false;
  for (int i = 0; i < 400 && !reset; ++i) {  // the host reads nothing
    g.Send(g.Make(kOpRw, kMaxPayload), chunk);
    sent += kMaxPayload;
    for (const Packet& p : g.Pump()) {
      if (p.h.op == kOpRst) reset = true;
      else advertised_fwd = p.h.fwd_cnt;
    }
  }
  CHECK(reset);
  CHECK(sent - advertised_fwd > Connection::kBufAlloc);  // RST only once the guest went past its credit
  bool eof = false;
  Drain(g.host, &eof);
  CHECK(eof);  // and the host socket is closed
}

TEST(vsock_end_of_stream_comes_after_the_last_byte) {
  Established g;
  // Host -> guest: data, then end of file.
  WriteAll(g.host, "abc");
  shutdown(g.host, SHUT_WR);
  std::vector<Packet> got = g.PumpUntil([](const std::vector<Packet>& ps) { return HasOp(ps, kOpShutdown); });
  CHECK_EQ(got.size(), size_t{2});
  CHECK_EQ(got.at(0).h.op, kOpRw);
  CHECK_EQ(got.at(0).data, std::string("abc"));
  CHECK_EQ(got.at(1).h.op, kOpShutdown);
  CHECK_EQ(got.at(1).h.flags, kShutdownSend);

  // Guest -> host: more than the socket takes at once, then SHUTDOWN(send), within credit.
  const std::string payload = Pattern(Connection::kBufAlloc, 9);
  for (size_t off = 0; off < payload.size(); off += kMaxPayload) {
    g.Send(g.Make(kOpRw, kMaxPayload), payload.substr(off, kMaxPayload));
  }
  g.Send(g.Make(kOpShutdown, 0, kShutdownSend));
  std::string received;
  bool eof = false;
  std::vector<Packet> after;
  for (int i = 0; i < 200 && !eof; ++i) {
    received += Drain(g.host, &eof);
    for (Packet& p : g.Pump()) after.push_back(p);
  }
  CHECK(eof);
  CHECK_EQ(received.size(), payload.size());
  CHECK(received == payload);
  // Both directions ended: the device lets the guest go with RST.
  for (Packet& p : g.Pump()) after.push_back(p);
  CHECK(HasOp(after, kOpRst));
}

TEST(vsock_guest_shutdown_both_ways_then_rst) {
  Established g;
  g.Send(g.Make(kOpRw, 4), "last");
  g.Send(g.Make(kOpShutdown, 0, kShutdownRcv | kShutdownSend));
  std::vector<Packet> got = g.Pump();
  CHECK_EQ(got.size(), size_t{1});
  CHECK_EQ(got.at(0).h.op, kOpRst);
  bool eof = false;
  CHECK_EQ(Drain(g.host, &eof), std::string("last"));
  CHECK(eof);
}

TEST(vsock_credit_request_is_answered) {
  Established g;
  g.Send(g.Make(kOpRw, 4), "data");
  g.Send(g.Make(kOpCreditRequest));
  std::vector<Packet> got = g.Pump();
  CHECK_EQ(got.size(), size_t{1});
  CHECK_EQ(got.at(0).h.op, kOpCreditUpdate);
  CHECK_EQ(got.at(0).h.buf_alloc, Connection::kBufAlloc);
  CHECK_EQ(got.at(0).h.fwd_cnt, 4u);
}

TEST(vsock_guest_rst_and_device_reset_close_host_sockets) {
  {
    Established g;
    g.Send(g.Make(kOpRst));
    CHECK(g.Pump().empty());  // no answer to a RST
    bool eof = false;
    Drain(g.host, &eof);
    CHECK(eof);
  }
  {
    Established g;
    g.dev.Reset();
    bool eof = false;
    Drain(g.host, &eof);
    CHECK(eof);
  }
}

TEST(vsock_hostile_chains_break_the_queue) {
  Established g;
  CHECK_THROWS(g.SendChain({{kTxData, 20, 0}}), QueueError, "shorter than its header");
  CHECK_THROWS(g.Send(g.Make(kOpRw, 10), "short"), QueueError, "does not match");
  CHECK_THROWS(g.Send(g.Make(kOpRw, 2), "longer"), QueueError, "does not match");
  const std::string big(kMaxPayload + 1, 'x');
  CHECK_THROWS(g.Send(g.Make(kOpRw, kMaxPayload + 1), big), QueueError, "above 64 KiB");
  CHECK_THROWS(g.SendChain({{kTxData, kHeaderSize, 0}, {kTxData + 0x1000, 16, kWrite}}), QueueError, "device-writable");
  CHECK(Drain(g.host).empty());  // none of it reached the socket

  // An rx buffer that cannot hold a header and some data.
  Guest h;
  h.ProvideRx(1, kHeaderSize);
  h.Send(h.Make(kOpRequest, 0, 0, 4321));
  CHECK_THROWS(h.Receive(), QueueError, "rx buffer too small");
}

TEST(vsock_hostile_headers_get_rst_or_are_dropped) {
  Established g;
  auto packets_after = [&g](Header h) {
    g.Send(h);
    return g.Pump();
  };
  Header wrong_src = g.Make(kOpRequest, 0, 0, 1024);
  wrong_src.src_cid = 4;
  wrong_src.src_port = 7000;
  CHECK(packets_after(wrong_src).empty());
  CHECK(!Readable(g.listener));  // no connection was made for it
  Header wrong_dst = g.Make(kOpRw);
  wrong_dst.dst_cid = 5;
  CHECK(packets_after(wrong_dst).empty());

  Header bad_type = g.Make(kOpRequest, 0, 0, 1024);
  bad_type.src_port = 7001;
  bad_type.type = 2;  // SEQPACKET, not negotiated
  std::vector<Packet> got = packets_after(bad_type);
  CHECK(got.size() == 1 && got[0].h.op == kOpRst && got[0].h.dst_port == 7001);
  CHECK(!Readable(g.listener));

  Header unknown_conn = g.Make(kOpRw, 0, 0, 999);
  got = packets_after(unknown_conn);
  CHECK(got.size() == 1 && got[0].h.op == kOpRst && got[0].h.src_port == 999);

  // A bad op on a live connection ends it.
  got = packets_after(g.Make(99));
  CHECK(got.size() == 1 && got[0].h.op == kOpRst && got[0].h.src_port == kHostPort);
  bool eof = false;
  Drain(g.host, &eof);
  CHECK(eof);
  // The RST from the connection that no longer exists gets none back.
  CHECK(packets_after(g.Make(kOpRst)).empty());
}

TEST(vsock_payload_on_a_control_packet_ends_the_connection) {
  Established g;
  g.Send(g.Make(kOpShutdown, 3, kShutdownSend), "abc");
  std::vector<Packet> got = g.Pump();
  CHECK(got.size() == 1 && got[0].h.op == kOpRst);
  bool eof = false;
  CHECK(Drain(g.host, &eof).empty());
  CHECK(eof);
}

TEST(vsock_host_connect_line_reaches_a_guest_port) {
  Guest g;
  g.ProvideRx(64);
  int client = Connect(g.base);
  CHECK(client >= 0);
  WriteAll(client, "CONNECT 5000\n");
  std::vector<Packet> got = g.PumpUntil([](const std::vector<Packet>& ps) { return HasOp(ps, kOpRequest); });
  CHECK_EQ(got.size(), size_t{1});
  const Header req = got.at(0).h;
  CHECK_EQ(req.op, kOpRequest);
  CHECK_EQ(req.dst_port, 5000u);
  CHECK_EQ(req.dst_cid, kCid);
  CHECK(req.src_port >= (1u << 30));
  CHECK(!Readable(client));  // no answer before the guest's

  Header resp = g.Make(kOpResponse, 0, 0, req.src_port);
  resp.src_port = 5000;
  g.Send(resp);
  CHECK(Readable(client, 1000));
  CHECK_EQ(Drain(client), "OK " + std::to_string(req.src_port) + "\n");

  Header rw = g.Make(kOpRw, 4, 0, req.src_port);
  rw.src_port = 5000;
  g.Send(rw, "ping");
  CHECK_EQ(Drain(client), std::string("ping"));
  WriteAll(client, "pong");
  got = g.PumpUntil([](const std::vector<Packet>& ps) { return HasOp(ps, kOpRw); });
  CHECK(got.size() == 1 && got[0].data == "pong" && got[0].h.src_port == req.src_port && got[0].h.dst_port == 5000);
  close(client);
}

TEST(vsock_host_connect_refused_or_garbled_closes_the_client) {
  Guest g;
  g.ProvideRx(64);
  // The guest has no listener on 6000: it answers RST, and the client is closed.
  int refused = Connect(g.base);
  WriteAll(refused, "CONNECT 6000\n");
  std::vector<Packet> got = g.PumpUntil([](const std::vector<Packet>& ps) { return HasOp(ps, kOpRequest); });
  CHECK(got.size() == 1 && got[0].h.op == kOpRequest);
  Header rst = g.Make(kOpRst, 0, 0, got.at(0).h.src_port);
  rst.src_port = 6000;
  g.Send(rst);
  bool eof = false;
  CHECK(Readable(refused, 1000));
  CHECK(Drain(refused, &eof).empty());
  CHECK(eof);
  close(refused);

  const std::vector<std::string> garbage = {"HELLO 5000\n", "CONNECT \n", "CONNECT 4294967296\n", "CONNECT 12x\n",
                                           std::string(Vsock::kMaxConnectLine + 8, '7')};
  for (const std::string& line : garbage) {
    int client = Connect(g.base);
    WriteAll(client, line);
    for (int i = 0; i < 20 && !Readable(client); ++i) {
      Readable(g.dev.host_events_fd(), 20);
      CHECK(g.Pump().empty());  // nothing reaches the guest
    }
    eof = false;
    Drain(client, &eof);
    CHECK(eof);
    close(client);
  }
}

// Regression: a killed connection stayed queued for the rx queue, so a guest that connects and
// resets in a loop, never giving rx buffers, grew the host's memory without bound.
TEST(vsock_connect_reset_loop_without_rx_buffers_holds_nothing) {
  Guest g;
  int listener = Listen(g.base + "_1024");
  for (int i = 0; i < 300; ++i) {
    g.Send(g.Make(kOpRequest));  // its RESPONSE waits for an rx buffer
    int host = Accept(listener);
    close(host);
    g.Send(g.Make(kOpRst));
  }
  CHECK_EQ(g.dev.waiting_for_rx(), size_t{0});
  g.ProvideRx(4);
  CHECK(g.Pump().empty());  // nothing owed to connections that are gone
  close(listener);
}

TEST(vsock_snapshot_resets_the_transport_and_holds_rx_until_the_guest_saw_it) {
  constexpr uint64_t kEvDesc = 0x30000, kEvAvail = 0x31000, kEvUsed = 0x32000, kEvBuf = 0x33000;
  Established g;
  std::vector<Queue> queues{g.rx, g.tx, Queue{kRing}};
  vmm_test::ConfigureQueue(queues[Vsock::kEventQueue], kRing, kEvDesc, kEvAvail, kEvUsed);
  vmm_test::WriteDescriptor(g.mem, kEvDesc, 0, kEvBuf, 8, kWrite);
  vmm_test::OfferChain(g.mem, kEvAvail, kRing, 1, 0);
  g.mem.WriteObject<uint32_t>(kEvBuf, 0xffffffff, "event");

  CHECK(g.dev.PrepareSnapshot(queues, g.mem));
  bool eof = false;
  Drain(g.host, &eof);
  CHECK(eof);  // the connection is gone on the host
  uint16_t used_idx;
  uint32_t used_len, event;
  std::memcpy(&used_idx, g.mem.Slice(kEvUsed + 2, 2), 2);
  std::memcpy(&used_len, g.mem.Slice(kEvUsed + 4 + 4, 4), 4);
  std::memcpy(&event, g.mem.Slice(kEvBuf, 4), 4);
  CHECK_EQ(used_idx, 1);
  CHECK_EQ(used_len, 4u);
  CHECK_EQ(event, 0u);  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
  const std::vector<uint8_t> state = g.dev.SaveState();
  CHECK(state == std::vector<uint8_t>({1}));

  // Restored (a fresh device taking the state), a host CONNECT waits until the guest has
  // refilled its event queue, and then goes through.
  Guest r;
  r.dev.RestoreState(state, "vsock");
  r.ProvideRx(64);
  int client = Connect(r.base);
  WriteAll(client, "CONNECT 5000\n");
  CHECK(r.PumpUntil([](const std::vector<Packet>& ps) { return !ps.empty(); }, 5).empty());
  Queue event_queue{kRing};
  r.dev.Process(Vsock::kEventQueue, event_queue, r.mem);
  CHECK(HasOp(r.PumpUntil([](const std::vector<Packet>& ps) { return HasOp(ps, kOpRequest); }), kOpRequest));
  close(client);
  CHECK_THROWS(r.dev.RestoreState({2}, "vsock"), vmm::snapshot::SnapshotError, "vsock holds vsock state of another shape");
}
