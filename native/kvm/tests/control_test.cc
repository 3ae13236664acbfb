// The VMM process's control channel: what the host decodes comes from a process next to the
// guest, so every malformed message must be refused with VmmError, never read past its end.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "control/messages.h"
#include "control/vsock_dir.h"
#include "control/wire.h"
#include "error.h"
#include "tests/check.h"

using namespace vmm::control;
using vmm::Fd;
using vmm::VmmError;

namespace {
Config SampleConfig() {
  Config c;
  c.kernel_name = "/cache/bzImage";
  c.has_initrd = true;
  c.initrd_name = "/cache/agent.cpio";
  c.cmdline = "console=ttyS0 quiet";
  c.memory_mib = 256;
  c.vcpus = 2;
  c.drives = {{{{"/a", 0}, {"/b", 4096}}, true}, {{{"/rw", 0}}, false}};
  c.has_vsock = true;
  c.vsock_cid = 3;
  c.vsock_socket = "vsock";
  c.jail_uid = c.jail_gid = 900000123;
  return c;
}

bool Refused(const std::string& bytes) {
  try {
    DecodeMessage(bytes);
    return false;
  } catch (const VmmError&) {
    return true;
  }
}
}  // namespace

TEST(control_config_round_trips_with_its_descriptor_count) {
  const Config c = SampleConfig();
  const Config d = DecodeConfig(Encode(c));
  CHECK_EQ(d.kernel_name, c.kernel_name);
  CHECK_EQ(d.initrd_name, c.initrd_name);
  CHECK_EQ(d.cmdline, c.cmdline);
  CHECK_EQ(d.memory_mib, c.memory_mib);
  CHECK_EQ(d.vcpus, c.vcpus);
  CHECK_EQ(d.drives.size(), size_t{2});
  CHECK_EQ(d.drives[0].parts[1].offset, uint64_t{4096});
  CHECK_EQ(d.drives[1].read_only, false);
  CHECK_EQ(d.vsock_socket, std::string("vsock"));
  CHECK_EQ(d.jail_uid, uint32_t{900000123});
  // kvm, kernel, initrd, console out and in, three parts, the vsock directory
  CHECK_EQ(d.FdCount(), size_t{9});
}

TEST(control_config_carries_a_snapshot_and_counts_its_files) {
  Config take = SampleConfig();
  take.snapshot = Config::Snapshot::kTake;
  take.snapshot_state_name = "/cache/snapshots/k/state";
  take.snapshot_memory_name = "/cache/snapshots/k/memory";
  take.snapshot_fingerprint = "vmrun snapshot 1; kernel /cache/bzImage";
  const Config t = DecodeConfig(Encode(take));
  CHECK(t.snapshot == Config::Snapshot::kTake);
  CHECK_EQ(t.snapshot_memory_name, take.snapshot_memory_name);
  CHECK_EQ(t.snapshot_fingerprint, take.snapshot_fingerprint);
  CHECK_EQ(t.FdCount(), size_t{11});  // the sample's nine, the state file and the memory file
  // Restoring, the kernel and initrd are neither sent nor counted.
  Config restore = take;
  restore.snapshot = Config::Snapshot::kRestore;
  CHECK_EQ(DecodeConfig(Encode(restore)).FdCount(), size_t{9});
  std::string bad_mode = Encode(restore);
  const size_t at = bad_mode.size() - (4 + take.snapshot_state_name.size()) - (4 + take.snapshot_memory_name.size()) -
                    (4 + take.snapshot_fingerprint.size()) - 1;
  CHECK_EQ(static_cast<int>(bad_mode[at]), 2);
  bad_mode[at] = 3;
  CHECK_THROWS(DecodeConfig(bad_mode), VmmError, "snapshot mode");
}

TEST(control_messages_round_trip) {
  Message exit{Type::kExit};
  exit.exit = {2, "triple fault at rip 0x1000", {128 << 20, 3 << 20, 12345}};
  const Message e = DecodeMessage(Encode(exit));
  CHECK_EQ(e.exit.kind, uint32_t{2});
  CHECK_EQ(e.exit.detail, exit.exit.detail);
  CHECK_EQ(e.exit.status.boot_timer_ns, uint64_t{12345});
  exit.exit.kind = 4;  // kSnapshotted
  CHECK_EQ(DecodeMessage(Encode(exit)).exit.kind, uint32_t{4});
  Message failed{Type::kFailed};
  failed.failure = {Failure::Kind::kSys, "KVM_CREATE_VM failed: EINVAL", "KVM_CREATE_VM", 22};
  const Message f = DecodeMessage(Encode(failed));
  CHECK(f.failure.kind == Failure::Kind::kSys);
  CHECK_EQ(f.failure.call, std::string("KVM_CREATE_VM"));
  CHECK_EQ(f.failure.err, uint32_t{22});
  Message reaped{Type::kReaped};
  reaped.wait_status = 9;
  CHECK_EQ(DecodeMessage(Encode(reaped)).wait_status, 9);
}

