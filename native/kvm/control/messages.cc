#include "control/messages.h"

#include <cstring>

#include "control/wire.h"
#include "error.h"

namespace vmm::control {

namespace {
constexpr size_t kMaxName = 4096;
constexpr uint32_t kMaxDrives = 16;
constexpr uint32_t kMaxParts = 128;
constexpr uint32_t kMaxFilesystems = 8;
constexpr size_t kMaxTag = 36;

void PutStatus(Writer& w, const Status& s) { w.U64(s.guest_bytes).U64(s.guest_resident_bytes).U64(s.boot_timer_ns); }

Status GetStatus(Reader& r) {
  Status s;
  s.guest_bytes = r.U64();
  s.guest_resident_bytes = r.U64();
  s.boot_timer_ns = r.U64();
  return s;
}
}  // namespace

size_t Config::FdCount() const {
  size_t n = 3 + (boots_kernel() ? 1 + (has_initrd ? 1 : 0) : 0) + (snapshot != Snapshot::kNone ? 2 : 0) +
             (has_net ? 1 : 0) + (has_vsock ? 1 : 0);
  for (const Drive& d : drives) n += d.parts.size();
  n += fs_tags.size();
  return n;
}

std::string Encode(const Config& c) {
  Writer w;
  w.U32(static_cast<uint32_t>(Type::kConfig)).Str(c.kernel_name).U8(c.has_initrd).Str(c.initrd_name).Str(c.cmdline);
  w.U64(c.memory_mib).U32(c.vcpus).U32(static_cast<uint32_t>(c.drives.size()));
  for (const Config::Drive& d : c.drives) {
    w.U8(d.read_only).U32(static_cast<uint32_t>(d.parts.size()));
    for (const Config::Part& p : d.parts) w.Str(p.name).U64(p.offset);
  }
  w.U8(c.has_vsock).U64(c.vsock_cid).Str(c.vsock_socket).U8(c.has_net).Str(c.net_mac);
  w.U32(static_cast<uint32_t>(c.fs_tags.size()));
  for (const std::string& tag : c.fs_tags) w.Str(tag);
  w.U32(c.jail_uid).U32(c.jail_gid);
  w.U8(static_cast<uint8_t>(c.snapshot)).Str(c.snapshot_state_name).Str(c.snapshot_memory_name).Str(c.snapshot_fingerprint);
  return w.bytes();
}

Config DecodeConfig(const std::string& bytes) {
  Reader r(bytes);
  if (r.U32() != static_cast<uint32_t>(Type::kConfig)) throw VmmError("the VMM expected its config first");
  Config c;
  c.kernel_name = r.Str(kMaxName);
  c.has_initrd = r.U8();
  c.initrd_name = r.Str(kMaxName);
  c.cmdline = r.Str(kMaxMessageBytes);  // the kernel's own limit is checked, and named, later
  c.memory_mib = r.U64();
  c.vcpus = r.U32();
  const uint32_t drives = r.U32();
  if (drives > kMaxDrives) throw VmmError("malformed control message: too many drives");
  for (uint32_t i = 0; i < drives; ++i) {
    Config::Drive d;
    d.read_only = r.U8();
    const uint32_t parts = r.U32();
    if (parts > kMaxParts) throw VmmError("malformed control message: too many drive parts");
    for (uint32_t j = 0; j < parts; ++j) {
      Config::Part p;
      p.name = r.Str(kMaxName);
      p.offset = r.U64();
      d.parts.push_back(std::move(p));
    }
    c.drives.push_back(std::move(d));
  }
  c.has_vsock = r.U8();
  c.vsock_cid = r.U64();
  c.vsock_socket = r.Str(kMaxName);
  c.has_net = r.U8();
  c.net_mac = r.Str(6);
  if (c.has_net && c.net_mac.size() != 6) throw VmmError("malformed control message: a MAC address is 6 bytes");
  const uint32_t filesystems = r.U32();
  if (filesystems > kMaxFilesystems) throw VmmError("malformed control message: too many filesystems");
  for (uint32_t i = 0; i < filesystems; ++i) c.fs_tags.push_back(r.Str(kMaxTag));
  c.jail_uid = r.U32();
  c.jail_gid = r.U32();
  const uint8_t snapshot = r.U8();
  if (snapshot > static_cast<uint8_t>(Config::Snapshot::kRestore)) throw VmmError("malformed control message: snapshot mode");
  c.snapshot = static_cast<Config::Snapshot>(snapshot);
  c.snapshot_state_name = r.Str(kMaxName);
  c.snapshot_memory_name = r.Str(kMaxName);
  c.snapshot_fingerprint = r.Str(kMaxName);
  r.End();
  return c;
}

std::string Encode(const Message& m) {
  Writer w;
  w.U32(static_cast<uint32_t>(m.type));
  switch (m.type) {
    case Type::kProcess: w.U32(m.pid); break;
    case Type::kCreated: w.Str(m.summary); break;
    case Type::kFailed:
      w.U8(static_cast<uint8_t>(m.failure.kind)).Str(m.failure.message).Str(m.failure.call).U32(m.failure.err);
      break;
    case Type::kStatus: PutStatus(w, m.status); break;
    case Type::kExit:
      w.U32(m.exit.kind).Str(m.exit.detail);
      PutStatus(w, m.exit.status);
      break;
    case Type::kReaped: w.U32(static_cast<uint32_t>(m.wait_status)); break;
    default: break;  // kStart, kStop, kQueryStatus: the type alone
  }
  return w.bytes();
}

Message DecodeMessage(const std::string& bytes) {
  Reader r(bytes);
  Message m;
  m.type = static_cast<Type>(r.U32());
  switch (m.type) {
    case Type::kStart: case Type::kStop: case Type::kQueryStatus: break;
    case Type::kProcess: m.pid = r.U32(); break;
    case Type::kCreated: m.summary = r.Str(kMaxDetail); break;
    case Type::kFailed: {
      const uint8_t kind = r.U8();
      if (kind > static_cast<uint8_t>(Failure::Kind::kKvmUnavailable)) throw VmmError("malformed control message: failure kind");
      m.failure.kind = static_cast<Failure::Kind>(kind);
      m.failure.message = r.Str(kMaxDetail);
      m.failure.call = r.Str(64);
      m.failure.err = r.U32();
      break;
    }
    case Type::kStatus: m.status = GetStatus(r); break;
    case Type::kExit:
      m.exit.kind = r.U32();
      if (m.exit.kind > 4) throw VmmError("malformed control message: exit kind");
      m.exit.detail = r.Str(kMaxDetail);
      m.exit.status = GetStatus(r);
      break;
    case Type::kReaped: m.wait_status = static_cast<int32_t>(r.U32()); break;
    default: throw VmmError("malformed control message: unknown type " + std::to_string(static_cast<uint32_t>(m.type)));
  }
  r.End();
  return m;
}

size_t EncodeErrorExit(char* out, size_t cap, const char* detail, size_t len) {
  const uint32_t head[3] = {static_cast<uint32_t>(Type::kExit), 3, static_cast<uint32_t>(len)};
  const size_t size = sizeof head + len + 3 * sizeof(uint64_t);
  if (size > cap || len > kMaxDetail) return 0;
  std::memcpy(out, head, sizeof head);
  std::memcpy(out + sizeof head, detail, len);
  std::memset(out + sizeof head + len, 0, 3 * sizeof(uint64_t));  // Status unknown
  return size;
}

}  // namespace vmm::control
