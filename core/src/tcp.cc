#include "vsnoop/wire/tcp.h"

namespace vsnoop::wire {

std::optional<TcpView> TcpView::Parse(Bytes segment, TcpError* error) {
  if (segment.size() < kTcpMinHeaderSize) {
    if (error != nullptr) *error = TcpError::kTruncated;
    return std::nullopt;
  }
  const std::size_t header_size = static_cast<std::size_t>(segment[12] >> 4) * 4;
  if (header_size < kTcpMinHeaderSize || header_size > segment.size()) {
    if (error != nullptr) *error = TcpError::kBadDataOffset;
    return std::nullopt;
  }
  return TcpView(segment, header_size);
}

bool TcpOptionReader::Next(TcpOption* option) {
  while (!rest_.empty()) {
    const std::uint8_t kind = rest_[0];
    if (kind == tcp_option::kEnd) {
      rest_ = {};
      return false;
    }
    if (kind == tcp_option::kNop) {
      rest_ = rest_.subspan(1);
      continue;
    }
    // RFC 9293 §3.1: every other option has a length octet that counts kind and length.
    if (rest_.size() < 2 || rest_[1] < 2 || rest_[1] > rest_.size()) {
      malformed_ = true;
      rest_ = {};
      return false;
    }
    const std::size_t length = rest_[1];
    option->kind = kind;
    option->data = rest_.subspan(2, length - 2);
    rest_ = rest_.subspan(length);
    return true;
  }
  return false;
}

TcpOptions TcpOptions::Read(Bytes options) {
  TcpOptions out;
  TcpOptionReader reader(options);
  TcpOption option;
  while (reader.Next(&option)) {
    const std::size_t n = option.data.size();
    switch (option.kind) {
      case tcp_option::kMss:
        if (n != 2) {
          out.malformed = true;
        } else {
          out.mss = LoadBe16(option.data.data());
        }
        break;
      case tcp_option::kWindowScale:
        if (n != 1) {
          out.malformed = true;
        } else {
          out.window_scale = option.data[0];
        }
        break;
      case tcp_option::kSackPermitted:
        if (n != 0) {
          out.malformed = true;
        } else {
          out.sack_permitted = true;
        }
        break;
      case tcp_option::kSack:
        if (n == 0 || n % 8 != 0) {
          out.malformed = true;
          break;
        }
        for (std::size_t i = 0; i < n / 8 && out.sack_block_count < kMaxSackBlocks; ++i) {
          out.sack_blocks[out.sack_block_count++] = {LoadBe32(option.data.data() + 8 * i),
                                                     LoadBe32(option.data.data() + 8 * i + 4)};
        }
        if (n / 8 > kMaxSackBlocks) out.malformed = true;
        break;
      case tcp_option::kTimestamps:
        if (n != 8) {
          out.malformed = true;
        } else {
          out.has_timestamps = true;
          out.ts_value = LoadBe32(option.data.data());
          out.ts_echo = LoadBe32(option.data.data() + 4);
        }
        break;
      case tcp_option::kMd5Signature:
      case tcp_option::kAuthentication:
        out.has_signature = true;
        break;
      case tcp_option::kFastOpen:
        out.has_fast_open = true;
        break;
      case tcp_option::kMultipath:
        out.has_multipath = true;
        break;
      default:
        out.has_unknown = true;
        break;
    }
  }
  if (reader.malformed()) out.malformed = true;
  return out;
}

}  // namespace vsnoop::wire
