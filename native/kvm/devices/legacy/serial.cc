#include "devices/legacy/serial.h"

#include <unistd.h>

#include "snapshot/byte_stream.h"

namespace vmm::devices {

namespace {
// Register offsets and bits, from the 16550A data sheet (and Linux include/uapi/linux/serial_reg.h).
constexpr uint64_t kData = 0, kIer = 1, kIir = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;
constexpr uint8_t kIerRxData = 0x01, kIerThrEmpty = 0x02;
constexpr uint8_t kIirNone = 0x01, kIirThrEmpty = 0x02, kIirRxData = 0x04, kIirFifoEnabled = 0xc0;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kLsrDataReady = 0x01, kLsrThrEmpty = 0x20, kLsrIdle = 0x40;
constexpr uint8_t kMsrDefault = 0xb0;  // DCD, DSR, CTS: a cable with someone listening
}  // namespace

Serial::Serial(int output_fd, std::function<void()> raise_irq, std::function<void()> on_rx_space)
    : output_fd_(output_fd), raise_irq_(std::move(raise_irq)), on_rx_space_(std::move(on_rx_space)) {}

void Serial::Read(uint64_t offset, uint8_t* data, uint32_t len) {
  bool room_appeared;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t room_before = RxRoomLocked();
    for (uint32_t i = 0; i < len; ++i) data[i] = i == 0 ? ReadRegister(offset) : 0;
    room_appeared = room_before == 0 && RxRoomLocked() > 0;
  }
  if (room_appeared) on_rx_space_();
}

void Serial::Write(uint64_t offset, const uint8_t* data, uint32_t len) {
  if (len != 1) return;  // the UART's registers are bytes
  // Transmits keep the order of the register writes; the blocking write itself happens outside
  // the state lock, so a host that does not read stalls only the writing vCPU, never the device
  // thread's input.
  std::lock_guard<std::mutex> tx_lock(tx_mutex_);
  bool irq = false, room_appeared;
  std::optional<uint8_t> tx;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t room_before = RxRoomLocked();
    WriteRegister(offset, data[0], irq, tx);
    room_appeared = room_before == 0 && RxRoomLocked() > 0;
  }
  if (tx) Transmit(*tx);
  if (irq) raise_irq_();
  if (room_appeared) on_rx_space_();
}

size_t Serial::RxRoom() {
  std::lock_guard<std::mutex> lock(mutex_);
  return RxRoomLocked();
}

size_t Serial::RxRoomLocked() const {
  // Input waits on the host until the guest's driver can take it: receive interrupts enabled
  // and routed (OUT2, as on a PC). Linux's probe toggles IER and clears the FIFO before it opens
  // the port, so a byte taken earlier would be lost.
  const bool receiving = (ier_ & kIerRxData) && (mcr_ & kMcrOut2);
  return receiving ? kRxFifoSize - rx_fifo_.size() : 0;
}

size_t Serial::EnqueueInput(const uint8_t* data, size_t len) {
  bool irq = false;
  size_t taken = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (taken < len && rx_fifo_.size() < kRxFifoSize) rx_fifo_.push_back(data[taken++]);
    irq = taken > 0 && (ier_ & kIerRxData);
  }
  if (irq) raise_irq_();
  return taken;
}

uint8_t Serial::InterruptId() const {
  if ((ier_ & kIerRxData) && !rx_fifo_.empty()) return kIirRxData;
  if ((ier_ & kIerThrEmpty) && thr_interrupt_pending_) return kIirThrEmpty;
  return kIirNone;
}

uint8_t Serial::ReadRegister(uint64_t offset) {
  switch (offset) {
    case kData: {
      if (lcr_ & kLcrDlab) return dll_;
      if (rx_fifo_.empty()) return 0;
      uint8_t byte = rx_fifo_.front();
      rx_fifo_.pop_front();
      return byte;
    }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIir: {
      uint8_t id = InterruptId();
      if (id == kIirThrEmpty) thr_interrupt_pending_ = false;  // reading IIR acknowledges THRE
      return id | ((fcr_ & 1) ? kIirFifoEnabled : 0);
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return kLsrThrEmpty | kLsrIdle | (rx_fifo_.empty() ? 0 : kLsrDataReady);
    case kMsr:
      // In loopback, the modem status lines mirror the control lines (DTR->DSR, RTS->CTS, ...).
      return (mcr_ & kMcrLoop) ? static_cast<uint8_t>(((mcr_ & 0x1) << 5) | ((mcr_ & 0x2) << 3) |
                                                      ((mcr_ & 0x4) << 4) | ((mcr_ & 0x8) << 4))
                               : kMsrDefault;
    case kScr:
      return scr_;
    default:
      return 0;
  }
}

void Serial::WriteRegister(uint64_t offset, uint8_t value, bool& irq, std::optional<uint8_t>& tx) {
  switch (offset) {
    case kData:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
      } else if (mcr_ & kMcrLoop) {
        if (rx_fifo_.size() < kRxFifoSize) rx_fifo_.push_back(value);
        irq = ier_ & kIerRxData;
      } else {
        tx = value;
        thr_interrupt_pending_ = true;
        irq = ier_ & kIerThrEmpty;
      }
      break;
    case kIer:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
      } else {
        // Like a real 16550 (and QEMU): enabling THRE while the holding register is empty
        // raises it at once. Linux's 8250 startup tests for exactly this.
        const bool thre_enabled = !(ier_ & kIerThrEmpty) && (value & kIerThrEmpty);
        ier_ = value & 0x0f;
        if (thre_enabled) thr_interrupt_pending_ = true;
        irq = thre_enabled || ((ier_ & kIerRxData) && !rx_fifo_.empty());
      }
      break;
    case kIir:  // FCR when written
      fcr_ = value;
      if (value & 0x02) rx_fifo_.clear();
      break;
    case kLcr:
      lcr_ = value;
      break;
    case kMcr:
      mcr_ = value & 0x1f;
      break;
    case kScr:
      scr_ = value;
      break;
    default:
      break;  // LSR and MSR are read-only
  }
}

void Serial::Transmit(uint8_t byte) {
  // A blocking write: a host that does not read stalls the guest's console, it never loses bytes.
  // It fails only when nobody reads any more (EPIPE) or the VMM is stopping this vCPU (EINTR);
  // the byte is then dropped.
  (void)!write(output_fd_, &byte, 1);
}

std::vector<uint8_t> Serial::SaveState() {
  std::lock_guard<std::mutex> lock(mutex_);
  snapshot::ByteWriter w;
  for (uint8_t r : {ier_, fcr_, lcr_, mcr_, scr_, dll_, dlm_, static_cast<uint8_t>(thr_interrupt_pending_)}) w.Put(r);
  w.PutVector(std::vector<uint8_t>(rx_fifo_.begin(), rx_fifo_.end()));
  return std::move(w.bytes());
}

void Serial::RestoreState(const std::vector<uint8_t>& bytes, const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  snapshot::ByteReader r(bytes.data(), bytes.size(), what);
  for (uint8_t* reg : {&ier_, &fcr_, &lcr_, &mcr_, &scr_, &dll_, &dlm_}) *reg = r.Get<uint8_t>();
  thr_interrupt_pending_ = r.Get<uint8_t>() != 0;
  const std::vector<uint8_t> fifo = r.GetBytes();
  r.ExpectEnd();
  if (fifo.size() > kRxFifoSize) throw snapshot::SnapshotError(what + " holds more input than the UART's FIFO");
  rx_fifo_.assign(fifo.begin(), fifo.end());
}

}  // namespace vmm::devices
