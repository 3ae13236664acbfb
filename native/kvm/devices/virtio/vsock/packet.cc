#include "devices/virtio/vsock/packet.h"

#include <cstring>

namespace vmm::devices::virtio::vsock {

namespace {
template <typename T>
void Put(uint8_t* out, size_t offset, T value) {
  std::memcpy(out + offset, &value, sizeof value);  // x86-64 is little endian, as the header is
}
template <typename T>
T Get(const uint8_t* in, size_t offset) {
  T value;
  std::memcpy(&value, in + offset, sizeof value);
  return value;
}
}  // namespace

Header StreamHeader(uint16_t op, uint64_t src_cid, uint32_t src_port, uint64_t dst_cid, uint32_t dst_port,
                    uint32_t buf_alloc, uint32_t fwd_cnt) {
  return Header{src_cid, dst_cid, src_port, dst_port, 0, kTypeStream, op, 0, buf_alloc, fwd_cnt};
}

void EncodeHeader(const Header& h, uint8_t out[kHeaderSize]) {
  Put(out, 0, h.src_cid);
  Put(out, 8, h.dst_cid);
  Put(out, 16, h.src_port);
  Put(out, 20, h.dst_port);
  Put(out, 24, h.len);
  Put(out, 28, h.type);
  Put(out, 30, h.op);
  Put(out, 32, h.flags);
  Put(out, 36, h.buf_alloc);
  Put(out, 40, h.fwd_cnt);
}

Header DecodeHeader(const uint8_t in[kHeaderSize]) {
  Header h;
  h.src_cid = Get<uint64_t>(in, 0);
  h.dst_cid = Get<uint64_t>(in, 8);
  h.src_port = Get<uint32_t>(in, 16);
  h.dst_port = Get<uint32_t>(in, 20);
  h.len = Get<uint32_t>(in, 24);
  h.type = Get<uint16_t>(in, 28);
  h.op = Get<uint16_t>(in, 30);
  h.flags = Get<uint32_t>(in, 32);
  h.buf_alloc = Get<uint32_t>(in, 36);
  h.fwd_cnt = Get<uint32_t>(in, 40);
  return h;
}

bool ReadHeader(Reader& packet, Header& h) {
  uint8_t raw[kHeaderSize];
  if (!packet.ReadExact(raw, kHeaderSize)) return false;
  h = DecodeHeader(raw);
  return true;
}

bool WriteHeader(Writer& packet, const Header& h) {
  uint8_t raw[kHeaderSize];
  EncodeHeader(h, raw);
  return packet.WriteExact(raw, kHeaderSize);
}

}  // namespace vmm::devices::virtio::vsock
