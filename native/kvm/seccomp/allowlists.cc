// The system calls each VMM thread may make once the guest runs, x86-64. Setup (receiving files,
// creating the VM, vCPUs, eventfds, sockets to listen on) happens before, on the main thread.
// A missing entry shows as the VM ending in error, the forbidden call named ("the VMM made a
// system call its seccomp filter forbids: openat (257)"): add it here only after asking why that
// thread needs it.
#include "kvm_uapi.h"  // not <linux/kvm.h>: its C++ struct sizes give other ioctl numbers
#include <sys/socket.h>
#include <sys/syscall.h>

#include "seccomp/filter.h"

namespace vmm::seccomp {

namespace {
// What glibc and libstdc++ need on any of our threads: malloc's memory, locks, the vCPU kick's
// signal return, the monotonic clock (when the vDSO falls back), thread exit, abort(), and plain
// reads, writes and closes of fds the thread was given (eventfds, pipes, sockets).
std::vector<Rule> Common() {
  return {
      {SYS_read}, {SYS_write}, {SYS_close},
      {SYS_brk}, {SYS_mmap}, {SYS_munmap}, {SYS_mremap}, {SYS_mprotect}, {SYS_madvise},
      {SYS_futex}, {SYS_sched_yield}, {SYS_rt_sigreturn}, {SYS_rt_sigprocmask}, {SYS_restart_syscall},
      {SYS_clock_gettime}, {SYS_gettid}, {SYS_getpid}, {SYS_tgkill},
      {SYS_exit}, {SYS_exit_group},
  };
}

std::vector<Rule> Vcpu() {
  std::vector<Rule> rules = Common();
  // KVM_RUN on its own fd; KVM_IRQ_LINE for the legacy devices it emulates (serial, i8042).
  rules.push_back({SYS_ioctl, 1, {KVM_RUN, KVM_IRQ_LINE}});
  // A driver's reset of a virtio device, a register write, runs here: vsock then drops its
  // connections (their sockets leave its epoll set and close).
  rules.push_back({SYS_epoll_ctl});
  return rules;
}

std::vector<Rule> Device() {
  std::vector<Rule> rules = Common();
  rules.insert(rules.end(), {
      {SYS_epoll_wait}, {SYS_epoll_pwait}, {SYS_epoll_ctl},
      // virtio-blk.
      {SYS_pread64}, {SYS_pwrite64}, {SYS_preadv}, {SYS_pwritev}, {SYS_readv}, {SYS_writev}, {SYS_fdatasync},
      // virtio-rng.
      {SYS_getrandom},
      // virtio-vsock: the host side is Unix sockets only.
      {SYS_socket, 0, {AF_UNIX}}, {SYS_connect}, {SYS_accept}, {SYS_accept4}, {SYS_shutdown},
      {SYS_getsockopt}, {SYS_fcntl}, {SYS_recvfrom}, {SYS_sendto}, {SYS_recvmsg}, {SYS_sendmsg},
      // The serial port's interrupt, raised when console input arrives.
      {SYS_ioctl, 1, {KVM_IRQ_LINE}},
  });
  return rules;
}

// The VMM process's main thread once the guest runs: it serves the control channel (Stop,
// QueryStatus), counts the guest's resident pages, and frees the machine at the end (the vsock
// device removes its socket then).
std::vector<Rule> Main() {
  std::vector<Rule> rules = Common();
  rules.insert(rules.end(), {
      {SYS_poll}, {SYS_ppoll}, {SYS_recvmsg}, {SYS_sendmsg}, {SYS_mincore}, {SYS_unlink}, {SYS_epoll_ctl},
  });
  return rules;
}
// The main thread of a VMM taking a snapshot: once every vCPU has stopped, it lets KVM finish
// their last exits (KVM_RUN with immediate_exit), reads their state and the VM's, and writes the
// two files it was handed.
std::vector<Rule> MainSnapshotting() {
  std::vector<Rule> rules = Main();
  rules.insert(rules.end(), {
      {SYS_ioctl, 1, {KVM_RUN, KVM_CHECK_EXTENSION, KVM_GET_MP_STATE, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE,
                      KVM_GET_XSAVE2, KVM_GET_XCRS, KVM_GET_DEBUGREGS, KVM_GET_LAPIC, KVM_GET_TSC_KHZ, KVM_GET_CPUID2,
                      KVM_GET_MSRS, KVM_GET_VCPU_EVENTS, KVM_GET_PIT2, KVM_GET_CLOCK, KVM_GET_IRQCHIP}},
      {SYS_pwrite64}, {SYS_ftruncate}, {SYS_fsync},
  });
  return rules;
}
}  // namespace

const std::vector<Rule>& AllowlistFor(ThreadKind kind) {
  static const std::vector<Rule> vcpu = Vcpu(), device = Device(), main = Main(), snapshotting = MainSnapshotting();
  switch (kind) {
    case ThreadKind::kVcpu: return vcpu;
    case ThreadKind::kDevice: return device;
    case ThreadKind::kMain: return main;
    case ThreadKind::kMainSnapshotting: return snapshotting;
  }
  return main;
}

}  // namespace vmm::seccomp
