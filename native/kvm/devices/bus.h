// An address bus (port I/O or MMIO): ranges mapped to devices. A vCPU exit is dispatched here;
// an access that hits no device reads as all ones and writes are dropped, as on a real bus.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

namespace vmm::devices {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the base the device was inserted at; `data` holds `len` bytes.
  virtual void Read(uint64_t offset, uint8_t* data, uint32_t len) = 0;
  virtual void Write(uint64_t offset, const uint8_t* data, uint32_t len) = 0;
};

class Bus {
 public:
  // Maps [base, base+len) to `device`; throws VmmError if it overlaps an existing range.
  void Insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> device);
  // Returns false when nothing is mapped at `addr` (the access is then a no-op / reads ones).
  bool Read(uint64_t addr, uint8_t* data, uint32_t len) const;
  bool Write(uint64_t addr, const uint8_t* data, uint32_t len) const;

 private:
  struct Range {
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  // Finds the device whose range holds all of [addr, addr+len); sets `offset` into it.
  BusDevice* Find(uint64_t addr, uint32_t len, uint64_t& offset) const;

  std::map<uint64_t, Range> ranges_;  // by base address
};

}  // namespace vmm::devices
