// virtio-vsock packets (virtio 1.2, 5.10.6): the 44-byte header every packet starts with, its ops
// and flags, and the copies between a header and the guest buffers of a chain, where the guest
// may split it across descriptors however it likes.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "devices/virtio/descriptor_utils.h"

namespace vmm::devices::virtio::vsock {

// Well-known CIDs (virtio 1.2, 5.10.4): the host is 2; a guest's CID is 3 or more.
constexpr uint64_t kHostCid = 2;
constexpr uint64_t kMinGuestCid = 3;

// struct virtio_vsock_hdr (5.10.6), little endian, packed.
constexpr uint32_t kHeaderSize = 44;
struct Header {
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;
  uint16_t type = 0;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;
};

// 5.10.6: socket types and ops.
constexpr uint16_t kTypeStream = 1;
constexpr uint16_t kOpRequest = 1, kOpResponse = 2, kOpRst = 3, kOpShutdown = 4, kOpRw = 5, kOpCreditUpdate = 6,
                   kOpCreditRequest = 7;
// 5.10.6.6: SHUTDOWN flags, from the sender's point of view.
constexpr uint32_t kShutdownRcv = 1, kShutdownSend = 2;

// The most payload one packet carries: Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE. The guest never
// sends more; a packet that claims more is a broken queue.
constexpr uint32_t kMaxPayload = 64 * 1024;

// A stream packet's header, without payload or flags.
Header StreamHeader(uint16_t op, uint64_t src_cid, uint32_t src_port, uint64_t dst_cid, uint32_t dst_port,
                    uint32_t buf_alloc = 0, uint32_t fwd_cnt = 0);

void EncodeHeader(const Header& h, uint8_t out[kHeaderSize]);
Header DecodeHeader(const uint8_t in[kHeaderSize]);

// Copies a header out of a packet's first 44 bytes, or into them; false when there are fewer.
bool ReadHeader(Reader& packet, Header& h);
bool WriteHeader(Writer& packet, const Header& h);

}  // namespace vmm::devices::virtio::vsock
