// The VMM threads' seccomp filters, run for real: a child process installs one on itself and
// makes a call; what is listed returns, what is not kills it with SIGSYS.
#include <fcntl.h>
#include "kvm_uapi.h"
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "control/messages.h"
#include "control/wire.h"
#include "seccomp/filter.h"
#include "tests/check.h"

using vmm::seccomp::ThreadKind;

namespace {
// How a child that installs `kind`'s filter and then runs `call` ends: "exit N" or "signal N".
std::string Outcome(ThreadKind kind, const std::function<void()>& call) {
  const pid_t pid = fork();
  if (pid == 0) {
    vmm::seccomp::InstallOnThisThread(kind);
    call();
    syscall(SYS_exit_group, 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status)) : "exit " + std::to_string(WEXITSTATUS(status));
}

const std::string kKilled = "signal " + std::to_string(SIGSYS);
}  // namespace

TEST(seccomp_vcpu_thread_runs_kvm_and_nothing_else) {
  // A bad fd: the call fails with EBADF, which is fine; only the filter's answer matters.
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!ioctl(-1, KVM_RUN, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!ioctl(-1, KVM_IRQ_LINE, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!write(-1, "x", 1); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!ioctl(-1, KVM_SET_USER_MEMORY_REGION, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!ioctl(-1, KVM_CREATE_VCPU, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!open("/etc/passwd", O_RDONLY); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!socket(AF_UNIX, SOCK_STREAM, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!syscall(SYS_execve, "/bin/true", nullptr, nullptr); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kVcpu, [] { (void)!syscall(SYS_fork); }), kKilled);
}

TEST(seccomp_device_thread_reaches_unix_sockets_only) {
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!socket(AF_UNIX, SOCK_STREAM, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!pread(-1, nullptr, 0, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!ioctl(-1, KVM_IRQ_LINE, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!socket(AF_INET, SOCK_STREAM, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!socket(AF_NETLINK, SOCK_RAW, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!ioctl(-1, KVM_RUN, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!openat(AT_FDCWD, "/etc/passwd", O_RDONLY); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!syscall(SYS_ptrace, 0, 0, 0, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!syscall(SYS_clone3, nullptr, 0); }), kKilled);
}

// Only a VMM taking a snapshot may read vCPU state and write files, and then still no more.
TEST(seccomp_main_thread_saves_a_snapshot_only_when_taking_one) {
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!ioctl(-1, KVM_GET_REGS, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!ioctl(-1, KVM_RUN, 0); }), std::string("exit 0"));
  // Ioctls whose structs end in a flexible array, numbered as vcpu.cc numbers them.
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!ioctl(-1, KVM_GET_XSAVE2, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!ioctl(-1, KVM_GET_MSRS, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!ioctl(-1, KVM_GET_CPUID2, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!pwrite(-1, "x", 1, 0); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!fsync(-1); }), std::string("exit 0"));
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!ioctl(-1, KVM_SET_REGS, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kMainSnapshotting, [] { (void)!openat(AT_FDCWD, "/etc/passwd", O_RDONLY); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kMain, [] { (void)!ioctl(-1, KVM_GET_REGS, 0); }), kKilled);
  CHECK_EQ(Outcome(ThreadKind::kMain, [] { (void)!pwrite(-1, "x", 1, 0); }), kKilled);
}

// x32's numbers alias x86-64's plus a bit: a filter that compared numbers only would let them by.
TEST(seccomp_refuses_the_x32_abi) {
  CHECK_EQ(Outcome(ThreadKind::kDevice, [] { (void)!syscall(0x40000000 | SYS_getpid); }), kKilled);
}

namespace {
// What the violation reporter tells the host when a kVcpu thread makes `call`.
std::string ReportedViolation(const std::function<void()>& call) {
  int pair[2];
  CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    vmm::seccomp::InstallViolationReporter(pair[1], vmm::control::EncodeErrorExit);
    vmm::seccomp::InstallOnThisThread(ThreadKind::kVcpu);
    call();
    syscall(SYS_exit_group, 0);
  }
  close(pair[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGSYS);
  std::string bytes;
  std::vector<vmm::Fd> fds;
  CHECK(vmm::control::Receive(pair[0], bytes, fds));
  close(pair[0]);
  const vmm::control::Message m = vmm::control::DecodeMessage(bytes);
  CHECK_EQ(m.exit.kind, uint32_t{3});
  return m.exit.detail;
}
}  // namespace

TEST(seccomp_violation_is_reported_by_name_before_the_process_ends) {
  CHECK_EQ(ReportedViolation([] { (void)!openat(AT_FDCWD, "/etc/passwd", O_RDONLY); }),
           std::string("the VMM made a system call its seccomp filter forbids: openat (257)"));
  // An ioctl is named by its request too: which one matters more than the call.
  CHECK_EQ(ReportedViolation([] { (void)!ioctl(-1, KVM_CREATE_VCPU, 0); }),
           std::string("the VMM made a system call its seccomp filter forbids: ioctl (16), request 0x0000ae41"));
}
