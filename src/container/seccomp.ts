/**
 * The seccomp profile of every vmrun container, as data: docker's effect (moby's default
 * profile) for a container with docker's default capabilities. An allowlist: a system call not
 * named here fails with EPERM, so one that a newer kernel adds is refused until it is reviewed.
 * Refused outright (EPERM): what reaches the host kernel's shared state or widens its attack
 * surface (keyrings, bpf, perf, userfaultfd, io_uring, kexec and modules, new namespaces, mounts,
 * the clock, swap, quotas, NUMA policy, other processes' memory). clone3 fails with ENOSYS, as
 * under docker, so that libc falls back to clone, whose namespace flags are then checked.
 */

/** x86-64 system calls a container may make, by name (libseccomp's names). */
const ALLOWED = `
  accept accept4 access adjtimex alarm arch_prctl bind brk capget capset chdir chmod chown chroot
  clock_getres clock_gettime clock_nanosleep close close_range connect copy_file_range creat dup dup2
  dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2 execve
  execveat exit exit_group faccessat faccessat2 fadvise64 fallocate fanotify_mark fchdir fchmod
  fchmodat fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr
  fstat fstatfs fsync ftruncate futex futex_waitv futimesat getcpu getcwd getdents getdents64 getegid
  geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
  getresgid getresuid getrlimit get_robust_list getrusage getsid getsockname getsockopt
  get_thread_area gettid gettimeofday getuid getxattr inotify_add_watch inotify_init inotify_init1
  inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents ioprio_get ioprio_set
  io_setup io_submit kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
  lgetxattr link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise
  membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap
  mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl
  msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep newfstatat open openat openat2 pause
  pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64
  preadv preadv2 prlimit64 process_madvise process_mrelease pselect6 ptrace pwrite64 pwritev pwritev2
  read readahead readlink readlinkat readv recvfrom recvmmsg recvmsg remap_file_pages removexattr
  rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
  rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity
  sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
  sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
  seccomp select semctl semget semop semtimedop sendfile sendmmsg sendmsg sendto setdomainname
  setfsgid setfsuid setgid setgroups sethostname setitimer set_robust_list setpgid setpriority
  setregid setresgid setresuid setreuid setrlimit setsid setsockopt set_thread_area set_tid_address
  setuid setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 socketpair splice
  stat statfs statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
  timer_delete timerfd_create timerfd_gettime timerfd_settime timer_getoverrun timer_gettime
  timer_settime times tkill truncate umask uname unlink unlinkat utime utimensat utimes vfork
  vmsplice wait4 waitid write writev
`.trim().split(/\s+/);

/** The same for 32-bit programs (the i386 ABI's own names; the others are shared). */
const ALLOWED_32BIT = `
  _llseek _newselect chown32 clock_gettime64 clock_nanosleep_time64 fadvise64_64 fchown32 fcntl64
  fstat64 fstatat64 fstatfs64 ftruncate64 futex_time64 getegid32 geteuid32 getgid32 getgroups32
  getresgid32 getresuid32 getuid32 lchown32 lstat64 mmap2 ppoll_time64 pselect6_time64 recv
  recvmmsg_time64 rt_sigtimedwait_time64 send sendfile64 setfsgid32 setfsuid32 setgid32 setgroups32
  setregid32 setresgid32 setresuid32 setreuid32 setuid32 sigaction sigpending sigprocmask sigreturn
  sigsuspend socketcall stat64 statfs64 timer_gettime64 timer_settime64 timerfd_gettime64
  timerfd_settime64 truncate64 ugetrlimit utimensat_time64 waitpid
`.trim().split(/\s+/);

// Linux's namespace flags for clone(2): a container may not make new namespaces.
const CLONE_NEW_NAMESPACES = 0x7e020000;
// AF_VSOCK: docker refuses sockets of the host's hypervisor transport.
const AF_VSOCK = 40;
// personality(2) values docker allows: Linux's default, UNAME26, ADDR_LIMIT_32BIT combos, and the query.
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
const EPERM = 1;
const ENOSYS = 38;

/** runtime-spec config.md's linux.seccomp for a vmrun container. */
export function seccompProfile(): object {
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: [...ALLOWED, ...ALLOWED_32BIT], action: 'SCMP_ACT_ALLOW' },
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NEW_NAMESPACES, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }] },
      ...PERSONALITIES.map((value) => ({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] })),
    ],
  };
}

/** What every container may run at most, processes and threads together. */
export const PIDS_LIMIT = 4096;
