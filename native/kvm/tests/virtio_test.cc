// The split virtqueue and the virtio-mmio transport against a driver that breaks the rules:
// every hostile ring either yields a clean error (and a device that needs a reset) or is
// ignored; nothing reads or writes outside guest RAM. Also the happy path, with virtio-rng.
#include <cstdint>
#include <cstring>
#include <memory>

#include "devices/virtio/mmio.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/rng/rng.h"
#include "snapshot/byte_stream.h"
#include "tests/check.h"
#include "tests/virtq_driver.h"
#include "vstate/memory.h"

using vmm::GuestMemory;
using vmm::devices::virtio::MmioTransport;
using vmm::devices::virtio::Queue;
using vmm::devices::virtio::QueueError;
using vmm::devices::virtio::Rng;

namespace {
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kDesc = 0x10000, kAvail = 0x11000, kUsed = 0x12000, kData = 0x20000;
constexpr uint16_t kSize = 8;
constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;

void WriteDesc(GuestMemory& mem, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
  vmm_test::WriteDescriptor(mem, kDesc, i, addr, len, flags, next);
}

struct Ring {
  GuestMemory mem{64 * kMiB};
  Queue queue{256};
  uint16_t avail_idx = 0;

  Ring() {
    queue.size = kSize;
    queue.ready = true;
    queue.desc_addr = kDesc;
    queue.avail_addr = kAvail;
    queue.used_addr = kUsed;
  }
  void Desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    WriteDesc(mem, i, addr, len, flags, next);
  }
  void Offer(uint16_t head) { vmm_test::OfferChain(mem, kAvail, kSize, ++avail_idx, head); }
  uint16_t UsedIdx() const { uint16_t v; std::memcpy(&v, mem.Slice(kUsed + 2, 2), 2); return v; }
  uint32_t UsedField(uint16_t slot, int field) const {
    uint32_t v;
    std::memcpy(&v, mem.Slice(kUsed + 4 + 8 * slot + 4 * field, 4), 4);
    return v;
  }
};
}  // namespace

TEST(queue_validity) {
  Ring r;
  CHECK(r.queue.IsValid(r.mem));
  r.queue.size = 6;  // not a power of two
  CHECK(!r.queue.IsValid(r.mem));
  r.queue.size = 512;  // above max
  CHECK(!r.queue.IsValid(r.mem));
  r.queue.size = kSize;
  r.queue.desc_addr = kDesc + 8;  // misaligned
  CHECK(!r.queue.IsValid(r.mem));
  r.queue.desc_addr = 64 * kMiB - 16;  // table runs past RAM
  CHECK(!r.queue.IsValid(r.mem));
  r.queue.desc_addr = kDesc;
  r.queue.used_addr = UINT64_MAX - 3;  // wraps
  CHECK(!r.queue.IsValid(r.mem));
}

TEST(queue_pop_and_used) {
  Ring r;
  CHECK(!r.queue.Pop(r.mem).has_value());  // nothing offered
  r.Desc(0, kData, 16, kNext, 1);
  r.Desc(1, kData + 16, 32, kWrite | kNext, 2);
  r.Desc(2, kData + 48, 8, kWrite);
  r.Offer(0);
  auto chain = r.queue.Pop(r.mem);
  CHECK(chain.has_value());
  CHECK_EQ(chain->head, 0);
  CHECK_EQ(chain->readable.size(), 1u);
  CHECK_EQ(chain->writable.size(), 2u);
  CHECK(chain->readable[0].data == r.mem.Slice(kData, 16));
  CHECK_EQ(chain->writable[1].len, 8u);
  r.queue.AddUsed(r.mem, chain->head, 40);
  CHECK_EQ(r.UsedIdx(), 1);
  CHECK_EQ(r.UsedField(0, 0), 0u);
  CHECK_EQ(r.UsedField(0, 1), 40u);
  CHECK(!r.queue.Pop(r.mem).has_value());
}

TEST(queue_hostile_chains) {
  {
    Ring r;  // head out of range
    r.Offer(kSize);
    CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "out of range");
  }
  {
    Ring r;  // next out of range
    r.Desc(0, kData, 8, kNext, 200);
    r.Offer(0);
    CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "out of range");
  }
  {
    Ring r;  // a loop
    r.Desc(0, kData, 8, kNext, 1);
    r.Desc(1, kData, 8, kNext, 0);
    r.Offer(0);
    CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "loops");
  }
  {
    Ring r;  // buffer outside RAM, and one whose end wraps
    r.Desc(0, 64 * kMiB - 4, 8, 0);
    r.Offer(0);
    CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "outside guest memory");
    r.Desc(1, UINT64_MAX - 2, 8, 0);
    r.Offer(1);
    CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "outside guest memory");
  }
  {
    Ring r;  // readable after writable
    r.Desc(0, kData, 8, kWrite | kNext, 1);
    r.Desc(1, kData, 8, 0);
    r.Offer(0);
    CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "readable descriptor after");
  }
  {
    Ring r;  // indirect, never negotiated
    r.Desc(0, kData, 16, kIndirect);
    r.Offer(0);
    CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "indirect");
  }
  {
    Ring r;  // the available index jumps more than a queue ahead
    r.mem.WriteObject<uint16_t>(kAvail + 2, kSize + 1, "avail idx");
    CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "more than a queue ahead");
  }
}

