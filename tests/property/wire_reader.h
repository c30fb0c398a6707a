// An independent reading of the frames the property tests exchange, and the edits the
// simulated link makes to them. Ethernet with up to two VLAN tags, IPv4 (no options needed)
// or IPv6 without extension headers, TCP with its options, RFC 1071 checksums summed byte by
// byte. It shares no code with core/ on purpose: the models and the property checks must not
// inherit a bug of the parser whose decisions they judge.
//
// Left out: IPv4 options, IPv6 extension headers, fragments, anything not TCP. The
// simulation never produces them (the fuzz and unit tests cover them).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace vsnoop::proptest {

using Frame = std::vector<std::uint8_t>;
using FrameView = std::span<const std::uint8_t>;

namespace tcp_flags {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kUrg = 0x20;
inline constexpr std::uint8_t kEce = 0x40;
inline constexpr std::uint8_t kCwr = 0x80;
}  // namespace tcp_flags

inline constexpr std::uint8_t kEcnNotEct = 0;
inline constexpr std::uint8_t kEcnEct0 = 2;
inline constexpr std::uint8_t kEcnCe = 3;

struct SackRange {
  std::uint32_t left = 0;
  std::uint32_t right = 0;
};

// A list of at most N values kept in place: reading a frame allocates nothing.
template <typename T, std::size_t N>
class SmallList {
 public:
  bool push_back(const T& v) {
    if (size_ == N) return false;
    items_[size_++] = v;
    return true;
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T* begin() const { return items_.data(); }
  const T* end() const { return items_.data() + size_; }
  const T& operator[](std::size_t i) const { return items_[i]; }

 private:
  std::array<T, N> items_{};
  std::size_t size_ = 0;
};

// Everything the models and checks read from a frame. Offsets index the frame's bytes.
struct ReadFrame {
  std::array<std::uint8_t, 6> destination_mac{};
  std::array<std::uint8_t, 6> source_mac{};
  SmallList<std::uint16_t, 2> vlan_tcis;  // outermost first
  std::size_t l2_size = 0;

  std::uint8_t family = 4;
  std::array<std::uint8_t, 16> source_ip{};  // IPv4 in the first four bytes
  std::array<std::uint8_t, 16> destination_ip{};
  std::uint8_t traffic_class = 0;  // IPv4 TOS or IPv6 traffic class, ECN bits included
  std::uint8_t ecn = 0;
  std::uint8_t ttl = 0;
  bool ipv4_dont_fragment = false;
  bool ip_checksum_ok = true;  // IPv6 has none
  std::size_t ip_offset = 0;
  std::size_t ip_header_size = 0;
  std::size_t ip_total_size = 0;  // header and payload, as the IP header says

  std::size_t tcp_offset = 0;
  std::size_t tcp_header_size = 0;
  std::uint16_t source_port = 0;
  std::uint16_t destination_port = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0;
  std::uint16_t window = 0;
  std::uint16_t urgent_pointer = 0;
  bool tcp_checksum_ok = false;

  // Options.
  bool has_timestamps = false;
  std::uint32_t ts_value = 0;
  std::uint32_t ts_echo = 0;
  SmallList<SackRange, 4> sack_blocks;  // a fifth and more are ignored
  bool has_other_options = false;       // anything but NOP, End, Timestamps, SACK
  bool options_malformed = false;
  std::size_t timestamp_option_offset = 0;  // of the kind byte, when has_timestamps

  std::size_t payload_offset = 0;
  std::size_t payload_size = 0;
  std::size_t frame_size = 0;

  bool Has(std::uint8_t flag) const { return (flags & flag) != 0; }
  FrameView Payload(FrameView frame) const { return frame.subspan(payload_offset, payload_size); }
};

enum class Checksums : std::uint8_t {
  kVerify,
  kSkip,  // reports them right: for frames whose origin is known
};

// Reads a frame the simulation built; nullopt for anything else.
std::optional<ReadFrame> ReadTcpFrame(FrameView frame, Checksums checksums = Checksums::kVerify);

// RFC 1071 over the TCP pseudo header, header and payload, byte by byte: 0 when the
// checksum field is right.
std::uint16_t TcpChecksumResidue(FrameView frame, const ReadFrame& read);

// Edits the simulated link makes. Each keeps every checksum right unless its name says
// otherwise. REQUIRES: the frame reads with ReadTcpFrame.
void FixChecksums(Frame& frame);
void SetEcn(Frame& frame, std::uint8_t ecn);
void SetAckField(Frame& frame, std::uint32_t ack);
void StripTimestamps(Frame& frame);  // the option's bytes become NOPs
void SetTsValue(Frame& frame, std::uint32_t ts_value);
// XORs the TCP checksum field with mask. REQUIRES: mask is neither 0 nor 0xFFFF, so the
// checksum cannot become an equivalent one's-complement value.
void CorruptTcpChecksum(Frame& frame, std::uint16_t mask);
// IPv4 only: XORs the header checksum field with mask (same REQUIRES).
void CorruptIpChecksum(Frame& frame, std::uint16_t mask);

}  // namespace vsnoop::proptest
