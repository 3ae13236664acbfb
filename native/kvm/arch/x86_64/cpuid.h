// CPUID as the guest sees it: KVM's supported set, normalised per vCPU (Firecracker does the
// same): APIC ids and topology for `vcpu_count` single-threaded cores in one package, the
// hypervisor bit, and TSC-deadline (KVM emulates it; without it the guest calibrates its APIC
// timer, which costs ~120 ms).
#pragma once

#include "kvm_uapi.h"

#include <cstdint>
#include <vector>

namespace vmm::x86_64 {

std::vector<kvm_cpuid_entry2> NormalizeCpuid(std::vector<kvm_cpuid_entry2> entries, uint32_t vcpu_index,
                                            uint32_t vcpu_count);

}  // namespace vmm::x86_64
