// TCP header (RFC 9293 §3.1) and options: MSS, window scale (RFC 7323 §2), SACK-permitted
// and SACK blocks (RFC 2018), timestamps (RFC 7323 §3).
#pragma once

#include <optional>

#include "vsnoop/wire/bytes.h"

namespace vsnoop::wire {

inline constexpr std::size_t kTcpMinHeaderSize = 20;
inline constexpr std::size_t kTcpMaxHeaderSize = 60;

namespace tcp_flag {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kUrg = 0x20;
inline constexpr std::uint8_t kEce = 0x40;
inline constexpr std::uint8_t kCwr = 0x80;
}  // namespace tcp_flag

namespace tcp_option {
inline constexpr std::uint8_t kEnd = 0;
inline constexpr std::uint8_t kNop = 1;
inline constexpr std::uint8_t kMss = 2;
inline constexpr std::uint8_t kWindowScale = 3;
inline constexpr std::uint8_t kSackPermitted = 4;
inline constexpr std::uint8_t kSack = 5;
inline constexpr std::uint8_t kTimestamps = 8;
inline constexpr std::uint8_t kMd5Signature = 19;  // RFC 2385
inline constexpr std::uint8_t kAuthentication = 29;  // TCP-AO, RFC 5925
inline constexpr std::uint8_t kMultipath = 30;       // MPTCP, RFC 8684
inline constexpr std::uint8_t kFastOpen = 34;        // RFC 7413
}  // namespace tcp_option

// RFC 7323 §2.3: a shift count above 14 is treated as 14.
inline constexpr std::uint8_t kMaxWindowScale = 14;

enum class TcpError : std::uint8_t {
  kTruncated,       // fewer than 20 bytes
  kBadDataOffset,   // data offset < 5 or beyond the segment
};

class TcpView {
 public:
  static std::optional<TcpView> Parse(Bytes segment, TcpError* error = nullptr);

  std::uint16_t source_port() const { return LoadBe16(bytes_.data()); }
  std::uint16_t destination_port() const { return LoadBe16(bytes_.data() + 2); }
  std::uint32_t seq() const { return LoadBe32(bytes_.data() + 4); }
  std::uint32_t ack() const { return LoadBe32(bytes_.data() + 8); }
  std::size_t header_size() const { return header_size_; }
  std::uint8_t flags() const { return bytes_[13]; }
  bool Has(std::uint8_t flag) const { return (flags() & flag) != 0; }
  std::uint16_t window() const { return LoadBe16(bytes_.data() + 14); }
  std::uint16_t checksum() const { return LoadBe16(bytes_.data() + 16); }
  std::uint16_t urgent_pointer() const { return LoadBe16(bytes_.data() + 18); }
  Bytes options() const { return bytes_.subspan(kTcpMinHeaderSize, header_size_ - 20); }
  Bytes payload() const { return bytes_.subspan(header_size_); }
  Bytes segment() const { return bytes_; }

 private:
  TcpView(Bytes bytes, std::size_t header_size) : bytes_(bytes), header_size_(header_size) {}
  Bytes bytes_;
  std::size_t header_size_;
};

// One option as found in the header: its kind and the bytes after kind and length.
struct TcpOption {
  std::uint8_t kind = 0;
  Bytes data;
};

// A cursor over the option bytes that cannot overrun: Next() returns false at the end of
// the list (End option or no bytes left) and on the first malformed option, after which
// malformed() tells which it was.
class TcpOptionReader {
 public:
  explicit TcpOptionReader(Bytes options) : rest_(options) {}
  bool Next(TcpOption* option);
  bool malformed() const { return malformed_; }

 private:
  Bytes rest_;
  bool malformed_ = false;
};

struct SackBlock {
  std::uint32_t left = 0;
  std::uint32_t right = 0;
};

// Everything vSnoop needs from the options, read in one pass.
struct TcpOptions {
  static constexpr std::size_t kMaxSackBlocks = 4;

  std::optional<std::uint16_t> mss;
  std::optional<std::uint8_t> window_scale;  // as sent, before clamping to 14
  bool sack_permitted = false;
  bool has_timestamps = false;
  std::uint32_t ts_value = 0;
  std::uint32_t ts_echo = 0;
  std::size_t sack_block_count = 0;
  SackBlock sack_blocks[kMaxSackBlocks];
  // Options vSnoop cannot vouch for: MD5 or TCP-AO signatures (the guest verifies them),
  // MPTCP (data-level acknowledgements), or any kind it does not know.
  bool has_unknown = false;
  bool has_signature = false;
  bool has_multipath = false;
  bool has_fast_open = false;  // RFC 7413 cookie: meaningful on SYNs only
  // An option was cut short, had length 0 or 1, or a known option had the wrong length.
  bool malformed = false;

  static TcpOptions Read(Bytes options);
  // Only NOP, End and Timestamps: the options vSnoop itself writes.
  bool only_timestamps() const {
    return !malformed && !has_unknown && !has_signature && !has_multipath && !has_fast_open &&
           !mss &&
           !window_scale && !sack_permitted && sack_block_count == 0;
  }
};

}  // namespace vsnoop::wire
