// Software segmentation and checksum completion, for ports that take only plain frames
// (qemu's stream socket has no virtio-net header). A GSO super-frame becomes the MSS-sized
// frames the sender's NIC would have sent; a frame with a partial checksum gets its
// checksum completed. Pure functions over bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "vsnoop/datapath/packet.h"

namespace vsnoop::datapath {

enum class GsoResult : std::uint8_t {
  kDone,          // `out` holds plain frames with complete checksums
  kNotTcp,        // GSO of something other than TCP over IPv4/IPv6 (UDP...): not handled
  kMalformed,     // headers inconsistent with the metadata
};

// Appends to *out the plain frames equivalent to `packet` (one frame, unchanged, when the
// packet carries no offload metadata).
GsoResult Unoffload(const PacketView& packet, std::vector<OwnedPacket>* out);

}  // namespace vsnoop::datapath
