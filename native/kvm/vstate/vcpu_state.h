// What KVM holds for one vCPU, saved in the order Firecracker found KVM requires and restored in
// its own (vcpu.cc), and its encoding in a snapshot section. XSAVE is kept as bytes: its size is
// the host's (KVM_CAP_XSAVE2), which the snapshot's fingerprint pins.
#pragma once

#include "kvm_uapi.h"

#include <cstdint>
#include <string>
#include <vector>

namespace vmm {

struct VcpuState {
  kvm_mp_state mp_state{};
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::vector<uint8_t> xsave;
  kvm_xcrs xcrs{};
  kvm_debugregs debugregs{};
  kvm_lapic_state lapic{};
  uint32_t tsc_khz = 0;
  std::vector<kvm_cpuid_entry2> cpuid;
  std::vector<kvm_msr_entry> msrs;
  kvm_vcpu_events events{};
};

std::vector<uint8_t> EncodeVcpuState(const VcpuState& state);
// `what` names the section in errors; a short, long or lying section throws SnapshotError.
VcpuState DecodeVcpuState(const std::vector<uint8_t>& bytes, const std::string& what);

}  // namespace vmm
