#include "vsnoop/wire/ipv6.h"

namespace vsnoop::wire {

std::optional<Ipv6View> Ipv6View::Parse(Bytes packet, Ipv6Error* error) {
  auto fail = [error](Ipv6Error e) -> std::optional<Ipv6View> {
    if (error != nullptr) *error = e;
    return std::nullopt;
  };
  if (packet.size() < kIpv6HeaderSize) return fail(Ipv6Error::kTruncated);
  if ((packet[0] >> 4) != 6) return fail(Ipv6Error::kBadVersion);
  const std::size_t payload_length = LoadBe16(packet.data() + 4);
  if (payload_length == 0 || kIpv6HeaderSize + payload_length > packet.size()) {
    return fail(Ipv6Error::kBadPayloadLength);
  }
  Ipv6View view;
  view.bytes_ = packet.first(kIpv6HeaderSize + payload_length);
  std::uint8_t next = packet[6];
  std::size_t offset = kIpv6HeaderSize;
  for (;;) {
    if (next != kIpv6HopByHop && next != kIpv6Routing && next != kIpv6Fragment &&
        next != kIpv6DestOpts) {
      break;
    }
    if (view.extension_headers_ == kIpv6MaxExtensionHeaders) {
      return fail(Ipv6Error::kChainTooLong);
    }
    if (offset + 8 > view.bytes_.size()) return fail(Ipv6Error::kTruncated);
    const std::uint8_t* ext = view.bytes_.data() + offset;
    // RFC 8200 §4.5: the Fragment header is 8 bytes; its second octet is reserved.
    const std::size_t length =
        next == kIpv6Fragment ? 8 : (static_cast<std::size_t>(ext[1]) + 1) * 8;
    if (offset + length > view.bytes_.size()) return fail(Ipv6Error::kTruncated);
    if (next == kIpv6Fragment) view.has_fragment_ = true;
    if (next == kIpv6Routing) view.routing_segments_left_ = ext[3];
    ++view.extension_headers_;
    next = ext[0];
    offset += length;
  }
  view.upper_protocol_ = next;
  view.upper_offset_ = offset;
  return view;
}

}  // namespace vsnoop::wire
