// The 16550A UART as Linux's 8250 driver drives it: transmit to a host fd, receive through a
// 64-byte FIFO that takes host input only once the guest's driver receives.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "devices/legacy/serial.h"
#include "snapshot/byte_stream.h"
#include "tests/check.h"

using vmm::devices::Serial;

namespace {
constexpr uint64_t kData = 0, kIer = 1, kIir = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;

struct Uart {
  int pipe_fds[2] = {-1, -1};
  int irqs = 0;
  int rx_space = 0;
  Serial* serial = nullptr;

  Uart() {
    if (pipe2(pipe_fds, O_CLOEXEC) == 0) fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    serial = new Serial(pipe_fds[1], [this] { ++irqs; }, [this] { ++rx_space; });
  }
  ~Uart() {
    delete serial;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
  }
  uint8_t In(uint64_t offset) {
    uint8_t b = 0x5a;
    serial->Read(offset, &b, 1);
    return b;
  }
  void Out(uint64_t offset, uint8_t value) { serial->Write(offset, &value, 1); }
  std::string Drain() {
    std::string s;
    char buf[256];
    ssize_t n;
    while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0) s.append(buf, n);
    return s;
  }
  void EnableReceive() {
    Out(kIer, 0x01);
    Out(kMcr, 0x08);
  }
};
}  // namespace

TEST(serial_transmit) {
  Uart u;
  CHECK(u.pipe_fds[0] >= 0);
  u.Out(kData, 'h');
  u.Out(kData, 'i');
  u.Out(kData, '\n');
  CHECK_EQ(u.Drain(), std::string("hi\n"));
  CHECK_EQ(u.In(kLsr), uint8_t{0x60});  // THRE | TEMT, no data ready
  CHECK_EQ(u.In(kIir), uint8_t{0x01});  // nothing pending
  CHECK_EQ(u.irqs, 0);                  // THRE interrupt not enabled
  const uint8_t two[2] = {'x', 'y'};
  u.serial->Write(kData, two, 2);  // not a byte access: ignored
  CHECK_EQ(u.Drain(), std::string(""));
  CHECK_EQ(u.In(kMsr), uint8_t{0xb0});  // DCD, DSR, CTS
  u.Out(kScr, 0x5c);
  CHECK_EQ(u.In(kScr), uint8_t{0x5c});
  CHECK_EQ(u.In(kLcr), uint8_t{0x03});  // 8N1 at reset
}

TEST(serial_thre_interrupt) {
  Uart u;
  u.Out(kIer, 0x02);  // enabling THRE with the holding register empty raises it at once
  CHECK_EQ(u.irqs, 1);
  CHECK_EQ(u.In(kIer), uint8_t{0x02});
  CHECK_EQ(u.In(kIir), uint8_t{0x02});
  CHECK_EQ(u.In(kIir), uint8_t{0x01});  // reading IIR acknowledged it
  u.Out(kIer, 0x02);  // already enabled: no new edge
  CHECK_EQ(u.irqs, 1);
  u.Out(kData, 'a');  // each transmitted byte empties THR again
  CHECK_EQ(u.irqs, 2);
  CHECK_EQ(u.In(kIir), uint8_t{0x02});
  CHECK_EQ(u.In(kIir), uint8_t{0x01});
  u.Out(kIir, 0x01);  // FCR: FIFO on, IIR reports it in bits 7:6
  CHECK_EQ(u.In(kIir), uint8_t{0xc1});
  u.Out(kIer, 0x00);
  u.Out(kData, 'b');
  CHECK_EQ(u.irqs, 2);
  CHECK_EQ(u.In(kIir), uint8_t{0xc1});
  CHECK_EQ(u.Drain(), std::string("ab"));
}

TEST(serial_rx_room_waits_for_driver) {
  Uart u;
  CHECK_EQ(u.serial->RxRoom(), size_t{0});
  u.Out(kIer, 0x01);  // RDA without OUT2
  CHECK_EQ(u.serial->RxRoom(), size_t{0});
  CHECK_EQ(u.rx_space, 0);
  u.Out(kIer, 0x00);
  u.Out(kMcr, 0x08);  // OUT2 without RDA
  CHECK_EQ(u.serial->RxRoom(), size_t{0});
  CHECK_EQ(u.rx_space, 0);
  u.Out(kIer, 0x01);  // now both: room appears, the host is told
  CHECK_EQ(u.serial->RxRoom(), size_t{64});
  CHECK_EQ(u.rx_space, 1);
  u.Out(kIer, 0x01);  // no change, no second call
  CHECK_EQ(u.rx_space, 1);
  u.Out(kMcr, 0x00);
  CHECK_EQ(u.serial->RxRoom(), size_t{0});
  u.Out(kMcr, 0x0b);  // DTR | RTS | OUT2
  CHECK_EQ(u.rx_space, 2);
}