namespace {
struct Transport {
  GuestMemory mem{64 * kMiB};
  int interrupts = 0;
  MmioTransport t{mem, std::make_unique<Rng>(), [this] { ++interrupts; }};

  uint32_t In(uint64_t off) {
    uint32_t v = 0xdeadbeef;
    t.Read(off, reinterpret_cast<uint8_t*>(&v), 4);
    return v;
  }
  void Out(uint64_t off, uint32_t v) { t.Write(off, reinterpret_cast<const uint8_t*>(&v), 4); }
  // The Linux driver's bring-up: ACK, DRIVER, features (VERSION_1 only), FEATURES_OK, queue 0, DRIVER_OK.
  void BringUp(uint64_t desc = kDesc) {
    Out(0x70, 1);
    Out(0x70, 3);
    Out(0x24, 1);
    Out(0x20, 1);  // bit 32: VERSION_1
    Out(0x24, 0);
    Out(0x20, 0);
    Out(0x70, 11);
    Out(0x30, 0);
    Out(0x38, kSize);
    Out(0x80, static_cast<uint32_t>(desc));
    Out(0x84, static_cast<uint32_t>(desc >> 32));
    Out(0x90, kAvail);
    Out(0xa0, kUsed);
    Out(0x44, 1);
    Out(0x70, 15);
  }
};
}  // namespace

TEST(mmio_identity_and_features) {
  Transport x;
  CHECK_EQ(x.In(0x000), 0x74726976u);
  CHECK_EQ(x.In(0x004), 2u);
  CHECK_EQ(x.In(0x008), 4u);  // entropy
  x.Out(0x14, 1);
  CHECK_EQ(x.In(0x010), 1u);  // VERSION_1 in the high half
  x.Out(0x30, 0);
  CHECK_EQ(x.In(0x034), 256u);
  x.Out(0x30, 1);
  CHECK_EQ(x.In(0x034), 0u);  // no second queue
  uint16_t half = 0xabcd;
  x.t.Read(0x000, reinterpret_cast<uint8_t*>(&half), 2);  // not a 32-bit access
  CHECK_EQ(half, 0);
  // A driver without VERSION_1 does not get FEATURES_OK.
  x.Out(0x70, 3);
  x.Out(0x70, 11);
  CHECK_EQ(x.In(0x070), 3u);
}

TEST(mmio_rng_fills_buffers) {
  Transport x;
  x.BringUp();
  CHECK_EQ(x.In(0x070), 15u);
  uint8_t zeros[64] = {};
  x.mem.Write(kData, zeros, 64, "data");
  WriteDesc(x.mem, 0, kData, 64, kWrite);
  x.mem.WriteObject<uint16_t>(kAvail + 4, 0, "avail ring");
  x.mem.WriteObject<uint16_t>(kAvail + 2, 1, "avail idx");
  x.t.ProcessQueue(0);
  CHECK_EQ(x.interrupts, 1);
  CHECK_EQ(x.In(0x060), 1u);  // used buffer
  CHECK(std::memcmp(x.mem.Slice(kData, 64), zeros, 64) != 0);
  uint32_t used_len;
  std::memcpy(&used_len, x.mem.Slice(kUsed + 8, 4), 4);
  CHECK_EQ(used_len, 64u);
  x.Out(0x64, 1);
  CHECK_EQ(x.In(0x060), 0u);
  x.t.ProcessQueue(7);  // no such queue: ignored
  CHECK_EQ(x.interrupts, 1);
}

TEST(mmio_hostile_driver) {
  {
    Transport x;  // a queue outside RAM: the device needs a reset at DRIVER_OK
    x.BringUp(64 * kMiB);
    CHECK(x.In(0x070) & 64);
    CHECK_EQ(x.In(0x060), 2u);
    x.t.ProcessQueue(0);  // a broken device does nothing
    CHECK_EQ(x.In(0x060), 2u);
    x.Out(0x70, 0);  // reset clears it
    CHECK_EQ(x.In(0x070), 0u);
  }
  {
    Transport x;  // a chain that loops, found while processing
    x.BringUp();
    WriteDesc(x.mem, 0, kData, 8, kNext, 0);
    x.mem.WriteObject<uint16_t>(kAvail + 2, 1, "avail idx");
    x.t.ProcessQueue(0);
    CHECK(x.In(0x070) & 64);
    // Queue layout cannot change while the device runs.
    x.Out(0x30, 0);
    x.Out(0x38, 2);
    x.Out(0x70, 0);
    CHECK_EQ(x.In(0x070), 0u);
  }
}

