#include "arch/x86_64/gdt.h"

#include "arch/x86_64/layout.h"

namespace vmm::x86_64 {

namespace {
// A segment descriptor from its flags (G, D/B, L, AVL in the high nibble; P, DPL, S, type below),
// base and limit; Intel SDM vol. 3A, 3.4.5.
constexpr uint64_t Descriptor(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((uint64_t(base) & 0xff000000) << 32) | ((uint64_t(flags) & 0xf0ff) << 40) |
         ((uint64_t(limit) & 0x000f0000) << 32) | ((uint64_t(base) & 0x00ffffff) << 16) |
         (uint64_t(limit) & 0x0000ffff);
}

kvm_segment SegmentFrom(uint64_t d, uint16_t selector) {
  kvm_segment s{};
  s.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
  uint32_t limit = (d & 0xffff) | (((d >> 48) & 0xf) << 16);
  s.g = (d >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.selector = selector;
  s.type = (d >> 40) & 0xf;
  s.present = (d >> 47) & 1;
  s.dpl = (d >> 45) & 3;
  s.db = (d >> 54) & 1;
  s.s = (d >> 44) & 1;
  s.l = (d >> 53) & 1;
  s.avl = (d >> 52) & 1;
  s.unusable = s.present ? 0 : 1;
  return s;
}
}  // namespace

void SetupSegments(GuestMemory& memory, CpuMode mode, kvm_sregs& sregs) {
  const bool long_mode = mode == CpuMode::kLong64;
  const uint64_t gdt[] = {
      0,
      // code: 64-bit (L) for long mode, 32-bit (D) for PVH's protected mode
      Descriptor(long_mode ? 0xa09b : 0xc09b, 0, 0xfffff),
      Descriptor(0xc093, 0, 0xfffff),  // data, 4 GiB flat
      Descriptor(0x808b, 0, 0xfffff),  // 32/64-bit busy TSS
  };
  memory.Write(layout::kGdtStart, gdt, sizeof gdt, "boot GDT");
  memory.WriteObject<uint64_t>(layout::kIdtStart, 0, "boot IDT");

  sregs.gdt.base = layout::kGdtStart;
  sregs.gdt.limit = sizeof gdt - 1;
  sregs.idt.base = layout::kIdtStart;
  sregs.idt.limit = sizeof(uint64_t) - 1;

  sregs.cs = SegmentFrom(gdt[1], kCodeSelector);
  kvm_segment data = SegmentFrom(gdt[2], kDataSelector);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = SegmentFrom(gdt[3], kTssSelector);
}

}  // namespace vmm::x86_64
