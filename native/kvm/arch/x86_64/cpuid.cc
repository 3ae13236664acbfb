#include "arch/x86_64/cpuid.h"

namespace vmm::x86_64 {

namespace {
// Intel SDM vol. 2A, CPUID; AMD APM vol. 3, appendix E.
constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheParams = 0x4;
constexpr uint32_t kLeafExtTopology = 0xb;
constexpr uint32_t kLeafV2ExtTopology = 0x1f;
constexpr uint32_t kLeafAmdAddressSizes = 0x80000008;
constexpr uint32_t kLeafAmdTopology = 0x8000001e;

constexpr uint32_t kEcxTscDeadline = 1u << 24;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEdxHtt = 1u << 28;
constexpr uint32_t kTopologyLevelSmt = 1;
constexpr uint32_t kTopologyLevelCore = 2;

// Bits needed to number `count` cores: ceil(log2(count)).
uint32_t IdBits(uint32_t count) {
  uint32_t bits = 0;
  while ((1u << bits) < count) ++bits;
  return bits;
}
}  // namespace

std::vector<kvm_cpuid_entry2> NormalizeCpuid(std::vector<kvm_cpuid_entry2> entries, uint32_t vcpu_index,
                                            uint32_t vcpu_count) {
  const uint32_t apic_id = vcpu_index;
  for (kvm_cpuid_entry2& e : entries) {
    switch (e.function) {
      case kLeafFeatures:
        // EBX[31:24] initial APIC id, [23:16] logical processors per package, [15:8] CLFLUSH size.
        e.ebx = (apic_id << 24) | (vcpu_count << 16) | (8u << 8) | (e.ebx & 0xff);
        e.ecx |= kEcxHypervisor | kEcxTscDeadline;
        if (vcpu_count > 1) e.edx |= kEdxHtt; else e.edx &= ~kEdxHtt;
        break;
      case kLeafCacheParams: {
        // EAX[31:26] cores per package - 1; [25:14] logical processors sharing this cache - 1.
        const uint32_t level = (e.eax >> 5) & 0x7;
        const uint32_t sharing = level >= 3 ? vcpu_count - 1 : 0;
        e.eax = (e.eax & 0x3fff) | (sharing << 14) | ((vcpu_count - 1) << 26);
        break;
      }
      case kLeafExtTopology:
      case kLeafV2ExtTopology:
        e.edx = apic_id;
        if (e.index == 0) {  // SMT level: one thread per core
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (kTopologyLevelSmt << 8) | e.index;
        } else if (e.index == 1) {  // core level: every vCPU is a core of one package
          e.eax = IdBits(vcpu_count);
          e.ebx = vcpu_count;
          e.ecx = (kTopologyLevelCore << 8) | e.index;
        } else {
          e.eax = e.ebx = 0;
          e.ecx = e.index;
        }
        break;
      case kLeafAmdAddressSizes:
        // ECX[15:12] APIC id size, [7:0] number of cores - 1.
        e.ecx = (IdBits(vcpu_count) << 12) | (vcpu_count - 1);
        break;
      case kLeafAmdTopology:
        e.eax = apic_id;         // extended APIC id
        e.ebx = apic_id & 0xff;  // compute unit id, one thread each
        e.ecx = 0;               // node 0
        break;
      default:
        break;
    }
  }
  return entries;
}

}  // namespace vmm::x86_64