// Regression (a guest rewriting Status): clearing DEVICE_NEEDS_RESET, or any bit, without a reset
// used to be taken, so a queue found broken ran again; then a size of 0 reached `% size`.
TEST(mmio_status_bits_clear_only_by_reset) {
  Transport x;
  x.BringUp(64 * kMiB);  // a queue outside RAM: NEEDS_RESET at DRIVER_OK
  CHECK(x.In(0x070) & 64);
  x.Out(0x70, 15);  // DRIVER_OK again, without NEEDS_RESET
  CHECK(x.In(0x070) & 64);
  x.Out(0x70, 11);  // DRIVER_OK cleared, to reconfigure the queue
  CHECK(x.In(0x070) & 64);
  x.Out(0x30, 0);
  x.Out(0x38, 0);  // refused: the device still runs (and still needs a reset)
  x.t.ProcessQueue(0);
  CHECK(x.In(0x070) & 64);
  x.Out(0x70, 0);  // a reset is the way out
  CHECK_EQ(x.In(0x070), 0u);
  x.BringUp();
  CHECK_EQ(x.In(0x070), 15u);
}

// Regression: the queue's size is checked where it is used, so no order of register writes can
// bring a size of 0 to the ring arithmetic (it divided by zero).
TEST(queue_size_checked_at_every_use) {
  Ring r;
  r.queue.size = 0;
  CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "size");
  CHECK_THROWS(r.queue.AddUsed(r.mem, 0, 0), QueueError, "size");
  r.queue.size = 512;  // above its maximum
  CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "size");
  r.queue.size = kSize;
  CHECK(!r.queue.Pop(r.mem).has_value());
}

// Zero-length descriptors carry nothing and are refused, whichever part of a chain they are in.
TEST(queue_refuses_zero_length_descriptors) {
  Ring r;
  r.Desc(0, kData, 16, kNext, 1);
  r.Desc(1, kData + 16, 0, kWrite);
  r.Offer(0);
  CHECK_THROWS(r.queue.Pop(r.mem), QueueError, "zero-length");
  Ring s;
  s.Desc(0, 64 * kMiB, 0, 0);  // empty, and just past the end of RAM
  s.Offer(0);
  CHECK_THROWS(s.queue.Pop(s.mem), QueueError, "zero-length");
}

TEST(mmio_state_restored_into_a_fresh_transport_goes_on) {
  Transport x;
  x.BringUp();
  WriteDesc(x.mem, 0, kData, 64, kWrite);
  x.mem.WriteObject<uint16_t>(kAvail + 4, 0, "avail ring");
  x.mem.WriteObject<uint16_t>(kAvail + 2, 1, "avail idx");
  x.t.ProcessQueue(0);
  const std::vector<uint8_t> saved = x.t.SaveState();

  // A new transport over the same RAM, as a restore builds one, takes the chain after the first.
  int interrupts = 0;
  MmioTransport restored{x.mem, std::make_unique<Rng>(), [&] { ++interrupts; }};
  restored.RestoreState(saved, "rng");
  uint32_t status = 0;
  restored.Read(0x70, reinterpret_cast<uint8_t*>(&status), 4);
  CHECK_EQ(status, 15u);
  x.mem.WriteObject<uint16_t>(kAvail + 4 + 2, 0, "avail ring");
  x.mem.WriteObject<uint16_t>(kAvail + 2, 2, "avail idx");
  restored.ProcessQueue(0);
  CHECK_EQ(interrupts, 1);
  uint16_t used_idx;
  std::memcpy(&used_idx, x.mem.Slice(kUsed + 2, 2), 2);
  CHECK_EQ(used_idx, 2);  // the second used entry, not the first again

  // What the driver could not have reached is refused.
  std::vector<uint8_t> short_state(saved.begin(), saved.end() - 1);
  CHECK_THROWS(restored.RestoreState(short_state, "rng"), vmm::snapshot::SnapshotError, "rng is truncated");
  MmioTransport other{x.mem, std::make_unique<Rng>(), [] {}};
  std::vector<uint8_t> bad = saved;
  // The queue's size (after status, two selectors, features, queue select, interrupt status, the
  // count and three addresses) made 3: not a power of two while DRIVER_OK is set.
  bad[4 + 4 + 4 + 8 + 4 + 4 + 4 + 24] = 3;
  CHECK_THROWS(other.RestoreState(bad, "rng"), vmm::snapshot::SnapshotError, "rng has a ready queue that is not valid");
}
