// One virtual CPU: its fd and shared kvm_run page, its boot-time state, and the run loop that
// dispatches port and MMIO exits to the buses. The loop runs on a thread of its own.
#pragma once

#include "kvm_uapi.h"
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "arch/x86_64/regs.h"
#include "devices/bus.h"
#include "fd.h"
#include "kvm.h"
#include "vstate/memory.h"
#include "vstate/vcpu_state.h"
#include "vstate/vm.h"

namespace vmm {

// Why a vCPU stopped running.
struct VcpuExit {
  enum class Kind { kStopped, kTripleFault, kError };
  Kind kind = Kind::kStopped;
  std::string detail;
};

class Vcpu {
 public:
  Vcpu(const Kvm& kvm, const Vm& vm, uint32_t index);
  ~Vcpu();
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  uint32_t index() const { return index_; }

  // CPUID, MSRs, FPU and LAPIC for every vCPU; registers and segments only when `entry` is given
  // (the boot CPU: the others wait for the guest's INIT/SIPI, which the in-kernel LAPIC handles).
  void Configure(const std::vector<kvm_cpuid_entry2>& cpuid, GuestMemory& memory, const x86_64::BootEntry* entry);

  // The vCPU's whole state, for a snapshot; its thread must not be in KVM_RUN. First it lets KVM
  // finish the instruction of the last exit (see CompletePendingExit). MSRs are those of
  // `msr_indices` that KVM will read (Kvm::MsrIndexList).
  VcpuState SaveState(const Kvm& kvm, const std::vector<uint32_t>& msr_indices);
  // Puts a saved state back, in place of Configure.
  void RestoreState(const VcpuState& state);

  // Runs the guest until `stop` is set (then kStopped) or the vCPU cannot go on.
  VcpuExit Run(const devices::Bus& pio, const devices::Bus& mmio, const std::atomic<bool>& stop);

  // Makes a running Run() return soon: from any thread, once the vCPU thread is recorded.
  void Kick();
  void SetThread(pthread_t thread) {
    std::lock_guard<std::mutex> lock(thread_mutex_);
    thread_ = thread;
    has_thread_ = true;
  }
  // The thread was joined: its id may now name another thread, which must never be signalled.
  void ForgetThread() {
    std::lock_guard<std::mutex> lock(thread_mutex_);
    has_thread_ = false;
  }

  // Blocks every signal on the calling (vCPU) thread except the one Kick() sends.
  static void PrepareThreadSignals();

 private:
  // KVM completes an exit's instruction (the OUT the VMM just handled, say) only when KVM_RUN is
  // entered again: with immediate_exit set, KVM_RUN does that and returns EINTR without running
  // the guest on. Saved without it, the instruction would run twice after a restore.
  void CompletePendingExit();
  void HandleIo(const devices::Bus& pio);
  void HandleMmio(const devices::Bus& mmio);

  uint32_t index_;
  Fd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  std::mutex thread_mutex_;  // Kick (any thread) against SetThread and ForgetThread
  pthread_t thread_{};
  bool has_thread_ = false;
};

}  // namespace vmm
