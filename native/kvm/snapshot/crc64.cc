#include "snapshot/crc64.h"

#include <array>
#include <cstring>

namespace vmm::snapshot {

namespace {
constexpr uint64_t kPolynomial = 0xc96c5795d7870f42;  // ECMA-182, bits reversed

// Slice-by-8: table[k][b] is the CRC of byte b followed by k zero bytes, so eight bytes fold in
// with eight lookups. A restore checks every data page of a snapshot's memory: this is its cost.
using Tables = std::array<std::array<uint64_t, 256>, 8>;
constexpr Tables MakeTables() {
  Tables t{};
  for (uint64_t i = 0; i < 256; ++i) {
    uint64_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
    t[0][i] = crc;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (size_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  }
  return t;
}
constexpr Tables kTables = MakeTables();
}  // namespace

uint64_t Crc64(const uint8_t* data, size_t size, uint64_t crc) {
  crc = ~crc;
  for (; size >= 8; data += 8, size -= 8) {
    uint64_t word;
    std::memcpy(&word, data, sizeof word);  // little-endian, as the reflected CRC reads bytes
    crc ^= word;
    crc = kTables[7][crc & 0xff] ^ kTables[6][(crc >> 8) & 0xff] ^ kTables[5][(crc >> 16) & 0xff] ^
          kTables[4][(crc >> 24) & 0xff] ^ kTables[3][(crc >> 32) & 0xff] ^ kTables[2][(crc >> 40) & 0xff] ^
          kTables[1][(crc >> 48) & 0xff] ^ kTables[0][crc >> 56];
  }
  for (; size > 0; ++data, --size) crc = kTables[0][(crc ^ *data) & 0xff] ^ (crc >> 8);
  return ~crc;
}

}  // namespace vmm::snapshot
