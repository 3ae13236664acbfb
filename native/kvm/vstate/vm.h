// A KVM virtual machine: its fd, guest memory slots, in-kernel interrupt controllers and PIT.
#pragma once

#include <cstdint>

#include "fd.h"
#include "kvm.h"
#include "vstate/memory.h"
#include "vstate/vm_state.h"

namespace vmm {

class Vm {
 public:
  // Creates the VM and, in the order KVM requires, its TSS, memory slots, irqchip and PIT.
  Vm(const Kvm& kvm, const GuestMemory& memory);

  int fd() const { return fd_.get(); }
  // Drives an interrupt line of the in-kernel PIC/IOAPIC (edge: raise then lower).
  void PulseIrq(uint32_t irq) const;
  // A guest write of `value` (4 bytes) to MMIO address `addr` signals `fd` inside KVM, with no
  // exit to the VMM: a virtio doorbell.
  void RegisterIoeventfd(uint64_t addr, uint32_t value, int fd) const;
  // A write to `fd` raises interrupt line `gsi`, from any thread, without an ioctl.
  void RegisterIrqfd(int fd, uint32_t gsi) const;

  // The PIT, PICs, IOAPIC and kvmclock, for a snapshot (every vCPU out of KVM_RUN).
  VmState SaveState() const;
  // Puts them back, before the vCPUs are restored.
  void RestoreState(const VmState& state) const;

 private:
  Fd fd_;
};

}  // namespace vmm
