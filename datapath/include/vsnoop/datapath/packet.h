// A frame as it moves through vsnoopd: its bytes and its offload metadata. The metadata
// mirrors Linux's struct virtio_net_hdr (in host byte order) because that is what the
// kernel hands AF_PACKET and tap sockets with vnet headers on: a GSO super-frame (up to
// 64 KB, to be segmented at gso_size) and a partial checksum (to be completed over
// [csum_start, end) and stored at csum_start + csum_offset) pass through intact.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vsnoop/engine.h"

namespace vsnoop::datapath {

struct VnetHeader {
  static constexpr std::uint8_t kNeedsCsum = 1;   // VIRTIO_NET_HDR_F_NEEDS_CSUM
  static constexpr std::uint8_t kDataValid = 2;   // VIRTIO_NET_HDR_F_DATA_VALID
  static constexpr std::uint8_t kGsoNone = 0;
  static constexpr std::uint8_t kGsoTcpV4 = 1;
  static constexpr std::uint8_t kGsoUdp = 3;
  static constexpr std::uint8_t kGsoTcpV6 = 4;
  static constexpr std::uint8_t kGsoEcn = 0x80;   // the super-frame carries CWR on its first segment

  std::uint8_t flags = 0;
  std::uint8_t gso_type = kGsoNone;
  std::uint16_t hdr_len = 0;
  std::uint16_t gso_size = 0;
  std::uint16_t csum_start = 0;
  std::uint16_t csum_offset = 0;

  bool is_gso() const { return (gso_type & ~kGsoEcn) != kGsoNone; }
  bool needs_csum() const { return (flags & kNeedsCsum) != 0; }
  bool plain() const { return flags == 0 && !is_gso(); }
};

// What the engine needs to know of the metadata.
inline Offload ToOffload(const VnetHeader& h) {
  Offload o;
  if (h.needs_csum()) {
    o.checksum = ChecksumStatus::kPartial;
  } else if ((h.flags & VnetHeader::kDataValid) != 0) {
    o.checksum = ChecksumStatus::kVerified;
  }
  if (h.is_gso()) o.gso_size = h.gso_size;
  return o;
}

// A frame borrowed from a port or a buffer; valid until the call that lent it returns.
struct PacketView {
  std::span<const std::uint8_t> frame;
  VnetHeader vnet;
};

// A frame with its own storage, for the few places that must build or keep one (software
// segmentation, tests).
struct OwnedPacket {
  std::vector<std::uint8_t> frame;
  VnetHeader vnet;
  PacketView view() const { return {frame, vnet}; }
};

}  // namespace vsnoop::datapath
