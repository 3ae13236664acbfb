// A snapshot's state file: everything KVM and the devices hold for a paused VM, guest memory
// aside (that is a file of its own, mapped copy-on-write at restore). Layout, little-endian:
//
//   "VMRUNSNP"  magic, 8 bytes
//   u32         format version (kFormatVersion)
//   string      fingerprint: what the snapshot fits (vmrun, kernel, agent, CPU, vCPUs, memory);
//               a restore refuses one that differs from its own
//   u32         section count, then each section: u32 tag, u64 length, that many bytes
//   u64         CRC-64/XZ of every byte before it
//
// (a string is a u32 length and its bytes). A file is written under a temporary name, synced
// and renamed into place, so a reader sees a whole file or none.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "snapshot/byte_stream.h"

namespace vmm::snapshot {

constexpr char kMagic[8] = {'V', 'M', 'R', 'U', 'N', 'S', 'N', 'P'};
constexpr uint32_t kFormatVersion = 1;
// Far above what a VM has (the VM, each vCPU, each device), so that a hostile count is refused
// before it is believed.
constexpr uint32_t kMaxSections = 4096;

struct Section {
  uint32_t tag;
  std::vector<uint8_t> bytes;
};

struct StateFile {
  std::string fingerprint;
  std::vector<Section> sections;

  // The bytes of the only section tagged `tag`; throws SnapshotError naming `file` otherwise.
  const std::vector<uint8_t>& Only(uint32_t tag, const std::string& file) const;
  // Every section tagged `tag`, in file order.
  std::vector<const Section*> All(uint32_t tag) const;
};

std::vector<uint8_t> EncodeStateFile(const StateFile& state);
// Checks the magic, version, checksum, lengths and fingerprint before it believes anything;
// `file` names the file in errors, each one line that says what to do.
StateFile DecodeStateFile(const uint8_t* data, size_t size, const std::string& expected_fingerprint, const std::string& file);

// Writes `bytes` to `path` whole or not at all (file_io.h).
void WriteFileAtomically(const std::string& path, const std::vector<uint8_t>& bytes);
// The whole of a file (at most `max_bytes`, an error beyond).
std::vector<uint8_t> ReadWholeFile(const std::string& path, uint64_t max_bytes);
// The same of an open file, `name` naming it in errors.
std::vector<uint8_t> ReadWholeFile(int fd, const std::string& name, uint64_t max_bytes);

}  // namespace vmm::snapshot
