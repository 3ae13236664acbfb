// A 16550A UART on COM1, enough for Linux's 8250 driver: transmit goes to a host fd, receive
// comes from host input through a 64-byte FIFO, interrupts on IRQ 4.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "devices/bus.h"

namespace vmm::devices {

class Serial : public BusDevice {
 public:
  static constexpr uint64_t kCom1Base = 0x3f8;
  static constexpr uint64_t kSize = 8;
  static constexpr uint32_t kCom1Irq = 4;
  static constexpr size_t kRxFifoSize = 64;

  // `raise_irq` pulses the UART's interrupt line; `on_rx_space` says the UART, which had no room
  // for input (FIFO full, or receive not enabled yet), now takes some: the host may offer more.
  Serial(int output_fd, std::function<void()> raise_irq, std::function<void()> on_rx_space);

  void Read(uint64_t offset, uint8_t* data, uint32_t len) override;
  void Write(uint64_t offset, const uint8_t* data, uint32_t len) override;

  // How many bytes of input the UART takes now.
  size_t RxRoom();
  // Queues host input for the guest; returns how many bytes fit (the rest must wait).
  size_t EnqueueInput(const uint8_t* data, size_t len);

  // The registers and the input not yet read, for a snapshot, and their return (SnapshotError
  // naming `what` for bytes of another shape or a FIFO over its size).
  std::vector<uint8_t> SaveState();
  void RestoreState(const std::vector<uint8_t>& bytes, const std::string& what);

 private:
  uint8_t ReadRegister(uint64_t offset);  // reads never raise an interrupt
  // `tx`: the byte to send once the state lock is released.
  void WriteRegister(uint64_t offset, uint8_t value, bool& irq, std::optional<uint8_t>& tx);
  void Transmit(uint8_t byte);
  uint8_t InterruptId() const;
  size_t RxRoomLocked() const;

  const int output_fd_;
  const std::function<void()> raise_irq_;
  const std::function<void()> on_rx_space_;

  std::mutex tx_mutex_;  // held across a whole register write, transmit included (vCPUs only)
  std::mutex mutex_;    // the UART's state; never held across the blocking transmit
  std::deque<uint8_t> rx_fifo_;
  bool thr_interrupt_pending_ = false;
  uint8_t ier_ = 0;
  uint8_t fcr_ = 0;
  uint8_t lcr_ = 0x03;  // 8N1
  uint8_t mcr_ = 0;
  uint8_t scr_ = 0;
  uint8_t dll_ = 0x0c;  // divisor 12: 9600 baud
  uint8_t dlm_ = 0;
};

}  // namespace vmm::devices
