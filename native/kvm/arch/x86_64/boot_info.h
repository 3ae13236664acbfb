// What the VMM hands the kernel at entry: the zero page (struct boot_params) for the 64-bit boot
// protocol, or hvm_start_info for PVH. Both carry the command line, initrd and memory map.
#pragma once

#include <cstdint>
#include <string>

#include "loader/initrd.h"
#include "loader/kernel.h"
#include "vstate/memory.h"

namespace vmm::x86_64 {

// Writes the command line and the boot information for `kernel`; returns the guest address of
// the structure the entry register points to.
uint64_t WriteBootInfo(GuestMemory& memory, const loader::KernelImage& kernel, const std::string& cmdline,
                       const loader::InitrdPlacement& initrd);

}  // namespace vmm::x86_64