TEST(serial_receive) {
  Uart u;
  u.EnableReceive();
  const int irqs = u.irqs;
  CHECK_EQ(u.In(kLsr) & 0x01, 0);
  const uint8_t msg[] = {'a', 'b', 'c'};
  CHECK_EQ(u.serial->EnqueueInput(msg, 3), size_t{3});
  CHECK_EQ(u.irqs, irqs + 1);
  CHECK_EQ(u.serial->RxRoom(), size_t{61});
  CHECK_EQ(u.In(kLsr), uint8_t{0x61});  // data ready
  CHECK_EQ(u.In(kIir), uint8_t{0x04});  // received data available
  CHECK_EQ(u.In(kData), uint8_t{'a'});
  CHECK_EQ(u.In(kData), uint8_t{'b'});
  CHECK_EQ(u.In(kLsr) & 0x01, 0x01);
  CHECK_EQ(u.In(kData), uint8_t{'c'});
  CHECK_EQ(u.In(kLsr), uint8_t{0x60});
  CHECK_EQ(u.In(kIir), uint8_t{0x01});
  CHECK_EQ(u.In(kData), uint8_t{0});  // empty FIFO reads 0
  CHECK_EQ(u.serial->RxRoom(), size_t{64});
}

TEST(serial_full_fifo_then_drain) {
  Uart u;
  u.EnableReceive();
  CHECK_EQ(u.rx_space, 1);
  uint8_t data[80];
  for (int i = 0; i < 80; ++i) data[i] = static_cast<uint8_t>(i);
  CHECK_EQ(u.serial->EnqueueInput(data, 80), size_t{64});  // the rest waits on the host
  CHECK_EQ(u.serial->RxRoom(), size_t{0});
  CHECK_EQ(u.serial->EnqueueInput(data + 64, 16), size_t{0});
  CHECK_EQ(u.rx_space, 1);
  CHECK_EQ(u.In(kData), uint8_t{0});  // the first byte frees a slot: the host may send more
  CHECK_EQ(u.rx_space, 2);
  CHECK_EQ(u.serial->RxRoom(), size_t{1});
  CHECK_EQ(u.In(kData), uint8_t{1});
  CHECK_EQ(u.rx_space, 2);  // only when room appears, not on every read
  CHECK_EQ(u.serial->EnqueueInput(data + 64, 16), size_t{2});
  bool in_order = true;
  for (int i = 2; i < 66; ++i) in_order = in_order && u.In(kData) == i;
  CHECK(in_order);
  CHECK_EQ(u.In(kLsr) & 0x01, 0);

  // FCR bit 1 clears the receive FIFO (the 8250 probe does this); freed room is announced.
  CHECK_EQ(u.serial->EnqueueInput(data, 80), size_t{64});
  const int before = u.rx_space;
  u.Out(kIir, 0x02);
  CHECK_EQ(u.In(kLsr) & 0x01, 0);
  CHECK_EQ(u.serial->RxRoom(), size_t{64});
  CHECK_EQ(u.rx_space, before + 1);
  CHECK_EQ(u.In(kData), uint8_t{0});
}

TEST(serial_dlab) {
  Uart u;
  u.Out(kIer, 0x01);
  u.Out(kLcr, 0x83);  // DLAB on
  CHECK_EQ(u.In(kData), uint8_t{0x0c});  // divisor 12 at reset: 9600 baud
  CHECK_EQ(u.In(kIer), uint8_t{0x00});
  u.Out(kData, 0x01);  // divisor 1: 115200 baud
  u.Out(kIer, 0x02);
  CHECK_EQ(u.In(kData), uint8_t{0x01});
  CHECK_EQ(u.In(kIer), uint8_t{0x02});
  CHECK_EQ(u.Drain(), std::string(""));  // divisor writes are not transmitted
  CHECK_EQ(u.irqs, 0);                   // nor IER writes
  u.Out(kLcr, 0x03);
  CHECK_EQ(u.In(kIer), uint8_t{0x01});   // IER as it was
  u.Out(kData, 'z');
  CHECK_EQ(u.Drain(), std::string("z"));
  u.Out(kLcr, 0x83);
  CHECK_EQ(u.In(kData), uint8_t{0x01});  // the divisor survived
  CHECK_EQ(u.In(kIer), uint8_t{0x02});
}

