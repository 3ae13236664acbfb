// CRC-64/XZ (ECMA-182, reflected; xz's check): what a snapshot file carries to refuse a file that
// changed on disk, however slightly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmm::snapshot {

// The CRC of `size` bytes at `data`, continuing `crc` (0 to start).
uint64_t Crc64(const uint8_t* data, size_t size, uint64_t crc = 0);

}  // namespace vmm::snapshot
