// Little-endian fields to and from a byte buffer, for snapshot sections. The reader is bounds-
// checked on every field: a snapshot file is input like any other, and a short or lying length
// throws SnapshotError instead of reading past the buffer.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "error.h"

namespace vmm::snapshot {

// A snapshot that cannot be used; the message says which file, why, and what to do.
class SnapshotError : public VmmError {
 public:
  using VmmError::VmmError;
};

class ByteWriter {
 public:
  // A trivially copyable value (an integer, or a KVM state struct) as its bytes.
  template <typename T>
  void Put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>, "only plain data goes in a snapshot");
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof value);
  }
  // A count, then that many values.
  template <typename T>
  void PutVector(const std::vector<T>& values) {
    Put(static_cast<uint32_t>(values.size()));
    for (const T& v : values) Put(v);
  }
  void PutBytes(const std::vector<uint8_t>& data) { PutVector(data); }
  void PutString(const std::string& text) { PutVector(std::vector<uint8_t>(text.begin(), text.end())); }

  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  // `what` names the data in errors ("the snapshot /path: vCPU 0").
  ByteReader(const uint8_t* data, size_t size, std::string what) : data_(data), left_(size), what_(std::move(what)) {}

  template <typename T>
  T Get() {
    static_assert(std::is_trivially_copyable_v<T>, "only plain data comes out of a snapshot");
    T value;
    std::memcpy(&value, Take(sizeof value), sizeof value);
    return value;
  }
  // A count, then that many values; a count that the bytes left cannot hold is an error before
  // anything is allocated.
  template <typename T>
  std::vector<T> GetVector() {
    const uint32_t count = Get<uint32_t>();
    if (count > left_ / sizeof(T)) throw SnapshotError(what_ + " is truncated (a list of " + std::to_string(count) + " items)");
    std::vector<T> values(count);
    if (count) std::memcpy(values.data(), Take(count * sizeof(T)), count * sizeof(T));
    return values;
  }
  std::vector<uint8_t> GetBytes() { return GetVector<uint8_t>(); }
  // `n` bytes, uncounted (their length came before, checked by the caller against left()).
  std::vector<uint8_t> GetRaw(size_t n) {
    const uint8_t* p = Take(n);
    return std::vector<uint8_t>(p, p + n);
  }
  std::string GetString() {
    const std::vector<uint8_t> bytes = GetBytes();
    return std::string(bytes.begin(), bytes.end());
  }
  // Throws unless every byte was read: trailing bytes mean a layout this code does not know.
  void ExpectEnd() const {
    if (left_ != 0) throw SnapshotError(what_ + " has " + std::to_string(left_) + " bytes more than expected");
  }
  size_t left() const { return left_; }

 private:
  const uint8_t* Take(size_t n) {
    if (n > left_) throw SnapshotError(what_ + " is truncated");
    const uint8_t* p = data_;
    data_ += n, left_ -= n;
    return p;
  }

  const uint8_t* data_;
  size_t left_;
  std::string what_;
};

}  // namespace vmm::snapshot
