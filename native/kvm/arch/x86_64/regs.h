// The register state a vCPU starts in: Linux's 64-bit boot protocol (long mode, identity-mapped
// first GiB, rsi = zero page) or PVH (32-bit protected mode, paging off, ebx = hvm_start_info).
#pragma once

#include "kvm_uapi.h"

#include <cstdint>
#include <vector>

#include "arch/x86_64/gdt.h"
#include "vstate/memory.h"

namespace vmm::x86_64 {

// Where the boot CPU starts and what it is handed.
struct BootEntry {
  CpuMode mode;
  uint64_t entry_addr;  // rip
  uint64_t boot_info;   // zero page (rsi) or hvm_start_info (rbx)
};

// Writes the page tables that long mode needs (first GiB, 2 MiB pages).
void WriteIdentityPageTables(GuestMemory& memory);
// Segments and control registers for `entry.mode`, on top of the vCPU's current sregs.
void SetupSregs(GuestMemory& memory, CpuMode mode, kvm_sregs& sregs);
kvm_regs BootRegs(const BootEntry& entry);
kvm_fpu BootFpu();
std::vector<kvm_msr_entry> BootMsrs();
// LVT0 as ExtINT and LVT1 as NMI, as a PC's BIOS would leave the local APIC.
void SetupLapic(kvm_lapic_state& lapic);

}  // namespace vmm::x86_64
