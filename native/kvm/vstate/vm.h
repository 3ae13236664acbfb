// A KVM virtual machine: its fd, guest memory slots, in-kernel interrupt controllers and PIT.
#pragma once

#include <cstdint>

#include "fd.h"
#include "kvm.h"
#include "vstate/memory.h"

namespace vmm {

class Vm {
 public:
  // Creates the VM and, in the order KVM requires, its TSS, memory slots, irqchip and PIT.
  Vm(const Kvm& kvm, const GuestMemory& memory);

  int fd() const { return fd_.get(); }
  // Drives an interrupt line of the in-kernel PIC/IOAPIC (edge: raise then lower).
  void PulseIrq(uint32_t irq) const;

 private:
  Fd fd_;
};

}  // namespace vmm
