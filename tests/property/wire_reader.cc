// Independent frame reading and link edits for the property tests (see wire_reader.h).
#include "wire_reader.h"

#include <algorithm>

namespace vsnoop::proptest {
namespace {

std::uint16_t Load16(FrameView b, std::size_t at) {
  return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}
std::uint32_t Load32(FrameView b, std::size_t at) {
  return (static_cast<std::uint32_t>(b[at]) << 24) | (static_cast<std::uint32_t>(b[at + 1]) << 16) |
         (static_cast<std::uint32_t>(b[at + 2]) << 8) | b[at + 3];
}
void Store16(Frame& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v & 0xFF);
}
void Store32(Frame& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    b[at + i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

// RFC 1071 one's-complement sum of big-endian 16-bit words; a byte left over at an odd
// position is the high byte of the next word.
struct OnesSum {
  std::uint64_t sum = 0;
  bool odd = false;
  void Add(FrameView bytes) {
    std::size_t i = 0;
    if (odd && !bytes.empty()) {
      sum += bytes[0];
      odd = false;
      i = 1;
    }
    for (; i + 1 < bytes.size(); i += 2) {
      sum += static_cast<std::uint64_t>(bytes[i]) << 8 | bytes[i + 1];
    }
    if (i < bytes.size()) {
      sum += static_cast<std::uint64_t>(bytes[i]) << 8;
      odd = true;
    }
  }
  void Add16(std::uint16_t v) {
    const std::uint8_t bytes[2] = {static_cast<std::uint8_t>(v >> 8),
                                   static_cast<std::uint8_t>(v & 0xFF)};
    Add(bytes);
  }
  std::uint16_t Folded() const {
    std::uint64_t s = sum;
    while (s >> 16)
      s = (s & 0xFFFF) + (s >> 16);
    return static_cast<std::uint16_t>(~s & 0xFFFF);
  }
};

std::uint16_t TcpSum(FrameView frame, const ReadFrame& r, bool skip_checksum_field) {
  OnesSum s;
  const std::size_t address_size = r.family == 4 ? 4 : 16;
  s.Add(FrameView(r.source_ip.data(), address_size));
  s.Add(FrameView(r.destination_ip.data(), address_size));
  const std::size_t tcp_length = r.tcp_header_size + r.payload_size;
  if (r.family == 4) {
    s.Add16(6);
    s.Add16(static_cast<std::uint16_t>(tcp_length));
  } else {
    s.Add16(static_cast<std::uint16_t>(tcp_length >> 16));
    s.Add16(static_cast<std::uint16_t>(tcp_length & 0xFFFF));
    s.Add16(0);
    s.Add16(6);
  }
  const FrameView tcp = frame.subspan(r.tcp_offset, tcp_length);
  if (skip_checksum_field) {
    s.Add(tcp.first(16));
    s.Add16(0);
    s.Add(tcp.subspan(18));
  } else {
    s.Add(tcp);
  }
  return s.Folded();
}

std::uint16_t Ipv4HeaderSum(FrameView frame, const ReadFrame& r, bool skip_checksum_field) {
  OnesSum s;
  const FrameView header = frame.subspan(r.ip_offset, r.ip_header_size);
  if (skip_checksum_field) {
    s.Add(header.first(10));
    s.Add16(0);
    s.Add(header.subspan(12));
  } else {
    s.Add(header);
  }
  return s.Folded();
}

void ReadOptions(FrameView options, std::size_t options_offset, ReadFrame* r) {
  std::size_t i = 0;
  while (i < options.size()) {
    const std::uint8_t kind = options[i];
    if (kind == 0) break;
    if (kind == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= options.size() || options[i + 1] < 2 || i + options[i + 1] > options.size()) {
      r->options_malformed = true;
      return;
    }
    const std::size_t length = options[i + 1];
    if (kind == 8 && length == 10) {
      r->has_timestamps = true;
      r->ts_value = Load32(options, i + 2);
      r->ts_echo = Load32(options, i + 6);
      r->timestamp_option_offset = options_offset + i;
    } else if (kind == 5 && length >= 10 && (length - 2) % 8 == 0) {
      for (std::size_t b = i + 2; b + 8 <= i + length; b += 8) {
        r->sack_blocks.push_back(SackRange{Load32(options, b), Load32(options, b + 4)});
      }
    } else {
      r->has_other_options = true;
    }
    i += length;
  }
}

}  // namespace

std::optional<ReadFrame> ReadTcpFrame(FrameView frame, Checksums checksums) {
  ReadFrame r;
  r.frame_size = frame.size();
  if (frame.size() < 14) return std::nullopt;
  std::copy_n(frame.begin(), 6, r.destination_mac.begin());
  std::copy_n(frame.begin() + 6, 6, r.source_mac.begin());
  std::size_t at = 12;
  std::uint16_t type = Load16(frame, at);
  while (type == 0x8100 || type == 0x88A8) {
    if (frame.size() < at + 6 || r.vlan_tcis.size() == 2) return std::nullopt;
    r.vlan_tcis.push_back(Load16(frame, at + 2));
    at += 4;
    type = Load16(frame, at);
  }
  at += 2;
  r.l2_size = at;
  r.ip_offset = at;
  std::size_t ip_end = 0;
  if (type == 0x0800) {
    if (frame.size() < at + 20 || (frame[at] >> 4) != 4) return std::nullopt;
    r.family = 4;
    r.ip_header_size = static_cast<std::size_t>(frame[at] & 0x0F) * 4;
    r.ip_total_size = Load16(frame, at + 2);
    if (r.ip_header_size < 20 || r.ip_total_size < r.ip_header_size ||
        at + r.ip_total_size > frame.size()) {
      return std::nullopt;
    }
    r.traffic_class = frame[at + 1];
    r.ipv4_dont_fragment = (frame[at + 6] & 0x40) != 0;
    if ((Load16(frame, at + 6) & 0x3FFF) != 0) return std::nullopt;  // fragment
    r.ttl = frame[at + 8];
    if (frame[at + 9] != 6) return std::nullopt;
    std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(at + 12), 4, r.source_ip.begin());
    std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(at + 16), 4, r.destination_ip.begin());
    r.ip_checksum_ok = checksums == Checksums::kSkip || Ipv4HeaderSum(frame, r, false) == 0;
    ip_end = at + r.ip_total_size;
  } else if (type == 0x86DD) {
    if (frame.size() < at + 40 || (frame[at] >> 4) != 6) return std::nullopt;
    r.family = 6;
    r.ip_header_size = 40;
    r.ip_total_size = 40 + static_cast<std::size_t>(Load16(frame, at + 4));
    if (at + r.ip_total_size > frame.size() || frame[at + 6] != 6) return std::nullopt;
    r.traffic_class = static_cast<std::uint8_t>((Load32(frame, at) >> 20) & 0xFF);
    r.ttl = frame[at + 7];
    std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(at + 8), 16, r.source_ip.begin());
    std::copy_n(frame.begin() + static_cast<std::ptrdiff_t>(at + 24), 16, r.destination_ip.begin());
    ip_end = at + r.ip_total_size;
  } else {
    return std::nullopt;
  }
  r.ecn = r.traffic_class & 0x03;
  r.tcp_offset = at + r.ip_header_size;
  if (ip_end < r.tcp_offset + 20) return std::nullopt;
  r.tcp_header_size = static_cast<std::size_t>(frame[r.tcp_offset + 12] >> 4) * 4;
  if (r.tcp_header_size < 20 || r.tcp_offset + r.tcp_header_size > ip_end) return std::nullopt;
  r.source_port = Load16(frame, r.tcp_offset);
  r.destination_port = Load16(frame, r.tcp_offset + 2);
  r.seq = Load32(frame, r.tcp_offset + 4);
  r.ack = Load32(frame, r.tcp_offset + 8);
  r.flags = frame[r.tcp_offset + 13];
  r.window = Load16(frame, r.tcp_offset + 14);
  r.urgent_pointer = Load16(frame, r.tcp_offset + 18);
  r.payload_offset = r.tcp_offset + r.tcp_header_size;
  r.payload_size = ip_end - r.payload_offset;
  ReadOptions(frame.subspan(r.tcp_offset + 20, r.tcp_header_size - 20), r.tcp_offset + 20, &r);
  r.tcp_checksum_ok = checksums == Checksums::kSkip || TcpSum(frame, r, false) == 0;
  return r;
}

