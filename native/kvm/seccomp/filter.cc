#include "seccomp/filter.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "error.h"

namespace vmm::seccomp {

namespace {
constexpr uint32_t kArgLow(int i) { return offsetof(seccomp_data, args) + 8 * i; }  // little endian

sock_filter Statement(uint16_t code, uint32_t k) { return BPF_STMT(code, k); }
sock_filter Jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { return BPF_JUMP(code, k, jt, jf); }

// Appends: if the argument's low 32 bits are one of `values`, allow; else trap.
void CheckArg(std::vector<sock_filter>& out, int arg, const std::vector<uint32_t>& values) {
  out.push_back(Statement(BPF_LD | BPF_W | BPF_ABS, kArgLow(arg)));
  for (uint32_t v : values) {
    out.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, v, 0, 1));
    out.push_back(Statement(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  out.push_back(Statement(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
}

int report_fd = -1;
ViolationEncoder report_encode = nullptr;

// Async-signal-safe: no allocation, no locks, only write and exit_group (on every allowlist).
void ReportViolation(int, siginfo_t* info, void* context) {
  char detail[160];
  size_t len = 0;
  auto append = [&](const char* s) {
    while (*s && len < sizeof detail) detail[len++] = *s++;
  };
  append("the VMM made a system call its seccomp filter forbids: ");
  append(SyscallName(info->si_syscall));
  char number[24];
  int n = sizeof number;
  number[--n] = 0;
  number[--n] = ')';
  unsigned long v = static_cast<unsigned long>(info->si_syscall);
  do number[--n] = static_cast<char>('0' + v % 10);
  while ((v /= 10) && n > 2);
  number[--n] = '(';
  number[--n] = ' ';
  append(number + n);
  if (info->si_syscall == SYS_ioctl) {  // which ioctl says more than the call
    const auto request = static_cast<unsigned long>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RSI]);
    char hex[] = ", request 0x00000000";
    for (int i = 0; i < 8; ++i) hex[sizeof hex - 2 - i] = "0123456789abcdef"[(request >> (4 * i)) & 0xf];
    append(hex);
  }
  char record[256];
  const size_t size = report_encode(record, sizeof record, detail, len);
  if (size) (void)!write(report_fd, record, size);
  syscall(SYS_exit_group, 128 + SIGSYS);
}
}  // namespace

std::vector<sock_filter> Compile(const std::vector<Rule>& rules) {
  std::vector<sock_filter> out = {
      // Another ABI (i386, x32) would renumber every call: refuse it outright.
      Statement(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      Jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      Statement(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      Statement(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      Jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, 0, 1),
      Statement(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
  };
  for (const Rule& rule : rules) {
    if (rule.arg < 0) {
      out.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(rule.nr), 0, 1));
      out.push_back(Statement(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
      continue;
    }
    // The argument check ends in a return, so the accumulator need not be reloaded after it.
    if (rule.arg > 5 || rule.values.empty()) throw VmmError("seccomp: a rule checks one of arguments 0-5 against values");
    std::vector<sock_filter> check;
    CheckArg(check, rule.arg, rule.values);
    if (check.size() > 255) throw VmmError("seccomp: too many argument values for one rule");
    out.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(rule.nr), 0, static_cast<uint8_t>(check.size())));
    out.insert(out.end(), check.begin(), check.end());
  }
  out.push_back(Statement(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
  if (out.size() > BPF_MAXINSNS) throw VmmError("seccomp: the filter is too long");
  return out;
}

void InstallOnThisThread(ThreadKind kind) {
  std::vector<sock_filter> program = Compile(AllowlistFor(kind));
  sock_fprog prog{static_cast<unsigned short>(program.size()), program.data()};
  CheckSys(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS");
  // No SECCOMP_FILTER_FLAG_TSYNC: this thread only.
  CheckSys(static_cast<int>(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)), "seccomp");
}

void InstallViolationReporter(int fd, ViolationEncoder encode) {
  report_fd = fd;
  report_encode = encode;
  struct sigaction action {};
  action.sa_sigaction = ReportViolation;
  action.sa_flags = SA_SIGINFO;
  sigfillset(&action.sa_mask);
  CheckSys(sigaction(SIGSYS, &action, nullptr), "sigaction(SIGSYS)");
}

}  // namespace vmm::seccomp