TEST(control_malformed_messages_are_refused_at_every_cut) {
  Message exit{Type::kExit};
  exit.exit = {3, "detail", {}};
  const std::string whole = Encode(exit);
  for (size_t n = 0; n < whole.size(); ++n) CHECK(Refused(whole.substr(0, n)));
  CHECK(Refused(whole + "x"));  // bytes left over
  std::string bad_kind = whole;
  bad_kind[4] = 9;
  CHECK(Refused(bad_kind));
  CHECK(Refused(Writer().U32(77).bytes()));  // an unknown type
  // A string claiming more bytes than the message holds, and one longer than the limit.
  CHECK(Refused(Writer().U32(static_cast<uint32_t>(Type::kCreated)).U32(0xffffffff).bytes()));
  CHECK(Refused(Writer().U32(static_cast<uint32_t>(Type::kCreated)).Str(std::string(kMaxDetail + 1, 'a')).bytes()));
  CHECK_THROWS(DecodeConfig(Encode(exit)), VmmError, "expected its config");
}

TEST(control_a_peer_that_closes_with_messages_unread_has_ended) {
  int pair[2];
  CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  vmm::Fd host(pair[0]);
  Send(pair[0], Encode(Message{Type::kQueryStatus}), {});  // never read
  close(pair[1]);
  std::string bytes;
  std::vector<vmm::Fd> fds;
  CHECK(!Receive(host.get(), bytes, fds));  // ECONNRESET: an end, not a broken protocol
}

TEST(control_error_exit_from_a_signal_handler_decodes) {
  char buf[256];
  const size_t n = EncodeErrorExit(buf, sizeof buf, "forbidden: openat (257)", 23);
  const Message m = DecodeMessage(std::string(buf, n));
  CHECK(m.type == Type::kExit);
  CHECK_EQ(m.exit.kind, uint32_t{3});
  CHECK_EQ(m.exit.detail, std::string("forbidden: openat (257)"));
  CHECK_EQ(EncodeErrorExit(buf, 20, "too long for the buffer", 23), size_t{0});
}

TEST(control_channel_carries_descriptors_and_refuses_oversized_messages) {
  int pair[2];
  CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  Fd a(pair[0]), b(pair[1]);
  int pipe_fds[2];
  CHECK_EQ(pipe(pipe_fds), 0);
  Fd r(pipe_fds[0]), w(pipe_fds[1]);
  Send(a.get(), Encode(Message{Type::kStart}), {w.get()});
  std::string bytes;
  std::vector<Fd> fds;
  CHECK(Receive(b.get(), bytes, fds));
  CHECK(DecodeMessage(bytes).type == Type::kStart);
  CHECK_EQ(fds.size(), size_t{1});
  CHECK_EQ(write(fds[0].get(), "x", 1), ssize_t{1});  // the pipe's write end, passed over
  char c = 0;
  CHECK_EQ(read(r.get(), &c, 1), ssize_t{1});
  const std::string huge(kMaxMessageBytes + 100, 'x');
  CHECK_EQ(send(a.get(), huge.data(), huge.size(), 0), static_cast<ssize_t>(huge.size()));
  CHECK_THROWS(Receive(b.get(), bytes, fds), VmmError, "truncated");
  a.Reset();
  CHECK(!Receive(b.get(), bytes, fds));  // the end of the stream
}

namespace {
// Whether `uid` may connect to the Unix socket at `path` (a child process tries, as that uid).
bool CanConnect(uid_t uid, const std::string& path) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) _exit(2);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    _exit(connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Fd Listen(const std::string& path) {
  Fd s(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(s.get(), 4) != 0) return Fd();
  return s;
}
}  // namespace

TEST(vsock_directory_lets_the_jail_uid_in_and_nobody_else) {
  if (geteuid() != 0) {  // the check needs other uids
    std::printf("# skip vsock_directory_lets_the_jail_uid_in_and_nobody_else: needs root\n");
    return;
  }
  char tmpl[] = "/tmp/vmrun-acl-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string before = dir + "/v_1024", after = dir + "/v_1025";
  Fd early = Listen(before);
  CHECK(early.valid());
  Fd dir_fd(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  CHECK_NOTHROW(GrantVsockDirectory(dir_fd.get(), 900000042));
  Fd late = Listen(after);  // made later: its maker opens it up
  CHECK(late.valid());
  CHECK_EQ(chmod(after.c_str(), 0666), 0);
  CHECK(CanConnect(900000042, before));
  CHECK(CanConnect(900000042, after));
  CHECK(!CanConnect(900000043, before));
  CHECK(!CanConnect(900000043, after));  // the directory keeps it out
  unlink(before.c_str());
  unlink(after.c_str());
  rmdir(dir.c_str());
}
