#include "snapshot/snapshot_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "fd.h"
#include "snapshot/crc64.h"
#include "snapshot/file_io.h"

namespace vmm::snapshot {

namespace {
// Deleting a snapshot is always safe: vmrun takes a new one when it finds none.
const char kRemedy[] = ": delete it and vmrun takes a new snapshot";
}  // namespace

const std::vector<uint8_t>& StateFile::Only(uint32_t tag, const std::string& file) const {
  const std::vector<const Section*> found = All(tag);
  if (found.size() != 1) {
    throw SnapshotError("the snapshot " + file + " has " + std::to_string(found.size()) + " sections tagged " +
                        std::to_string(tag) + " where it needs one" + kRemedy);
  }
  return found[0]->bytes;
}

std::vector<const Section*> StateFile::All(uint32_t tag) const {
  std::vector<const Section*> found;
  for (const Section& s : sections) {
    if (s.tag == tag) found.push_back(&s);
  }
  return found;
}

std::vector<uint8_t> EncodeStateFile(const StateFile& state) {
  ByteWriter w;
  for (char c : kMagic) w.Put(c);
  w.Put(kFormatVersion);
  w.PutString(state.fingerprint);
  w.Put(static_cast<uint32_t>(state.sections.size()));
  for (const Section& s : state.sections) {
    w.Put(s.tag);
    w.Put(static_cast<uint64_t>(s.bytes.size()));
    w.bytes().insert(w.bytes().end(), s.bytes.begin(), s.bytes.end());
  }
  w.Put(Crc64(w.bytes().data(), w.bytes().size()));
  return std::move(w.bytes());
}

StateFile DecodeStateFile(const uint8_t* data, size_t size, const std::string& expected_fingerprint, const std::string& file) {
  const std::string what = "the snapshot " + file;
  if (size < sizeof kMagic || std::memcmp(data, kMagic, sizeof kMagic) != 0) {
    throw SnapshotError(what + " is not a vmrun snapshot" + kRemedy);
  }
  if (size < sizeof kMagic + sizeof(uint32_t) + sizeof(uint64_t)) throw SnapshotError(what + " is truncated" + kRemedy);
  uint32_t version;
  std::memcpy(&version, data + sizeof kMagic, sizeof version);
  if (version != kFormatVersion) {
    throw SnapshotError(what + " has format version " + std::to_string(version) + ", and this vmrun reads version " +
                        std::to_string(kFormatVersion) + kRemedy);
  }
  // The checksum first: nothing else in a damaged file is worth believing.
  const size_t body = size - sizeof(uint64_t);
  uint64_t stored;
  std::memcpy(&stored, data + body, sizeof stored);
  if (Crc64(data, body) != stored) throw SnapshotError(what + " is corrupt (its checksum does not match)" + kRemedy);

  ByteReader r(data + sizeof kMagic + sizeof version, body - sizeof kMagic - sizeof version, what);
  try {
    StateFile state;
    state.fingerprint = r.GetString();
    if (state.fingerprint != expected_fingerprint) {
      throw SnapshotError(what + " was taken for " + state.fingerprint + ", not for this run's " + expected_fingerprint + kRemedy);
    }
    const uint32_t count = r.Get<uint32_t>();
    if (count > kMaxSections) throw SnapshotError(what + " claims " + std::to_string(count) + " sections");
    for (uint32_t i = 0; i < count; ++i) {
      Section s;
      s.tag = r.Get<uint32_t>();
      const uint64_t length = r.Get<uint64_t>();
      if (length > r.left()) throw SnapshotError(what + " is truncated (section " + std::to_string(i) + ")");
      s.bytes = r.GetRaw(length);
      state.sections.push_back(std::move(s));
    }
    r.ExpectEnd();
    return state;
  } catch (const SnapshotError& e) {
    const std::string message = e.what();
    if (message.find(kRemedy) != std::string::npos) throw;
    throw SnapshotError(message + kRemedy);
  }
}

void WriteFileAtomically(const std::string& path, const std::vector<uint8_t>& bytes) {
  WriteFileAtomically(path, [&](int fd, const std::string& name) { WriteAt(fd, bytes.data(), bytes.size(), 0, name); });
}

std::vector<uint8_t> ReadWholeFile(const std::string& path, uint64_t max_bytes) {
  Fd fd(CheckSys(open(path.c_str(), O_RDONLY | O_CLOEXEC), "open", path));
  return ReadWholeFile(fd.get(), path, max_bytes);
}

std::vector<uint8_t> ReadWholeFile(int fd, const std::string& name, uint64_t max_bytes) {
  struct stat st;
  CheckSys(fstat(fd, &st), "fstat", name);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > max_bytes) {
    throw SnapshotError("the snapshot " + name + " is not a file of at most " + std::to_string(max_bytes) + " bytes" + kRemedy);
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  ReadAt(fd, bytes.data(), bytes.size(), 0, name);
  return bytes;
}

}  // namespace vmm::snapshot
