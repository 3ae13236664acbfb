// The file handling a snapshot's files share: a file written whole or not at all, and reads and
// writes at an offset that finish what a short read or write left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace vmm::snapshot {

// Creates a temporary file beside `path`, has `fill` write it (its descriptor, its name for
// errors), syncs it and renames it to `path`; on any error the temporary file is removed.
void WriteFileAtomically(const std::string& path, const std::function<void(int fd, const std::string& name)>& fill);
// All `len` bytes at `offset`; `name` names the file in errors.
void WriteAt(int fd, const uint8_t* data, size_t len, uint64_t offset, const std::string& name);
// All `len` bytes at `offset`; SnapshotError when the file ends first.
void ReadAt(int fd, uint8_t* data, size_t len, uint64_t offset, const std::string& name);

}  // namespace vmm::snapshot
