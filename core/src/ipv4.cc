#include "vsnoop/wire/ipv4.h"

#include "vsnoop/wire/checksum.h"

namespace vsnoop::wire {

std::optional<Ipv4View> Ipv4View::Parse(Bytes packet, Ipv4Error* error) {
  auto fail = [error](Ipv4Error e) -> std::optional<Ipv4View> {
    if (error != nullptr) *error = e;
    return std::nullopt;
  };
  if (packet.size() < kIpv4MinHeaderSize) return fail(Ipv4Error::kTruncated);
  if ((packet[0] >> 4) != 4) return fail(Ipv4Error::kBadVersion);
  const std::size_t header_size = static_cast<std::size_t>(packet[0] & 0x0F) * 4;
  if (header_size < kIpv4MinHeaderSize || header_size > packet.size()) {
    return fail(Ipv4Error::kBadHeaderLength);
  }
  const std::size_t total = LoadBe16(packet.data() + 2);
  if (total < header_size || total > packet.size()) return fail(Ipv4Error::kBadTotalLength);
  return Ipv4View(packet.first(total), header_size);
}

bool Ipv4View::HeaderChecksumValid() const {
  return InternetChecksum::Of(header()) == 0;
}

}  // namespace vsnoop::wire
