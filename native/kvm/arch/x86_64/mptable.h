// The Intel MultiProcessor table (MP spec 1.4): how a guest without ACPI learns its CPUs, its
// IOAPIC and how ISA interrupts are routed. Linux needs CONFIG_X86_MPPARSE to read it.
#pragma once

#include <cstdint>

#include "vstate/memory.h"

namespace vmm::x86_64 {

// The most vCPUs the table can describe (APIC ids are 8 bits; the IOAPIC takes one more id).
constexpr uint32_t kMpTableMaxCpus = 254;

void WriteMpTable(GuestMemory& memory, uint32_t vcpu_count);

}  // namespace vmm::x86_64