std::uint16_t TcpChecksumResidue(FrameView frame, const ReadFrame& read) {
  return TcpSum(frame, read, false);
}

void FixChecksums(Frame& frame) {
  const auto r = ReadTcpFrame(frame);
  if (!r) return;
  if (r->family == 4) Store16(frame, r->ip_offset + 10, Ipv4HeaderSum(frame, *r, true));
  Store16(frame, r->tcp_offset + 16, TcpSum(frame, *r, true));
}

void SetEcn(Frame& frame, std::uint8_t ecn) {
  const auto r = ReadTcpFrame(frame);
  if (!r) return;
  if (r->family == 4) {
    frame[r->ip_offset + 1] = static_cast<std::uint8_t>((frame[r->ip_offset + 1] & 0xFC) | ecn);
    Store16(frame, r->ip_offset + 10, Ipv4HeaderSum(frame, *r, true));
  } else {
    // Traffic class straddles bytes 0 and 1: its ECN bits are bits 4 and 5 of byte 1.
    frame[r->ip_offset + 1] =
        static_cast<std::uint8_t>((frame[r->ip_offset + 1] & 0xCF) | (ecn << 4));
  }
}

void SetAckField(Frame& frame, std::uint32_t ack) {
  const auto r = ReadTcpFrame(frame);
  if (!r) return;
  Store32(frame, r->tcp_offset + 8, ack);
  FixChecksums(frame);
}

void StripTimestamps(Frame& frame) {
  const auto r = ReadTcpFrame(frame);
  if (!r || !r->has_timestamps) return;
  for (std::size_t i = 0; i < 10; ++i)
    frame[r->timestamp_option_offset + i] = 1;  // NOP
  FixChecksums(frame);
}

void SetTsValue(Frame& frame, std::uint32_t ts_value) {
  const auto r = ReadTcpFrame(frame);
  if (!r || !r->has_timestamps) return;
  Store32(frame, r->timestamp_option_offset + 2, ts_value);
  FixChecksums(frame);
}

void CorruptTcpChecksum(Frame& frame, std::uint16_t mask) {
  const auto r = ReadTcpFrame(frame);
  if (!r) return;
  Store16(frame, r->tcp_offset + 16,
          static_cast<std::uint16_t>(Load16(frame, r->tcp_offset + 16) ^ mask));
}

void CorruptIpChecksum(Frame& frame, std::uint16_t mask) {
  const auto r = ReadTcpFrame(frame);
  if (!r || r->family != 4) return;
  Store16(frame, r->ip_offset + 10,
          static_cast<std::uint16_t>(Load16(frame, r->ip_offset + 10) ^ mask));
}

}  // namespace vsnoop::proptest
