// IPv6 header (RFC 8200) and its extension-header chain.
#pragma once

#include <optional>

#include "vsnoop/wire/bytes.h"
#include "vsnoop/wire/ipv4.h"

namespace vsnoop::wire {

inline constexpr std::size_t kIpv6HeaderSize = 40;
inline constexpr std::uint8_t kIpv6HopByHop = 0;
inline constexpr std::uint8_t kIpv6Routing = 43;
inline constexpr std::uint8_t kIpv6Fragment = 44;
inline constexpr std::uint8_t kIpv6Esp = 50;
inline constexpr std::uint8_t kIpv6Auth = 51;
inline constexpr std::uint8_t kIpv6NoNext = 59;
inline constexpr std::uint8_t kIpv6DestOpts = 60;
// Chains longer than this are not walked (RFC 8200 §4.1 recommends a small, fixed order).
inline constexpr std::size_t kIpv6MaxExtensionHeaders = 8;

enum class Ipv6Error : std::uint8_t {
  kTruncated,          // fewer than 40 bytes, or an extension header runs past the payload
  kBadVersion,
  kBadPayloadLength,   // zero (jumbogram) or larger than the frame
  kChainTooLong,
};

class Ipv6View {
 public:
  // Walks the extension-header chain to the first header that is not Hop-by-Hop, Routing,
  // Fragment or Destination Options; that header's number is upper_protocol().
  static std::optional<Ipv6View> Parse(Bytes packet, Ipv6Error* error = nullptr);

  std::uint8_t traffic_class() const {
    return static_cast<std::uint8_t>((LoadBe16(bytes_.data()) >> 4) & 0xFF);
  }
  Ecn ecn() const { return static_cast<Ecn>(traffic_class() & 0x03); }
  std::uint32_t flow_label() const { return LoadBe32(bytes_.data()) & 0xFFFFF; }
  std::uint16_t payload_length() const { return LoadBe16(bytes_.data() + 4); }
  std::uint8_t next_header() const { return bytes_[6]; }
  std::uint8_t hop_limit() const { return bytes_[7]; }
  const std::uint8_t* source() const { return bytes_.data() + 8; }        // 16 bytes
  const std::uint8_t* destination() const { return bytes_.data() + 24; }  // 16 bytes

  std::uint8_t upper_protocol() const { return upper_protocol_; }
  std::size_t extension_header_count() const { return extension_headers_; }
  bool has_fragment_header() const { return has_fragment_; }
  // Segments Left of a Routing header: when non-zero this node is not the final
  // destination, and the transport header must not be interpreted (RFC 8200 §4.4).
  std::uint8_t routing_segments_left() const { return routing_segments_left_; }
  // Base header plus extension headers.
  std::size_t header_size() const { return upper_offset_; }
  Bytes payload() const { return bytes_.subspan(upper_offset_); }

 private:
  Ipv6View() = default;
  Bytes bytes_;
  std::size_t upper_offset_ = kIpv6HeaderSize;
  std::size_t extension_headers_ = 0;
  std::uint8_t upper_protocol_ = 0;
  std::uint8_t routing_segments_left_ = 0;
  bool has_fragment_ = false;
};

}  // namespace vsnoop::wire
