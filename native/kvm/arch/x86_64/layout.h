// The guest-physical address map of a vmrun x86_64 microVM. Addresses follow Firecracker's layout
// (see Linux Documentation/arch/x86/boot.rst for the zero page and command line rules).
#pragma once

#include <cstdint>

namespace vmm::layout {

// Low memory, below 1 MiB.
constexpr uint64_t kGdtStart = 0x500;
constexpr uint64_t kIdtStart = 0x520;
constexpr uint64_t kPvhStartInfo = 0x6000;   // hvm_start_info, then its module list and memory map
constexpr uint64_t kZeroPage = 0x7000;       // struct boot_params for the 64-bit boot protocol
constexpr uint64_t kBootStack = 0x8ff0;
constexpr uint64_t kPml4 = 0x9000;
constexpr uint64_t kPdpt = 0xa000;
constexpr uint64_t kPd = 0xb000;
constexpr uint64_t kCmdline = 0x20000;
constexpr uint64_t kCmdlineMax = 0x10000;
constexpr uint64_t kEbdaStart = 0x9fc00;     // MP table lives here; reserved in the e820 map
constexpr uint64_t kHighMemoryStart = 0x100000;  // 1 MiB: where the kernel is loaded

// The 32-bit hole for devices: RAM stops at 3 GiB and resumes at 4 GiB.
constexpr uint64_t kMmioHoleStart = 0xc0000000;
constexpr uint64_t kHighRamStart = 0x100000000;
constexpr uint64_t kTssAddress = 0xfffbd000;
constexpr uint64_t kIoapicAddress = 0xfec00000;
constexpr uint64_t kLapicAddress = 0xfee00000;

// virtio-mmio devices: one 4 KiB page each from here, declared to Linux on the command line
// (virtio_mmio.device=4K@ADDR:IRQ), interrupts from IRQ 5 up (0-4 are the PIT, keyboard, cascade, COM).
constexpr uint64_t kVirtioMmioStart = 0xd0000000;
constexpr uint32_t kVirtioFirstIrq = 5;
constexpr uint32_t kVirtioMaxDevices = 18;  // IRQs 5..22 of the IOAPIC's 24

// Smallest guest RAM we accept: the kernel loads at 16 MiB (PVH) and needs room to run.
constexpr uint64_t kMinMemoryMiB = 32;

}  // namespace vmm::layout
