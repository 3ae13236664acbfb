#include "kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "error.h"

namespace vmm {

namespace {
constexpr const char* kDevKvm = "/dev/kvm";

std::string HowToGetKvm(int err) {
  switch (err) {
    case ENOENT:
      return "/dev/kvm does not exist: this host has no KVM (enable VT-x/AMD-V, load kvm_intel or kvm_amd, "
             "or run inside the nested rig: test/rig/run.sh -- COMMAND)";
    case EACCES:
    case EPERM:
      return "/dev/kvm is not accessible to this user: add the user to the 'kvm' group or run as root";
    default:
      return std::string("/dev/kvm cannot be opened: ") + ErrnoName(err) + " (" + std::strerror(err) + ")";
  }
}
// KVM on x86 runs standard guests only with VT-x or AMD-V. Without them a /dev/kvm can still be
// there (kvm-pvm, on hosts that are themselves guests), but it runs only PVM-built guests: a
// standard kernel then spins in KVM_RUN forever. Say so up front instead.
bool CpuHasHardwareVirtualization() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {
      line += ' ';
      return line.find(" vmx ") != std::string::npos || line.find(" svm ") != std::string::npos;
    }
  }
  return false;
}
}  // namespace

Fd Kvm::OpenDevice() {
  Fd fd(open(kDevKvm, O_RDWR | O_CLOEXEC));
  if (!fd.valid()) throw KvmUnavailable(HowToGetKvm(errno));
  if (!CpuHasHardwareVirtualization()) {
    throw KvmUnavailable("/dev/kvm exists but this CPU has no VT-x/AMD-V (kvm-pvm?): it cannot run a standard guest "
                   "kernel; run on a host with hardware virtualisation, or inside the nested rig: "
                   "test/rig/run.sh -- COMMAND");
  }
  return fd;
}

Kvm::Kvm(Fd device) : fd_(std::move(device)) {
  int version = CheckSys(ioctl(fd_.get(), KVM_GET_API_VERSION, 0), "KVM_GET_API_VERSION");
  if (version != KVM_API_VERSION) {
    throw VmmError("/dev/kvm speaks KVM API " + std::to_string(version) + ", vmrun needs " +
                   std::to_string(KVM_API_VERSION));
  }
  for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_USER_MEMORY, KVM_CAP_SET_TSS_ADDR, KVM_CAP_EXT_CPUID,
                   KVM_CAP_PIT2, KVM_CAP_IMMEDIATE_EXIT}) {
    if (CheckExtension(cap) <= 0) {
      throw VmmError("this KVM lacks capability " + std::to_string(cap) + " that vmrun needs");
    }
  }
}

KvmProbe Kvm::Probe() {
  KvmProbe probe;
  try {
    Kvm kvm(OpenDevice());
    probe.api_version = KVM_API_VERSION;
    probe.max_vcpus = kvm.MaxVcpus();
    probe.recommended_vcpus = kvm.CheckExtension(KVM_CAP_NR_VCPUS);
    probe.usable = true;
  } catch (const VmmError& e) {
    probe.error = e.what();
  }
  return probe;
}

int Kvm::CheckExtension(long cap) const {
  return CheckSys(ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap), "KVM_CHECK_EXTENSION");
}

int Kvm::MaxVcpus() const {
  int max = CheckExtension(KVM_CAP_MAX_VCPUS);
  return max > 0 ? max : CheckExtension(KVM_CAP_NR_VCPUS);
}

int Kvm::VcpuMmapSize() const {
  return CheckSys(ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
}

std::vector<kvm_cpuid_entry2> Kvm::SupportedCpuid() const {
  // The kernel says E2BIG until the buffer is large enough; grow until it fits.
  for (size_t n = 64; n <= 4096; n *= 2) {
    std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
    cpuid->nent = n;
    if (ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, cpuid) == 0) {
      return {cpuid->entries, cpuid->entries + cpuid->nent};
    }
    if (errno != E2BIG) throw SysError("KVM_GET_SUPPORTED_CPUID", errno);
  }
  throw VmmError("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

std::vector<uint32_t> Kvm::MsrIndexList() const {
  // Asked with room for none, the kernel says E2BIG and how many there are.
  kvm_msr_list probe{};
  if (ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, &probe) == 0 || errno != E2BIG) {
    throw SysError("KVM_GET_MSR_INDEX_LIST", errno);
  }
  std::vector<uint8_t> buf(sizeof(kvm_msr_list) + probe.nmsrs * sizeof(uint32_t));
  auto* list = reinterpret_cast<kvm_msr_list*>(buf.data());
  list->nmsrs = probe.nmsrs;
  CheckSys(ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, list), "KVM_GET_MSR_INDEX_LIST");
  std::vector<uint32_t> indices(list->indices, list->indices + list->nmsrs);
  std::sort(indices.begin(), indices.end());
  return indices;
}

}  // namespace vmm
