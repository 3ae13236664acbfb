// The boot GDT and IDT the VMM places in guest memory before the first instruction runs.
#pragma once

#include "kvm_uapi.h"

#include <cstdint>

#include "vstate/memory.h"

namespace vmm::x86_64 {

// Selectors into the boot GDT.
constexpr uint16_t kCodeSelector = 0x08;
constexpr uint16_t kDataSelector = 0x10;
constexpr uint16_t kTssSelector = 0x18;

enum class CpuMode { kLong64, kProtected32 };

// Writes the GDT (null, code, data, TSS) and an empty IDT, and fills the matching segment
// registers of `sregs`: 64-bit code for the Linux 64-bit boot protocol, 32-bit flat for PVH.
void SetupSegments(GuestMemory& memory, CpuMode mode, kvm_sregs& sregs);

}  // namespace vmm::x86_64
