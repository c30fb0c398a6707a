// IPv4 header (RFC 791), options included.
#pragma once

#include <optional>

#include "vsnoop/wire/bytes.h"

namespace vsnoop::wire {

inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::size_t kIpv4MinHeaderSize = 20;

// ECN codepoints in the two low bits of the TOS / traffic-class octet (RFC 3168 §5).
enum class Ecn : std::uint8_t { kNotEct = 0, kEct1 = 1, kEct0 = 2, kCe = 3 };

// Why an IPv4 header could not be read. Each value has a counter in the engine.
enum class Ipv4Error : std::uint8_t {
  kTruncated,         // fewer than 20 bytes
  kBadVersion,        // version nibble is not 4
  kBadHeaderLength,   // IHL < 5 or beyond the bytes present
  kBadTotalLength,    // total length smaller than the header or larger than the frame
};

class Ipv4View {
 public:
  // Checks version, IHL and total length against the bytes present. Bytes after the total
  // length (Ethernet padding) are not part of the view.
  static std::optional<Ipv4View> Parse(Bytes packet, Ipv4Error* error = nullptr);

  std::size_t header_size() const { return header_size_; }
  std::uint8_t tos() const { return bytes_[1]; }
  Ecn ecn() const { return static_cast<Ecn>(bytes_[1] & 0x03); }
  std::uint16_t total_length() const { return LoadBe16(bytes_.data() + 2); }
  std::uint16_t identification() const { return LoadBe16(bytes_.data() + 4); }
  bool dont_fragment() const { return (bytes_[6] & 0x40) != 0; }
  bool more_fragments() const { return (bytes_[6] & 0x20) != 0; }
  std::uint16_t fragment_offset() const { return LoadBe16(bytes_.data() + 6) & 0x1FFF; }
  bool is_fragment() const { return more_fragments() || fragment_offset() != 0; }
  std::uint8_t ttl() const { return bytes_[8]; }
  std::uint8_t protocol() const { return bytes_[9]; }
  std::uint16_t header_checksum() const { return LoadBe16(bytes_.data() + 10); }
  const std::uint8_t* source() const { return bytes_.data() + 12; }       // 4 bytes
  const std::uint8_t* destination() const { return bytes_.data() + 16; }  // 4 bytes
  Bytes options() const { return bytes_.subspan(kIpv4MinHeaderSize, header_size_ - 20); }
  Bytes header() const { return bytes_.first(header_size_); }
  Bytes payload() const { return bytes_.subspan(header_size_); }
  // True when the header checksum verifies (RFC 791 §3.1; RFC 1071 arithmetic).
  bool HeaderChecksumValid() const;

 private:
  Ipv4View(Bytes bytes, std::size_t header_size) : bytes_(bytes), header_size_(header_size) {}
  Bytes bytes_;  // header and payload, cut at total length
  std::size_t header_size_;
};

}  // namespace vsnoop::wire
