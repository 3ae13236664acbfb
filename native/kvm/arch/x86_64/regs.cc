#include "arch/x86_64/regs.h"

#include <cstring>

#include "arch/x86_64/layout.h"

namespace vmm::x86_64 {

namespace {
constexpr uint64_t kCr0Pe = 1ull << 0;
constexpr uint64_t kCr0Et = 1ull << 4;
constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;

constexpr uint64_t kPagePresentWritable = 0x3;
constexpr uint64_t kPageHuge = 0x80;

// MSR numbers, Intel SDM vol. 4.
constexpr uint32_t kMsrSysenterCs = 0x174;
constexpr uint32_t kMsrSysenterEsp = 0x175;
constexpr uint32_t kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084;
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
constexpr uint32_t kMsrTsc = 0x10;
constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;
constexpr uint64_t kMiscEnableFastString = 1;
constexpr uint64_t kMtrrEnableWriteBack = (1ull << 11) | 6;

// LAPIC register offsets and delivery modes, Intel SDM vol. 3A, 10.5.1.
constexpr size_t kApicLvt0 = 0x350;
constexpr size_t kApicLvt1 = 0x360;
constexpr uint32_t kApicModeNmi = 0x4;
constexpr uint32_t kApicModeExtInt = 0x7;
}  // namespace

void WriteIdentityPageTables(GuestMemory& memory) {
  memory.WriteObject<uint64_t>(layout::kPml4, layout::kPdpt | kPagePresentWritable, "PML4");
  memory.WriteObject<uint64_t>(layout::kPdpt, layout::kPd | kPagePresentWritable, "PDPT");
  uint64_t pd[512];
  for (uint64_t i = 0; i < 512; ++i) pd[i] = (i << 21) | kPagePresentWritable | kPageHuge;
  memory.Write(layout::kPd, pd, sizeof pd, "page directory");
}

void SetupSregs(GuestMemory& memory, CpuMode mode, kvm_sregs& sregs) {
  SetupSegments(memory, mode, sregs);
  if (mode == CpuMode::kLong64) {
    WriteIdentityPageTables(memory);
    sregs.cr3 = layout::kPml4;
    sregs.cr4 |= kCr4Pae;
    sregs.cr0 |= kCr0Pe | kCr0Pg;
    sregs.efer |= kEferLme | kEferLma;
  } else {
    // PVH: "32-bit protected mode, paging disabled" (xen/include/public/arch-x86/hvm/start_info.h).
    sregs.cr0 = kCr0Pe | kCr0Et;
    sregs.cr4 = 0;
    sregs.efer = 0;
  }
}

kvm_regs BootRegs(const BootEntry& entry) {
  kvm_regs regs{};
  regs.rflags = 0x2;  // bit 1 is reserved and always set
  regs.rip = entry.entry_addr;
  if (entry.mode == CpuMode::kLong64) {
    regs.rsp = regs.rbp = layout::kBootStack;
    regs.rsi = entry.boot_info;
  } else {
    regs.rbx = entry.boot_info;
  }
  return regs;
}

kvm_fpu BootFpu() {
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;      // x87 default control word: all exceptions masked
  fpu.mxcsr = 0x1f80;   // SSE default: all exceptions masked
  return fpu;
}

std::vector<kvm_msr_entry> BootMsrs() {
  std::vector<kvm_msr_entry> msrs;
  auto set = [&](uint32_t index, uint64_t data) {
    kvm_msr_entry e{};
    e.index = index;
    e.data = data;
    msrs.push_back(e);
  };
  for (uint32_t zeroed : {kMsrSysenterCs, kMsrSysenterEsp, kMsrSysenterEip, kMsrStar, kMsrCstar,
                          kMsrKernelGsBase, kMsrSyscallMask, kMsrLstar, kMsrTsc}) {
    set(zeroed, 0);
  }
  set(kMsrMiscEnable, kMiscEnableFastString);
  set(kMsrMtrrDefType, kMtrrEnableWriteBack);
  return msrs;
}

void SetupLapic(kvm_lapic_state& lapic) {
  auto set_mode = [&](size_t reg, uint32_t mode) {
    uint32_t value;
    std::memcpy(&value, lapic.regs + reg, sizeof value);
    value = (value & ~0x700u) | (mode << 8);
    std::memcpy(lapic.regs + reg, &value, sizeof value);
  };
  set_mode(kApicLvt0, kApicModeExtInt);
  set_mode(kApicLvt1, kApicModeNmi);
}

}  // namespace vmm::x86_64
