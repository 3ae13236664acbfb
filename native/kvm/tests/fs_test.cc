// virtio-fs as a vhost-user front end, against a back end played by a thread on a socketpair: the
// messages virtiofsd gets (owner, features, the memfd's memory table, each ring's layout as this
// process's addresses, its call and kick eventfds) in the order the protocol wants; a reset
// stopping the rings; a back end that answers wrongly, not at all or without virtio 1 refused
// with an error. Guest RAM as a sealed memfd: what the VMM writes, a back end mapping the fd sees.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "devices/virtio/fs/fs.h"
#include "devices/virtio/queue.h"
#include "error.h"
#include "event_loop.h"
#include "tests/check.h"
#include "tests/virtq_driver.h"
#include "vstate/memory.h"

using vmm::Fd;
using vmm::GuestMemory;
using vmm::VmmError;
using vmm::devices::virtio::Fs;
using vmm::devices::virtio::Queue;

namespace {
constexpr uint64_t kMiB = 1 << 20;
constexpr uint32_t kGetFeatures = 1, kSetFeatures = 2, kSetOwner = 3, kSetMemTable = 5, kSetVringNum = 8,
                   kSetVringAddr = 9, kSetVringBase = 10, kGetVringBase = 11, kSetVringKick = 12,
                   kSetVringCall = 13;

struct Message {
  uint32_t request = 0, flags = 0;
  std::string payload;
  std::vector<int> fds;
  uint64_t U64(size_t at) const {
    uint64_t v = 0;
    if (payload.size() >= at + 8) std::memcpy(&v, payload.data() + at, 8);
    return v;
  }
  uint32_t U32(size_t at) const {
    uint32_t v = 0;
    if (payload.size() >= at + 4) std::memcpy(&v, payload.data() + at, 4);
    return v;
  }
};

// The back end: records every message, answers GET_FEATURES with `features` and GET_VRING_BASE
// with the ring's state, unless `reply` says otherwise.
struct Backend {
  int fd = -1;
  uint64_t features = (uint64_t{1} << 32) | (uint64_t{1} << 30);
  std::string (*reply)(const Message&) = nullptr;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Message> got;
  std::thread thread;

  Fd Start() {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    fd = sv[1];
    thread = std::thread([this] { Serve(); });
    return Fd(sv[0]);
  }
  ~Backend() {
    shutdown(fd, SHUT_RDWR);
    if (thread.joinable()) thread.join();
    close(fd);
    for (Message& m : got)
      for (int f : m.fds) close(f);
  }

  void Serve() {
    for (;;) {
      uint32_t header[3];
      iovec iov{header, sizeof header};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      if (recvmsg(fd, &msg, MSG_WAITALL) != sizeof header) return;
      Message m{header[0], header[1], std::string(header[2], '\0'), {}};
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; ++i) {
          int f;
          std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
          m.fds.push_back(f);
        }
      }
      if (header[2] && recv(fd, m.payload.data(), header[2], MSG_WAITALL) != static_cast<ssize_t>(header[2])) return;
      std::string answer;
      if (reply) {
        answer = reply(m);
      } else if (m.request == kGetFeatures) {
        answer = Reply(kGetFeatures, &features, 8);
      } else if (m.request == kGetVringBase) {
        answer = Reply(kGetVringBase, m.payload.data(), 8);
      }
      // MSG_NOSIGNAL: a front end that refused an earlier reply may have closed its end already.
      if (!answer.empty()) (void)!send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      std::lock_guard<std::mutex> lock(mutex);
      got.push_back(std::move(m));
      changed.notify_all();
    }
  }

  static std::string Reply(uint32_t request, const void* payload, uint32_t size, uint32_t flags = 0x5) {
    const uint32_t header[3] = {request, flags, size};
    return std::string(reinterpret_cast<const char*>(header), sizeof header) +
           std::string(static_cast<const char*>(payload), size);
  }

  // Waits until `n` messages have come; the requests of all of them.
  std::vector<uint32_t> Requests(size_t n) {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait_for(lock, std::chrono::seconds(5), [&] { return got.size() >= n; });
    std::vector<uint32_t> out;
    for (const Message& m : got) out.push_back(m.request);
    return out;
  }
};

std::vector<uint32_t> Tail(const std::vector<uint32_t>& v, size_t from) {
  return from < v.size() ? std::vector<uint32_t>(v.begin() + from, v.end()) : std::vector<uint32_t>{};
}
}  // namespace

