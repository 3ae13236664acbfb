#include "vstate/vcpu_state.h"

#include "snapshot/byte_stream.h"

namespace vmm {

namespace {
// Far above KVM's own limits (KVM_MAX_CPUID_ENTRIES 256, about 100 MSRs saved), far below what
// would hurt to allocate.
constexpr size_t kMaxCpuidEntries = 256;
constexpr size_t kMaxMsrs = 1024;
constexpr size_t kMaxXsaveBytes = 64 << 10;
}  // namespace

std::vector<uint8_t> EncodeVcpuState(const VcpuState& s) {
  snapshot::ByteWriter w;
  w.Put(s.mp_state);
  w.Put(s.regs);
  w.Put(s.sregs);
  w.PutBytes(s.xsave);
  w.Put(s.xcrs);
  w.Put(s.debugregs);
  w.Put(s.lapic);
  w.Put(s.tsc_khz);
  w.PutVector(s.cpuid);
  w.PutVector(s.msrs);
  w.Put(s.events);
  return std::move(w.bytes());
}

VcpuState DecodeVcpuState(const std::vector<uint8_t>& bytes, const std::string& what) {
  snapshot::ByteReader r(bytes.data(), bytes.size(), what);
  VcpuState s;
  s.mp_state = r.Get<kvm_mp_state>();
  s.regs = r.Get<kvm_regs>();
  s.sregs = r.Get<kvm_sregs>();
  s.xsave = r.GetBytes();
  s.xcrs = r.Get<kvm_xcrs>();
  s.debugregs = r.Get<kvm_debugregs>();
  s.lapic = r.Get<kvm_lapic_state>();
  s.tsc_khz = r.Get<uint32_t>();
  s.cpuid = r.GetVector<kvm_cpuid_entry2>();
  s.msrs = r.GetVector<kvm_msr_entry>();
  s.events = r.Get<kvm_vcpu_events>();
  r.ExpectEnd();
  if (s.xsave.size() < sizeof(kvm_xsave) || s.xsave.size() > kMaxXsaveBytes) {
    throw snapshot::SnapshotError(what + " has an XSAVE area of " + std::to_string(s.xsave.size()) + " bytes");
  }
  if (s.cpuid.size() > kMaxCpuidEntries || s.msrs.size() > kMaxMsrs || s.xcrs.nr_xcrs > KVM_MAX_XCRS) {
    throw snapshot::SnapshotError(what + " has more CPUID entries, MSRs or XCRs than KVM allows");
  }
  return s;
}

}  // namespace vmm
