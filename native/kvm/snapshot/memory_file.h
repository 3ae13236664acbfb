// Guest RAM as a snapshot keeps it: a sparse file laid out as the RAM mapping is (GuestMemory),
// holding only the pages the guest ever touched and that are not all zeros, the rest holes.
// A restore maps it copy-on-write (GuestMemory's file backing): every VM restored from one
// snapshot shares its clean pages through the page cache. Its checksum covers each data page with
// its offset, so that checking it costs what the guest's pages cost, not what its RAM size does.
#pragma once

#include <cstdint>
#include <string>

#include "vstate/memory.h"

namespace vmm::snapshot {

// Writes `memory` to `path` (a temporary name, fsync, rename) and returns its checksum.
uint64_t WriteMemoryFile(const GuestMemory& memory, const std::string& path);
// The same into an open file (emptied first, synced after), `name` naming it in errors.
uint64_t WriteMemoryFile(const GuestMemory& memory, int fd, const std::string& name);
// The checksum of an open memory file of `size` bytes, as WriteMemoryFile computed it; throws
// SnapshotError naming `path` when the file is not of that size.
uint64_t MemoryFileChecksum(int fd, uint64_t size, const std::string& path);

}  // namespace vmm::snapshot
