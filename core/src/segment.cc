#include "vsnoop/segment.h"

#include "vsnoop/wire/checksum.h"

namespace vsnoop {
namespace {

Reason FromIpv4Error(wire::Ipv4Error e) {
  switch (e) {
    case wire::Ipv4Error::kTruncated:
      return Reason::kIpv4Truncated;
    case wire::Ipv4Error::kBadVersion:
      return Reason::kIpv4BadVersion;
    case wire::Ipv4Error::kBadHeaderLength:
      return Reason::kIpv4BadHeaderLength;
    case wire::Ipv4Error::kBadTotalLength:
      return Reason::kIpv4BadTotalLength;
  }
  return Reason::kIpv4Truncated;
}

Reason FromIpv6Error(wire::Ipv6Error e) {
  switch (e) {
    case wire::Ipv6Error::kTruncated:
      return Reason::kIpv6Truncated;
    case wire::Ipv6Error::kBadVersion:
      return Reason::kIpv6BadVersion;
    case wire::Ipv6Error::kBadPayloadLength:
      return Reason::kIpv6BadPayloadLength;
    case wire::Ipv6Error::kChainTooLong:
      return Reason::kIpv6ChainTooLong;
  }
  return Reason::kIpv6Truncated;
}

}  // namespace

std::optional<Segment> ParseSegment(wire::Bytes frame, Reason* why) {
  const auto eth = wire::EthernetView::Parse(frame);
  if (!eth) {
    *why = Reason::kBadEthernet;
    return std::nullopt;
  }
  // The IP layer's part of the Segment, filled before the TCP header is read.
  struct IpPart {
    std::uint8_t family = 4;
    wire::Bytes header;
    const std::uint8_t* source = nullptr;
    const std::uint8_t* destination = nullptr;
    wire::Ecn ecn = wire::Ecn::kNotEct;
    std::uint8_t tos = 0;
    std::uint8_t ttl = 0;
    std::uint32_t flow_label = 0;
  } s;
  wire::Bytes l4;
  if (eth->ether_type() == wire::kEtherTypeIpv4) {
    wire::Ipv4Error error{};
    const auto ip = wire::Ipv4View::Parse(eth->payload(), &error);
    if (!ip) {
      *why = FromIpv4Error(error);
      return std::nullopt;
    }
    if (ip->is_fragment()) {
      *why = Reason::kIpv4Fragment;
      return std::nullopt;
    }
    if (ip->protocol() != wire::kIpProtoTcp) {
      *why = Reason::kNotTcp;
      return std::nullopt;
    }
    s.family = 4;
    s.header = ip->header();
    s.source = ip->source();
    s.destination = ip->destination();
    s.ecn = ip->ecn();
    s.tos = ip->tos();
    s.ttl = ip->ttl();
    l4 = ip->payload();
  } else if (eth->ether_type() == wire::kEtherTypeIpv6) {
    wire::Ipv6Error error{};
    const auto ip = wire::Ipv6View::Parse(eth->payload(), &error);
    if (!ip) {
      *why = FromIpv6Error(error);
      return std::nullopt;
    }
    if (ip->has_fragment_header()) {
      *why = Reason::kIpv6Fragment;
      return std::nullopt;
    }
    if (ip->routing_segments_left() != 0) {
      *why = Reason::kIpv6Routing;
      return std::nullopt;
    }
    if (ip->upper_protocol() != wire::kIpProtoTcp) {
      *why = Reason::kNotTcp;
      return std::nullopt;
    }
    s.family = 6;
    s.header = eth->payload().first(ip->header_size());
    s.source = ip->source();
    s.destination = ip->destination();
    s.ecn = ip->ecn();
    s.tos = ip->traffic_class();
    s.ttl = ip->hop_limit();
    s.flow_label = ip->flow_label();
    l4 = ip->payload();
  } else {
    *why = Reason::kNotIp;
    return std::nullopt;
  }
  wire::TcpError error{};
  const auto tcp = wire::TcpView::Parse(l4, &error);
  if (!tcp) {
    *why = error == wire::TcpError::kTruncated ? Reason::kTcpTruncated : Reason::kTcpBadDataOffset;
    return std::nullopt;
  }
  return Segment{.frame = frame,
                 .l2_header = eth->header(),
                 .family = s.family,
                 .ip_header = s.header,
                 .source_ip = s.source,
                 .destination_ip = s.destination,
                 .ecn = s.ecn,
                 .tos = s.tos,
                 .ttl = s.ttl,
                 .flow_label = s.flow_label,
                 .tcp = *tcp,
                 .payload_size = static_cast<std::uint32_t>(tcp->payload().size())};
}

bool Segment::IpChecksumValid() const {
  // An IPv4 header is 20 to 60 bytes, a multiple of 4.
  return family == 6 ||
         wire::ChecksumFromSum(wire::SumWords32(ip_header.data(), ip_header.size())) == 0;
}

bool Segment::TcpChecksumValid() const {
  const auto length = static_cast<std::uint32_t>(tcp.segment().size());
  wire::InternetChecksum sum = family == 4
                                   ? wire::TcpPseudoHeaderV4(source_ip, destination_ip, length)
                                   : wire::TcpPseudoHeaderV6(source_ip, destination_ip, length);
  sum.Add(tcp.segment());
  return sum.Finish() == 0;
}

}  // namespace vsnoop

namespace vsnoop {

bool RewriteWindow(std::span<std::uint8_t> frame, std::uint16_t window_field,
                   bool checksum_partial) {
  Reason why{};
  const std::optional<Segment> seg = ParseSegment(frame, &why);
  if (!seg) return false;
  const auto offset = static_cast<std::size_t>(seg->tcp.segment().data() - frame.data());
  std::uint8_t* tcp = frame.data() + offset;
  const std::uint16_t old_window = seg->tcp.window();
  wire::StoreBe16(tcp + 14, window_field);
  if (!checksum_partial) {
    wire::StoreBe16(tcp + 16, wire::ChecksumUpdate16(seg->tcp.checksum(), old_window, window_field));
  }
  return true;
}

}  // namespace vsnoop