TEST(guest_memory_as_a_sealed_memfd_is_shared) {
  GuestMemory mem(64 * kMiB, GuestMemory::Backing::kSharedMemfd);
  CHECK(mem.shared_fd() >= 0);
  mem.Write(0x1000, "hello", 5, "test");
  void* other = mmap(nullptr, 64 * kMiB, PROT_READ, MAP_SHARED, mem.shared_fd(), 0);
  CHECK(other != MAP_FAILED);
  if (other != MAP_FAILED) {
    CHECK(std::memcmp(static_cast<uint8_t*>(other) + 0x1000, "hello", 5) == 0);
    munmap(other, 64 * kMiB);
  }
  // A back end cannot shrink it under the VMM.
  CHECK(ftruncate(mem.shared_fd(), 4096) < 0);
  CHECK(mem.FileOffset(mem.regions()[0]) == 0);
  GuestMemory plain(64 * kMiB);
  CHECK(plain.shared_fd() < 0);
}

TEST(fs_handshake_and_memory_table) {
  GuestMemory mem(64 * kMiB, GuestMemory::Backing::kSharedMemfd);
  Backend b;
  Fs dev(b.Start(), "share0", mem);
  const std::vector<uint32_t> reqs = b.Requests(4);
  CHECK((reqs == std::vector<uint32_t>{kSetOwner, kGetFeatures, kSetFeatures, kSetMemTable}));
  std::lock_guard<std::mutex> lock(b.mutex);
  if (b.got.size() < 4) return;
  // The guest was offered VERSION_1 alone; so is the back end.
  CHECK_EQ(b.got[2].U64(0), uint64_t{1} << 32);
  const Message& table = b.got[3];
  CHECK_EQ(table.U32(0), uint32_t{1});
  CHECK_EQ(table.payload.size(), size_t{8 + 32});
  CHECK_EQ(table.U64(8), uint64_t{0});                                          // guest address
  CHECK_EQ(table.U64(16), 64 * kMiB);                                           // size
  CHECK_EQ(table.U64(24), reinterpret_cast<uint64_t>(mem.regions()[0].host));   // this process's address
  CHECK_EQ(table.U64(32), uint64_t{0});                                         // offset in the memfd
  CHECK_EQ(table.fds.size(), size_t{1});
}

TEST(fs_config_space_has_the_tag_and_one_request_queue) {
  GuestMemory mem(64 * kMiB, GuestMemory::Backing::kSharedMemfd);
  Backend b;
  Fs dev(b.Start(), "vol1", mem);
  uint8_t config[40];
  dev.ReadConfig(0, config, sizeof config);
  CHECK(std::memcmp(config, "vol1\0\0", 6) == 0);
  uint32_t queues;
  std::memcpy(&queues, config + 36, 4);
  CHECK_EQ(queues, uint32_t{1});
  CHECK_EQ(dev.device_id(), uint32_t{26});
  CHECK_EQ(dev.queue_max_sizes().size(), size_t{2});
  // Reads past the end or straddling it give zeros, never other memory.
  uint8_t past[8];
  dev.ReadConfig(38, past, sizeof past);
  CHECK(past[2] == 0 && past[7] == 0);
}

TEST(fs_bad_tags_and_back_ends_are_refused) {
  GuestMemory mem(64 * kMiB, GuestMemory::Backing::kSharedMemfd);
  {
    Backend b;
    CHECK_THROWS(Fs(b.Start(), std::string(37, 'x'), mem), VmmError, "1 to 36 bytes");
  }
  {
    Backend b;
    CHECK_THROWS(Fs(b.Start(), "", mem), VmmError, "1 to 36 bytes");
  }
  {
    Backend b;
    b.features = 0;
    CHECK_THROWS(Fs(b.Start(), "t", mem), VmmError, "VIRTIO_F_VERSION_1");
  }
  {
    Backend b;
    b.reply = [](const Message& m) {
      const uint64_t f = uint64_t{1} << 32;
      return Backend::Reply(m.request == kGetFeatures ? kSetOwner : 0, &f, 8);
    };
    CHECK_THROWS(Fs(b.Start(), "t", mem), VmmError, "malformed vhost-user reply");
  }
  {
    Backend b;
    b.reply = [](const Message& m) {
      const uint64_t f = uint64_t{1} << 32;
      return m.request == kGetFeatures ? Backend::Reply(kGetFeatures, &f, 4) : std::string();
    };
    CHECK_THROWS(Fs(b.Start(), "t", mem), VmmError, "malformed vhost-user reply");
  }
  {
    Backend b;
    b.reply = [](const Message& m) {
      const uint64_t f = uint64_t{1} << 32;
      return m.request == kGetFeatures ? Backend::Reply(kGetFeatures, &f, 8, 0x1) : std::string();  // no reply flag
    };
    CHECK_THROWS(Fs(b.Start(), "t", mem), VmmError, "malformed vhost-user reply");
  }
  {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    close(sv[1]);
    CHECK_THROWS(Fs(Fd(sv[0]), "t", mem), VmmError, "");
  }
  GuestMemory plain(64 * kMiB);
  Backend b;
  CHECK_THROWS(Fs(b.Start(), "t", plain), VmmError, "not shared");
}

