#include "snapshot/crc64.h"

#include <array>

namespace vmm::snapshot {

namespace {
constexpr uint64_t kPolynomial = 0xc96c5795d7870f42;  // ECMA-182, bits reversed

constexpr std::array<uint64_t, 256> MakeTable() {
  std::array<uint64_t, 256> table{};
  for (uint64_t i = 0; i < 256; ++i) {
    uint64_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint64_t, 256> kTable = MakeTable();
}  // namespace

uint64_t Crc64(const uint8_t* data, size_t size, uint64_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = kTable[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

}  // namespace vmm::snapshot
