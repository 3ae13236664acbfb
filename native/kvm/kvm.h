// The KVM system handle (/dev/kvm): API version, capabilities, supported CPUID.
#pragma once

#include "kvm_uapi.h"

#include <memory>
#include <string>
#include <vector>

#include "fd.h"

namespace vmm {

// What a host can offer, gathered without creating a VM; `error` explains why KVM is unusable.
struct KvmProbe {
  bool usable = false;
  std::string error;
  int api_version = 0;
  int max_vcpus = 0;
  int recommended_vcpus = 0;
};

class Kvm {
 public:
  // Opens /dev/kvm (throws KvmUnavailable, saying how to fix it) for a VMM process to be handed.
  static Fd OpenDevice();
  // Takes /dev/kvm, open, and checks its API version and capabilities; throws VmmError.
  explicit Kvm(Fd device);
  static KvmProbe Probe();

  int fd() const { return fd_.get(); }
  int CheckExtension(long cap) const;
  int MaxVcpus() const;
  int VcpuMmapSize() const;
  std::vector<kvm_cpuid_entry2> SupportedCpuid() const;
  // Every MSR KVM can save and restore for a vCPU (KVM_GET_MSR_INDEX_LIST), ascending: IA32_TSC
  // (0x10) before TSC_DEADLINE (0x6e0), which is relative to it.
  std::vector<uint32_t> MsrIndexList() const;

 private:
  Fd fd_;
};

}  // namespace vmm