TEST(fs_driver_ok_hands_the_rings_over_and_reset_stops_them) {
  GuestMemory mem(64 * kMiB, GuestMemory::Backing::kSharedMemfd);
  Backend b;
  Fs dev(b.Start(), "share", mem);
  Fd doorbells[2] = {Fd(eventfd(0, EFD_CLOEXEC)), Fd(eventfd(0, EFD_CLOEXEC))};
  CHECK(dev.TakeDoorbell(0, doorbells[0].get()));
  CHECK(dev.TakeDoorbell(1, doorbells[1].get()));
  CHECK(!dev.TakeDoorbell(2, doorbells[1].get()));
  std::vector<uint16_t> processed;
  std::mutex processed_mutex;
  vmm::EventLoop loop([](const std::string&) {});
  dev.Activate(loop, [&](uint16_t q) {
    std::lock_guard<std::mutex> lock(processed_mutex);
    processed.push_back(q);
  });
  loop.Start();

  std::vector<Queue> queues{Queue(Fs::kQueueSize), Queue(Fs::kQueueSize)};
  vmm_test::ConfigureQueue(queues[0], 64, 0x10000, 0x11000, 0x12000);
  vmm_test::ConfigureQueue(queues[1], 128, 0x20000, 0x21000, 0x22000);
  dev.DriverReady(queues);
  const size_t before = 4;
  std::vector<uint32_t> per_ring{kSetVringNum, kSetVringAddr, kSetVringBase, kSetVringCall, kSetVringKick};
  std::vector<uint32_t> want = per_ring;
  want.insert(want.end(), per_ring.begin(), per_ring.end());
  CHECK((Tail(b.Requests(before + 10), before) == want));
  std::vector<int> calls;
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    if (b.got.size() >= before + 10) {
      const Message& num = b.got[before + 5];
      CHECK_EQ(num.U32(0), uint32_t{1});
      CHECK_EQ(num.U32(4), uint32_t{128});
      const Message& addr = b.got[before + 6];
      CHECK_EQ(addr.U64(8), reinterpret_cast<uint64_t>(mem.Slice(0x20000, 1)));   // desc
      CHECK_EQ(addr.U64(16), reinterpret_cast<uint64_t>(mem.Slice(0x22000, 1)));  // used
      CHECK_EQ(addr.U64(24), reinterpret_cast<uint64_t>(mem.Slice(0x21000, 1)));  // avail
      CHECK_EQ(b.got[before + 3].fds.size(), size_t{1});
      CHECK_EQ(b.got[before + 4].fds.size(), size_t{1});
      calls = {b.got[before + 3].fds[0], b.got[before + 8].fds[0]};
      // The kick fd is the doorbell itself: a guest's notify reaches the back end directly.
      uint64_t one = 1;
      CHECK_EQ(write(doorbells[1].get(), &one, 8), ssize_t{8});
      pollfd p{b.got[before + 9].fds[0], POLLIN, 0};
      CHECK_EQ(poll(&p, 1, 1000), 1);
    }
  }
  // The back end's "used" on queue 1 becomes that queue's interrupt.
  if (calls.size() == 2) {
    uint64_t one = 1;
    CHECK_EQ(write(calls[1], &one, 8), ssize_t{8});
    for (int i = 0; i < 100; ++i) {
      {
        std::lock_guard<std::mutex> lock(processed_mutex);
        if (!processed.empty()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard<std::mutex> lock(processed_mutex);
    CHECK((processed == std::vector<uint16_t>{1}));
  }
  dev.Reset();
  CHECK((Tail(b.Requests(before + 12), before + 10) == std::vector<uint32_t>{kGetVringBase, kGetVringBase}));
  // A queue the driver did not make ready is not handed over.
  queues[0].ready = false;
  dev.DriverReady(queues);
  CHECK((Tail(b.Requests(before + 17), before + 12) == per_ring));
  loop.Stop();
}