TEST(serial_loopback) {
  Uart u;
  u.Out(kIer, 0x01);
  u.Out(kMcr, 0x1f);  // loop with DTR, RTS, OUT1, OUT2
  CHECK_EQ(u.In(kMsr) & 0xf0, 0xf0);
  u.Out(kData, 0x55);
  CHECK_EQ(u.Drain(), std::string(""));  // nothing leaves the UART
  CHECK_EQ(u.In(kData), uint8_t{0x55});
}

// A host that stops reading the console stalls only the vCPU that transmits: input still reaches
// the UART (the device thread's EnqueueInput, another vCPU's register reads) meanwhile.
TEST(serial_blocked_transmit_holds_no_lock) {
  Uart u;
  u.EnableReceive();
  const int size = fcntl(u.pipe_fds[1], F_GETPIPE_SZ);
  {
    std::string fill(size, 'x');
    const int flags = fcntl(u.pipe_fds[1], F_GETFL);
    fcntl(u.pipe_fds[1], F_SETFL, flags | O_NONBLOCK);
    CHECK_EQ(write(u.pipe_fds[1], fill.data(), fill.size()), static_cast<ssize_t>(size));
    fcntl(u.pipe_fds[1], F_SETFL, flags);
  }
  std::atomic<bool> sent{false};
  std::thread vcpu([&] {
    u.Out(kData, 'y');  // blocks: the pipe is full
    sent = true;
  });
  usleep(50 * 1000);
  CHECK(!sent.load());
  const uint8_t input[] = {'i', 'n'};
  CHECK_EQ(u.serial->EnqueueInput(input, 2), size_t{2});  // returns while the vCPU is blocked
  CHECK_EQ(u.In(kLsr) & 0x01, 0x01);
  CHECK_EQ(u.In(kData), uint8_t{'i'});
  const std::string drained = u.Drain();  // the host reads again: the byte goes out
  vcpu.join();
  CHECK(sent.load());
  CHECK_EQ(drained.size() + u.Drain().size(), static_cast<size_t>(size) + 1);
}

TEST(serial_state_restored_into_a_fresh_uart) {
  Uart u;
  u.EnableReceive();
  u.Out(kLcr, 0x1b);  // 8E1
  u.Out(kScr, 0x42);
  const uint8_t input[] = {'o', 'k'};
  CHECK_EQ(u.serial->EnqueueInput(input, 2), size_t{2});
  const std::vector<uint8_t> saved = u.serial->SaveState();

  Uart r;
  r.serial->RestoreState(saved, "serial");
  CHECK_EQ(r.In(kLcr), uint8_t{0x1b});
  CHECK_EQ(r.In(kScr), uint8_t{0x42});
  CHECK_EQ(r.In(kIer), uint8_t{0x01});
  CHECK_EQ(r.In(kLsr) & 0x01, 1);  // data ready: the input came along
  CHECK_EQ(r.In(kData), uint8_t{'o'});
  CHECK_EQ(r.In(kData), uint8_t{'k'});
  std::vector<uint8_t> overfull = saved;
  overfull.resize(8);
  const uint32_t too_many = Serial::kRxFifoSize + 1;
  overfull.insert(overfull.end(), reinterpret_cast<const uint8_t*>(&too_many), reinterpret_cast<const uint8_t*>(&too_many) + 4);
  overfull.resize(overfull.size() + too_many, 'x');
  CHECK_THROWS(r.serial->RestoreState(overfull, "serial"), vmm::snapshot::SnapshotError, "serial holds more input than the UART's FIFO");
  CHECK_THROWS(r.serial->RestoreState({1, 2}, "serial"), vmm::snapshot::SnapshotError, "serial is truncated");
}
