// CPUID normalisation: the APIC ids and topology each vCPU reports must agree with the MP table,
// or Linux numbers CPUs wrongly; TSC-deadline saves ~120 ms of APIC timer calibration.
#include <cstdint>
#include <vector>

#include "arch/x86_64/cpuid.h"
#include "tests/check.h"

namespace {
kvm_cpuid_entry2 Entry(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

// What KVM_GET_SUPPORTED_CPUID might return on a host with 8 threads per core pair etc.
std::vector<kvm_cpuid_entry2> HostCpuid() {
  return {
      Entry(0x0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
      Entry(0x1, 0, 0x000906ea, 0x07100800 | 0x5a, 0x7ffafbff & ~(1u << 31) & ~(1u << 24), 0xbfebfbff),
      Entry(0x4, 0, (1u << 5) | 0x1 | (7u << 26) | (1u << 14), 0x01c0003f, 0x3f, 0),  // L1d
      Entry(0x4, 3, (3u << 5) | 0x3 | (7u << 26) | (15u << 14), 0x03c0003f, 0x2fff, 6),  // L3
      Entry(0xb, 0, 1, 2, 0x100, 9),
      Entry(0xb, 1, 4, 16, 0x201, 9),
      Entry(0xb, 2, 0, 0, 2, 9),
      Entry(0x80000008, 0, 0x3027, 0, 0x700f, 0),
      Entry(0x8000001e, 0, 9, 0x107, 0x3, 0),
      Entry(0x7, 0, 0, 0x12345678, 0x9abcdef0, 0x0fedcba9),
  };
}

const kvm_cpuid_entry2* Find(const std::vector<kvm_cpuid_entry2>& v, uint32_t function, uint32_t index) {
  for (const auto& e : v) {
    if (e.function == function && e.index == index) return &e;
  }
  return nullptr;
}

void CheckVcpu(uint32_t index, uint32_t count, uint32_t id_bits) {
  const std::vector<kvm_cpuid_entry2> in = HostCpuid();
  const std::vector<kvm_cpuid_entry2> out = vmm::x86_64::NormalizeCpuid(in, index, count);
  CHECK_EQ(out.size(), in.size());
  const kvm_cpuid_entry2* l1 = Find(out, 1, 0);
  const kvm_cpuid_entry2* l4a = Find(out, 4, 0);
  const kvm_cpuid_entry2* l4c = Find(out, 4, 3);
  const kvm_cpuid_entry2* b0 = Find(out, 0xb, 0);
  const kvm_cpuid_entry2* b1 = Find(out, 0xb, 1);
  const kvm_cpuid_entry2* b2 = Find(out, 0xb, 2);
  const kvm_cpuid_entry2* ext8 = Find(out, 0x80000008, 0);
  const kvm_cpuid_entry2* ext1e = Find(out, 0x8000001e, 0);
  const kvm_cpuid_entry2* l7 = Find(out, 7, 0);
  if (!(l1 && l4a && l4c && b0 && b1 && b2 && ext8 && ext1e && l7)) return void(CHECK(!"every input leaf is in the output"));

  // Leaf 1.
  CHECK_EQ(l1->ebx >> 24, index);                  // initial APIC id
  CHECK_EQ((l1->ebx >> 16) & 0xff, count);         // logical processors per package
  CHECK_EQ((l1->ebx >> 8) & 0xff, uint32_t{8});    // CLFLUSH line size, 8 x 8 bytes
  CHECK_EQ(l1->ebx & 0xff, uint32_t{0x5a});        // brand index kept
  CHECK(l1->ecx & (1u << 31));                     // hypervisor
  CHECK(l1->ecx & (1u << 24));                     // TSC-deadline
  CHECK_EQ(l1->ecx & ~((1u << 31) | (1u << 24)), in[1].ecx);  // other feature bits kept
  CHECK_EQ(bool(l1->edx & (1u << 28)), count > 1);  // HTT
  CHECK_EQ(l1->edx & ~(1u << 28), in[1].edx & ~(1u << 28));
  CHECK_EQ(l1->eax, in[1].eax);

  // Leaf 4: cores per package; only the L3 is shared.
  CHECK_EQ(l4a->eax >> 26, count - 1);
  CHECK_EQ((l4a->eax >> 14) & 0xfff, uint32_t{0});
  CHECK_EQ(l4a->eax & 0x3fff, in[2].eax & 0x3fff);
  CHECK_EQ(l4c->eax >> 26, count - 1);
  CHECK_EQ((l4c->eax >> 14) & 0xfff, count - 1);
  CHECK_EQ(l4c->ebx, in[3].ebx);

  // Leaf 0xb: SMT level with one thread, core level with `count` cores, then invalid.
  CHECK_EQ(b0->eax, uint32_t{0});
  CHECK_EQ(b0->ebx, uint32_t{1});
  CHECK_EQ(b0->ecx, uint32_t{0x100});
  CHECK_EQ(b0->edx, index);  // x2APIC id
  CHECK_EQ(b1->eax, id_bits);
  CHECK_EQ(b1->ebx, count);
  CHECK_EQ(b1->ecx, uint32_t{0x201});
  CHECK_EQ(b1->edx, index);
  CHECK_EQ(b2->eax, uint32_t{0});
  CHECK_EQ(b2->ebx, uint32_t{0});
  CHECK_EQ(b2->ecx, uint32_t{2});  // level type 0: no more levels
  CHECK_EQ(b2->edx, index);

  // AMD leaves.
  CHECK_EQ(ext8->eax, uint32_t{0x3027});  // address sizes kept
  CHECK_EQ(ext8->ecx, (id_bits << 12) | (count - 1));
  CHECK_EQ(ext1e->eax, index);
  CHECK_EQ(ext1e->ecx, uint32_t{0});

  // Leaves it does not know stay as they were.
  CHECK_EQ(l7->ebx, uint32_t{0x12345678});
  CHECK_EQ(l7->ecx, uint32_t{0x9abcdef0});
  CHECK_EQ(l7->edx, uint32_t{0x0fedcba9});
}
}  // namespace

TEST(cpuid_1_of_1) { CheckVcpu(0, 1, 0); }
TEST(cpuid_3_of_4) { CheckVcpu(3, 4, 2); }
TEST(cpuid_2_of_5) { CheckVcpu(2, 5, 3); }
TEST(cpuid_0_of_2) { CheckVcpu(0, 2, 1); }

TEST(cpuid_empty_input) {
  CHECK(vmm::x86_64::NormalizeCpuid({}, 0, 1).empty());
}
