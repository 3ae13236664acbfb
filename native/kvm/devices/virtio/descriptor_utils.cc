#include "devices/virtio/descriptor_utils.h"

#include <algorithm>
#include <cstring>

namespace vmm::devices::virtio {

BufferCursor::BufferCursor(std::vector<Buffer> buffers) : buffers_(std::move(buffers)) {
  for (const Buffer& b : buffers_) available_ += b.len;
}

std::vector<iovec> BufferCursor::Take(uint64_t len) {
  std::vector<iovec> out;
  while (len > 0 && index_ < buffers_.size()) {
    const Buffer& b = buffers_[index_];
    const uint64_t n = std::min<uint64_t>(b.len - offset_, len);
    if (n > 0) out.push_back({b.data + offset_, static_cast<size_t>(n)});
    len -= n, offset_ += n, available_ -= n, consumed_ += n;
    if (offset_ == b.len) ++index_, offset_ = 0;
  }
  return out;
}

bool BufferCursor::SplitAt(uint64_t at, BufferCursor& rest) {
  if (consumed_ != 0 || at > available_) return false;
  std::vector<Buffer> head, tail;
  uint64_t left = at;
  for (const Buffer& b : buffers_) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(b.len, left));
    if (n > 0) head.push_back({b.data, n});
    if (n < b.len) tail.push_back({b.data + n, b.len - n});
    left -= n;
  }
  rest = BufferCursor(std::move(tail));
  *this = BufferCursor(std::move(head));
  return true;
}

bool BufferCursor::SplitTail(uint64_t len, BufferCursor& tail) {
  return len <= available_ && SplitAt(available_ - len, tail);
}

bool Reader::ReadExact(void* out, uint64_t len) {
  if (len > available_) return false;
  uint8_t* dst = static_cast<uint8_t*>(out);
  for (const iovec& v : Take(len)) {
    std::memcpy(dst, v.iov_base, v.iov_len);
    dst += v.iov_len;
  }
  return true;
}

bool Writer::WriteExact(const void* data, uint64_t len) {
  if (len > available_) return false;
  const uint8_t* src = static_cast<const uint8_t*>(data);
  for (const iovec& v : Take(len)) {
    std::memcpy(v.iov_base, src, v.iov_len);
    src += v.iov_len;
  }
  return true;
}

}  // namespace vmm::devices::virtio
