#include "vstate/vcpu.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "arch/x86_64/cpuid.h"
#include "error.h"

namespace vmm {

namespace {
// A real-time signal with an empty handler, installed without SA_RESTART, so that it interrupts
// KVM_RUN (and a blocked console write) with EINTR. Node uses SIGUSR1; glibc reserves the first RT signals.
int KickSignal() { return SIGRTMIN + 3; }

void InstallKickHandler() {
  static const bool installed = [] {
    struct sigaction sa{};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sigaction(KickSignal(), &sa, nullptr);
    return true;
  }();
  (void)installed;
}

std::string Hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

// KVM_SET_CPUID2 with `entries`, laid out as KVM wants them: a count, then the array.
void SetCpuid(int fd, const std::vector<kvm_cpuid_entry2>& entries) {
  std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + entries.size() * sizeof(kvm_cpuid_entry2));
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
  cpuid->nent = entries.size();
  std::memcpy(cpuid->entries, entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  CheckSys(ioctl(fd, KVM_SET_CPUID2, cpuid), "KVM_SET_CPUID2");
}

// KVM_SET_MSRS with every entry: KVM stops at the first MSR it refuses, which the error names.
void SetMsrs(int fd, const std::vector<kvm_msr_entry>& msrs) {
  std::vector<uint8_t> buf(sizeof(kvm_msrs) + msrs.size() * sizeof(kvm_msr_entry));
  auto* arg = reinterpret_cast<kvm_msrs*>(buf.data());
  arg->nmsrs = msrs.size();
  std::memcpy(arg->entries, msrs.data(), msrs.size() * sizeof(kvm_msr_entry));
  const size_t set = CheckSys(ioctl(fd, KVM_SET_MSRS, arg), "KVM_SET_MSRS");
  if (set != msrs.size()) {
    throw VmmError("KVM_SET_MSRS set " + std::to_string(set) + " of " + std::to_string(msrs.size()) + " MSRs (MSR " +
                   Hex(msrs[set].index) + " refused)");
  }
}
}  // namespace

Vcpu::Vcpu(const Kvm& kvm, const Vm& vm, uint32_t index) : index_(index) {
  fd_ = Fd(CheckSys(ioctl(vm.fd(), KVM_CREATE_VCPU, index), "KVM_CREATE_VCPU"));
  run_size_ = kvm.VcpuMmapSize();
  void* run = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (run == MAP_FAILED) throw SysError("mmap", errno, "kvm_run of vCPU " + std::to_string(index));
  run_ = static_cast<kvm_run*>(run);
  InstallKickHandler();
}

Vcpu::~Vcpu() {
  if (run_) munmap(run_, run_size_);
}

void Vcpu::Configure(const std::vector<kvm_cpuid_entry2>& cpuid, GuestMemory& memory,
                     const x86_64::BootEntry* entry) {
  // Order matters: CPUID first (it decides which MSRs and features exist), LAPIC last.
  SetCpuid(fd_.get(), cpuid);
  SetMsrs(fd_.get(), x86_64::BootMsrs());

  if (entry) {
    kvm_regs regs = x86_64::BootRegs(*entry);
    CheckSys(ioctl(fd_.get(), KVM_SET_REGS, &regs), "KVM_SET_REGS");
  }
  kvm_fpu fpu = x86_64::BootFpu();
  CheckSys(ioctl(fd_.get(), KVM_SET_FPU, &fpu), "KVM_SET_FPU");
  if (entry) {
    kvm_sregs sregs;
    CheckSys(ioctl(fd_.get(), KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
    x86_64::SetupSregs(memory, entry->mode, sregs);
    CheckSys(ioctl(fd_.get(), KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
  }
  kvm_lapic_state lapic;
  CheckSys(ioctl(fd_.get(), KVM_GET_LAPIC, &lapic), "KVM_GET_LAPIC");
  x86_64::SetupLapic(lapic);
  CheckSys(ioctl(fd_.get(), KVM_SET_LAPIC, &lapic), "KVM_SET_LAPIC");
}

void Vcpu::CompletePendingExit() {
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
  const int r = ioctl(fd_.get(), KVM_RUN, 0);
  const int err = errno;
  __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
  if (r == 0 || err != EINTR) throw VmmError("vCPU " + std::to_string(index_) + " did not pause for a snapshot (KVM_RUN: " + (r == 0 ? "ran" : ErrnoName(err)) + ")");
}

VcpuState Vcpu::SaveState(const Kvm& kvm, const std::vector<uint32_t>& msr_indices) {
  CompletePendingExit();
  const int fd = fd_.get();
  VcpuState s;
  CheckSys(ioctl(fd, KVM_GET_MP_STATE, &s.mp_state), "KVM_GET_MP_STATE");
  CheckSys(ioctl(fd, KVM_GET_REGS, &s.regs), "KVM_GET_REGS");
  CheckSys(ioctl(fd, KVM_GET_SREGS, &s.sregs), "KVM_GET_SREGS");
  // KVM_CAP_XSAVE2 gives the area's size where it outgrew struct kvm_xsave (AMX).
  const int xsave2 = kvm.CheckExtension(KVM_CAP_XSAVE2);
  s.xsave.assign(std::max<size_t>(sizeof(kvm_xsave), xsave2 > 0 ? xsave2 : 0), 0);
  CheckSys(ioctl(fd, xsave2 > 0 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, s.xsave.data()), "KVM_GET_XSAVE");
  CheckSys(ioctl(fd, KVM_GET_XCRS, &s.xcrs), "KVM_GET_XCRS");
  CheckSys(ioctl(fd, KVM_GET_DEBUGREGS, &s.debugregs), "KVM_GET_DEBUGREGS");
  CheckSys(ioctl(fd, KVM_GET_LAPIC, &s.lapic), "KVM_GET_LAPIC");
  s.tsc_khz = static_cast<uint32_t>(CheckSys(ioctl(fd, KVM_GET_TSC_KHZ), "KVM_GET_TSC_KHZ"));

  constexpr size_t kCpuidRoom = 256;
  std::vector<uint8_t> cpuid_buf(sizeof(kvm_cpuid2) + kCpuidRoom * sizeof(kvm_cpuid_entry2));
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(cpuid_buf.data());
  cpuid->nent = kCpuidRoom;
  CheckSys(ioctl(fd, KVM_GET_CPUID2, cpuid), "KVM_GET_CPUID2");
  s.cpuid.assign(cpuid->entries, cpuid->entries + cpuid->nent);

  // KVM_GET_MSRS stops at the first MSR it cannot read: that one is left out, the rest read on.
  std::vector<uint32_t> pending = msr_indices;
  while (!pending.empty()) {
    std::vector<uint8_t> buf(sizeof(kvm_msrs) + pending.size() * sizeof(kvm_msr_entry));
    auto* msrs = reinterpret_cast<kvm_msrs*>(buf.data());
    msrs->nmsrs = pending.size();
    for (size_t i = 0; i < pending.size(); ++i) msrs->entries[i].index = pending[i];
    const size_t read = CheckSys(ioctl(fd, KVM_GET_MSRS, msrs), "KVM_GET_MSRS");
    s.msrs.insert(s.msrs.end(), msrs->entries, msrs->entries + read);
    pending.erase(pending.begin(), pending.begin() + std::min(read + 1, pending.size()));
  }
  // TSC_DEADLINE is relative to IA32_TSC: restored after it, last. A deadline of 0 (cleared as
  // its interrupt fired, the interrupt not yet delivered) would leave the vCPU without timer
  // interrupts after a restore; the TSC's own value fires at once instead (as Firecracker does).
  constexpr uint32_t kIa32Tsc = 0x10, kTscDeadline = 0x6e0;
  std::stable_partition(s.msrs.begin(), s.msrs.end(), [](const kvm_msr_entry& m) { return m.index != kTscDeadline; });
  if (!s.msrs.empty() && s.msrs.back().index == kTscDeadline && s.msrs.back().data == 0) {
    for (const kvm_msr_entry& m : s.msrs) {
      if (m.index == kIa32Tsc) s.msrs.back().data = m.data;
    }
  }
  // Last: reading the others may have changed what is pending (Firecracker's order).
  CheckSys(ioctl(fd, KVM_GET_VCPU_EVENTS, &s.events), "KVM_GET_VCPU_EVENTS");
  return s;
}

void Vcpu::RestoreState(const VcpuState& s) {
  const int fd = fd_.get();
  // CPUID first: it decides which MSRs and XSAVE features exist.
  SetCpuid(fd, s.cpuid);
  CheckSys(ioctl(fd, KVM_SET_MP_STATE, &s.mp_state), "KVM_SET_MP_STATE");
  CheckSys(ioctl(fd, KVM_SET_REGS, &s.regs), "KVM_SET_REGS");
  CheckSys(ioctl(fd, KVM_SET_SREGS, &s.sregs), "KVM_SET_SREGS");
  std::vector<uint8_t> xsave = s.xsave;  // KVM reads as much as this host's XSAVE needs
  CheckSys(ioctl(fd, KVM_SET_XSAVE, xsave.data()), "KVM_SET_XSAVE");
  CheckSys(ioctl(fd, KVM_SET_XCRS, &s.xcrs), "KVM_SET_XCRS");
  CheckSys(ioctl(fd, KVM_SET_DEBUGREGS, &s.debugregs), "KVM_SET_DEBUGREGS");
  CheckSys(ioctl(fd, KVM_SET_LAPIC, &s.lapic), "KVM_SET_LAPIC");

  SetMsrs(fd, s.msrs);
  CheckSys(ioctl(fd, KVM_SET_VCPU_EVENTS, &s.events), "KVM_SET_VCPU_EVENTS");
  // Tells a kvmclock guest that it was paused, so that its watchdogs do not take the gap for a
  // lockup; a guest without kvmclock refuses it (EINVAL), which is no error.
  if (ioctl(fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL) throw SysError("KVM_KVMCLOCK_CTRL", errno);
}

void Vcpu::PrepareThreadSignals() {
  sigset_t all;
  sigfillset(&all);
  sigdelset(&all, KickSignal());
  pthread_sigmask(SIG_SETMASK, &all, nullptr);
}

void Vcpu::Kick() {
  // immediate_exit covers the window before the thread enters KVM_RUN; the signal, the time inside it.
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
  std::lock_guard<std::mutex> lock(thread_mutex_);
  if (has_thread_) pthread_kill(thread_, KickSignal());
}

VcpuExit Vcpu::Run(const devices::Bus& pio, const devices::Bus& mmio, const std::atomic<bool>& stop) {
  const std::string who = "vCPU " + std::to_string(index_);
  while (!stop) {
    if (ioctl(fd_.get(), KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return {VcpuExit::Kind::kError, SysError("KVM_RUN", errno, who).what()};
    }
    switch (run_->exit_reason) {
      case KVM_EXIT_IO:
        HandleIo(pio);
        break;
      case KVM_EXIT_MMIO:
        HandleMmio(mmio);
        break;
      case KVM_EXIT_SHUTDOWN:
        return {VcpuExit::Kind::kTripleFault, who + " triple-faulted (KVM_EXIT_SHUTDOWN)"};
      case KVM_EXIT_FAIL_ENTRY:
        return {VcpuExit::Kind::kError, who + ": KVM_EXIT_FAIL_ENTRY, hardware reason " +
                                            Hex(run_->fail_entry.hardware_entry_failure_reason)};
      case KVM_EXIT_INTERNAL_ERROR:
        return {VcpuExit::Kind::kError, who + ": KVM_EXIT_INTERNAL_ERROR, suberror " +
                                            std::to_string(run_->internal.suberror)};
      case KVM_EXIT_SYSTEM_EVENT:
        return {VcpuExit::Kind::kError, who + ": KVM_EXIT_SYSTEM_EVENT type " +
                                            std::to_string(run_->system_event.type)};
      case KVM_EXIT_INTR:
        break;
      default:
        return {VcpuExit::Kind::kError, who + ": unexpected KVM exit reason " + std::to_string(run_->exit_reason)};
    }
  }
  return {VcpuExit::Kind::kStopped, ""};
}

void Vcpu::HandleIo(const devices::Bus& pio) {
  auto& io = run_->io;
  // The data area lies inside the kvm_run mapping; KVM sets its offset, a string I/O repeats `count` times.
  if (io.data_offset >= run_size_ || uint64_t(io.size) * io.count > run_size_ - io.data_offset) return;
  uint8_t* data = reinterpret_cast<uint8_t*>(run_) + io.data_offset;
  for (uint32_t i = 0; i < io.count; ++i, data += io.size) {
    if (io.direction == KVM_EXIT_IO_OUT) {
      pio.Write(io.port, data, io.size);
    } else {
      pio.Read(io.port, data, io.size);
    }
  }
}

void Vcpu::HandleMmio(const devices::Bus& mmio) {
  auto& m = run_->mmio;
  const uint32_t len = m.len <= sizeof m.data ? m.len : sizeof m.data;
  if (m.is_write) {
    mmio.Write(m.phys_addr, m.data, len);
  } else {
    mmio.Read(m.phys_addr, m.data, len);
  }
}

}  // namespace vmm
