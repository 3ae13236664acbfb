// What KVM holds for the VM itself (the in-kernel PIT, both PICs and the IOAPIC, kvmclock),
// saved and restored in vm.cc, and its encoding in a snapshot section.
#pragma once

#include "kvm_uapi.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vmm {

struct VmState {
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
  kvm_irqchip pic_master{};
  kvm_irqchip pic_slave{};
  kvm_irqchip ioapic{};
};

std::vector<uint8_t> EncodeVmState(const VmState& state);
VmState DecodeVmState(const std::vector<uint8_t>& bytes, const std::string& what);

}  // namespace vmm
