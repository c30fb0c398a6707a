// Ipv6View: the base header's fields, the extension-header chain (RFC 8200 §4) and the
// lengths that must agree with the bytes present.
#include "vsnoop/wire/ipv6.h"

#include <gtest/gtest.h>

#include <vector>

namespace vsnoop::wire {
namespace {

constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoUdp = 17;

// clang-format off
// (extension headers: next header, length, then the rest, 8 bytes a line)

// Hop-by-Hop Options (RFC 8200 §4.3), next header Destination Options, one PadN option
// filling its 8 bytes.
constexpr std::uint8_t kHopByHopThenDestOpts[] = {kIpv6DestOpts, 0, 0x01, 0x04, 0, 0, 0, 0};
// Destination Options (§4.6), next header TCP, padded with PadN.
constexpr std::uint8_t kDestOptsThenTcp[] = {kProtoTcp, 0, 0x01, 0x04, 0, 0, 0, 0};
// Destination Options of 16 bytes (Hdr Ext Len 1), next header TCP.
constexpr std::uint8_t kLongDestOptsThenTcp[] = {
    kProtoTcp, 1, 0x01, 0x0c, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0};
// Destination Options, next header Destination Options: links of a long chain.
constexpr std::uint8_t kDestOptsThenDestOpts[] = {kIpv6DestOpts, 0, 0x01, 0x04, 0, 0, 0, 0};
// Routing header (§4.4), type 4 (segment routing), Segments Left 0: this node is the final
// destination, the transport header is ours to read. Hdr Ext Len 2: 24 bytes.
constexpr std::uint8_t kRoutingSegmentsLeft0[] = {
    kProtoTcp, 2, 4, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0};
// The same routing header with Segments Left 1: the packet is still on its way.
constexpr std::uint8_t kRoutingSegmentsLeft1[] = {
    kProtoTcp, 2, 4, 1, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0};
// Fragment header (§4.5): offset 0, M set, identification 0xCAFEF00D. Its second octet is
// reserved, not a length: a non-zero value there must not lengthen the header.
constexpr std::uint8_t kFirstFragmentThenTcp[] = {
    kProtoTcp, 0x55, 0x00, 0x01, 0xca, 0xfe, 0xf0, 0x0d};
// Hop-by-Hop claiming 16 bytes (Hdr Ext Len 1) when only its first 8 are in the payload.
constexpr std::uint8_t kHopByHopLongerThanPayload[] = {kProtoTcp, 1, 0x01, 0x04, 0, 0, 0, 0};
// Hop-by-Hop cut to 4 bytes: shorter than the 8 every extension header has.
constexpr std::uint8_t kHopByHopCutShort[] = {kProtoTcp, 0, 0x01, 0x02};

// A 20-byte TCP header (ports 40000 -> 5201, data offset 5, ACK) as the upper layer.
constexpr std::uint8_t kTcpHeader[] = {
    0x9c, 0x40, 0x14, 0x51,  // ports
    0, 0, 0, 1,              // sequence number
    0, 0, 0, 2,              // acknowledgment number
    0x50, 0x10, 0xff, 0xff,  // data offset 5, ACK, window
    0, 0, 0, 0};             // checksum, urgent pointer

// clang-format on

// fd00::1 -> fd00::2, traffic class `tclass`, flow label `flow_label`, hop limit 64; the
// payload is the concatenation of `parts`; payload length covers exactly those bytes.
std::vector<std::uint8_t> MakePacket(std::uint8_t next_header, std::initializer_list<Bytes> parts,
                                     std::uint8_t tclass = 0, std::uint32_t flow_label = 0) {
  std::vector<std::uint8_t> p(40, 0);
  StoreBe32(p.data(), (6u << 28) | (static_cast<std::uint32_t>(tclass) << 20) | flow_label);
  p[6] = next_header;
  p[7] = 64;
  p[8] = 0xfd;
  p[23] = 1;
  p[24] = 0xfd;
  p[39] = 2;
  for (Bytes part : parts)
    p.insert(p.end(), part.begin(), part.end());
  StoreBe16(p.data() + 4, static_cast<std::uint16_t>(p.size() - 40));
  return p;
}

std::optional<Ipv6Error> ErrorOf(Bytes bytes) {
  Ipv6Error error{};
  if (Ipv6View::Parse(bytes, &error).has_value()) return std::nullopt;
  return error;
}

TEST(Ipv6View, ReadsBaseHeaderWithoutExtensions) {
  const auto packet = MakePacket(kProtoTcp, {kTcpHeader});
  Ipv6Error error = Ipv6Error::kBadVersion;
  const auto ip = Ipv6View::Parse(packet, &error);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(error, Ipv6Error::kBadVersion);  // untouched on success
  EXPECT_EQ(ip->payload_length(), 20);
  EXPECT_EQ(ip->next_header(), kProtoTcp);
  EXPECT_EQ(ip->upper_protocol(), kProtoTcp);
  EXPECT_EQ(ip->hop_limit(), 64);
  EXPECT_EQ(ip->source(), packet.data() + 8);
  EXPECT_EQ(ip->source()[0], 0xfd);
  EXPECT_EQ(ip->source()[15], 1);
  EXPECT_EQ(ip->destination(), packet.data() + 24);
  EXPECT_EQ(ip->destination()[15], 2);
  EXPECT_EQ(ip->extension_header_count(), 0u);
  EXPECT_FALSE(ip->has_fragment_header());
  EXPECT_EQ(ip->routing_segments_left(), 0);
  EXPECT_EQ(ip->header_size(), 40u);
  EXPECT_EQ(ip->payload().data(), packet.data() + 40);
  EXPECT_EQ(ip->payload().size(), 20u);
}

TEST(Ipv6View, ReadsTrafficClassAndFlowLabel) {
  // Traffic class 0xB9 (DSCP 46, ECT(1)) straddles the first two octets; the flow label is
  // the low 20 bits of the first word.
  const auto packet = MakePacket(kProtoTcp, {kTcpHeader}, 0xB9, 0xABCDE);
  const auto ip = Ipv6View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->traffic_class(), 0xB9);
  EXPECT_EQ(ip->ecn(), Ecn::kEct1);
  EXPECT_EQ(ip->flow_label(), 0xABCDEu);

  const auto all_ones = MakePacket(kProtoTcp, {kTcpHeader}, 0xFF, 0xFFFFF);
  const auto ip2 = Ipv6View::Parse(all_ones);
  ASSERT_TRUE(ip2.has_value());
  EXPECT_EQ(ip2->traffic_class(), 0xFF);
  EXPECT_EQ(ip2->ecn(), Ecn::kCe);
  EXPECT_EQ(ip2->flow_label(), 0xFFFFFu);

  for (const Ecn ecn : {Ecn::kNotEct, Ecn::kEct1, Ecn::kEct0, Ecn::kCe}) {
    const auto p = MakePacket(kProtoTcp, {kTcpHeader}, static_cast<std::uint8_t>(ecn), 0);
    EXPECT_EQ(Ipv6View::Parse(p)->ecn(), ecn);
    EXPECT_EQ(Ipv6View::Parse(p)->flow_label(), 0u);
  }
}

TEST(Ipv6View, WalksHopByHopAndDestinationOptionsToTcp) {
  const auto packet =
      MakePacket(kIpv6HopByHop, {kHopByHopThenDestOpts, kDestOptsThenTcp, kTcpHeader});
  const auto ip = Ipv6View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->next_header(), kIpv6HopByHop);
  EXPECT_EQ(ip->upper_protocol(), kProtoTcp);
  EXPECT_EQ(ip->extension_header_count(), 2u);
  EXPECT_EQ(ip->header_size(), 56u);
  EXPECT_EQ(ip->payload().data(), packet.data() + 56);
  EXPECT_EQ(ip->payload().size(), 20u);
  EXPECT_FALSE(ip->has_fragment_header());
}

TEST(Ipv6View, UsesHdrExtLenInEightByteUnits) {
  const auto packet = MakePacket(kIpv6DestOpts, {kLongDestOptsThenTcp, kTcpHeader});
  const auto ip = Ipv6View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->header_size(), 56u);
  EXPECT_EQ(ip->payload().size(), 20u);
}

TEST(Ipv6View, ReportsRoutingSegmentsLeft) {
  const auto final_hop = MakePacket(kIpv6Routing, {kRoutingSegmentsLeft0, kTcpHeader});
  auto ip = Ipv6View::Parse(final_hop);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->routing_segments_left(), 0);
  EXPECT_EQ(ip->upper_protocol(), kProtoTcp);
  EXPECT_EQ(ip->header_size(), 64u);
  EXPECT_EQ(ip->payload().size(), 20u);

  const auto in_transit = MakePacket(kIpv6Routing, {kRoutingSegmentsLeft1, kTcpHeader});
  ip = Ipv6View::Parse(in_transit);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->routing_segments_left(), 1);
  EXPECT_EQ(ip->upper_protocol(), kProtoTcp);
}

TEST(Ipv6View, FragmentHeaderIsAlwaysEightBytes) {
  const auto packet = MakePacket(kIpv6Fragment, {kFirstFragmentThenTcp, kTcpHeader});
  const auto ip = Ipv6View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_TRUE(ip->has_fragment_header());
  EXPECT_EQ(ip->extension_header_count(), 1u);
  EXPECT_EQ(ip->header_size(), 48u);
  EXPECT_EQ(ip->upper_protocol(), kProtoTcp);
}

TEST(Ipv6View, StopsAtTheFirstHeaderThatIsNotAnExtensionItWalks) {
  // No Next Header (59) after Hop-by-Hop: the walk ends there.
  constexpr std::uint8_t kHopByHopThenNoNext[] = {kIpv6NoNext, 0, 0x01, 0x04, 0, 0, 0, 0};
  const auto packet = MakePacket(kIpv6HopByHop, {kHopByHopThenNoNext});
  const auto ip = Ipv6View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->upper_protocol(), kIpv6NoNext);
  EXPECT_EQ(ip->header_size(), 48u);
  EXPECT_TRUE(ip->payload().empty());

  // ESP is opaque: not walked.
  const auto esp = MakePacket(kIpv6Esp, {kTcpHeader});
  EXPECT_EQ(Ipv6View::Parse(esp)->upper_protocol(), kIpv6Esp);
  EXPECT_EQ(Ipv6View::Parse(esp)->extension_header_count(), 0u);

  const auto udp = MakePacket(kProtoUdp, {kTcpHeader});
  EXPECT_EQ(Ipv6View::Parse(udp)->upper_protocol(), kProtoUdp);
}

TEST(Ipv6View, AcceptsEightExtensionHeaders) {
  std::vector<Bytes> chain(7, Bytes(kDestOptsThenDestOpts));
  chain.push_back(kDestOptsThenTcp);
  chain.push_back(kTcpHeader);
  std::vector<std::uint8_t> packet = MakePacket(kIpv6DestOpts, {});
  for (Bytes part : chain)
    packet.insert(packet.end(), part.begin(), part.end());
  StoreBe16(packet.data() + 4, static_cast<std::uint16_t>(packet.size() - 40));
  const auto ip = Ipv6View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->extension_header_count(), 8u);
  EXPECT_EQ(ip->upper_protocol(), kProtoTcp);
  EXPECT_EQ(ip->header_size(), 40u + 64u);
}

TEST(Ipv6View, RejectsChainOfNineExtensionHeaders) {
  std::vector<std::uint8_t> packet = MakePacket(kIpv6DestOpts, {});
  for (int i = 0; i < 8; ++i) {
    packet.insert(packet.end(), std::begin(kDestOptsThenDestOpts), std::end(kDestOptsThenDestOpts));
  }
  packet.insert(packet.end(), std::begin(kDestOptsThenTcp), std::end(kDestOptsThenTcp));
  packet.insert(packet.end(), std::begin(kTcpHeader), std::end(kTcpHeader));
  StoreBe16(packet.data() + 4, static_cast<std::uint16_t>(packet.size() - 40));
  EXPECT_EQ(ErrorOf(packet), Ipv6Error::kChainTooLong);
}

TEST(Ipv6View, RejectsExtensionHeaderRunningPastThePayload) {
  EXPECT_EQ(ErrorOf(MakePacket(kIpv6HopByHop, {kHopByHopLongerThanPayload})),
            Ipv6Error::kTruncated);
  EXPECT_EQ(ErrorOf(MakePacket(kIpv6HopByHop, {kHopByHopCutShort})), Ipv6Error::kTruncated);
  EXPECT_EQ(ErrorOf(MakePacket(kIpv6Fragment, {Bytes(kFirstFragmentThenTcp, 4)})),
            Ipv6Error::kTruncated);
  // The second header of a chain cut short.
  EXPECT_EQ(ErrorOf(MakePacket(kIpv6HopByHop, {kHopByHopThenDestOpts, kHopByHopCutShort})),
            Ipv6Error::kTruncated);
}

TEST(Ipv6View, ExtensionHeaderMayNotReadIntoBytesBeyondPayloadLength) {
  // The frame holds the whole 16-byte header, but the payload length says 8: the bytes
  // after it are Ethernet padding, not part of the packet.
  auto packet = MakePacket(kIpv6DestOpts, {kLongDestOptsThenTcp});
  StoreBe16(packet.data() + 4, 8);
  EXPECT_EQ(ErrorOf(packet), Ipv6Error::kTruncated);
}

TEST(Ipv6View, RejectsZeroPayloadLength) {
  // Zero announces a jumbogram (RFC 2675), which vSnoop does not read.
  auto packet = MakePacket(kProtoTcp, {kTcpHeader});
  StoreBe16(packet.data() + 4, 0);
  EXPECT_EQ(ErrorOf(packet), Ipv6Error::kBadPayloadLength);
}

TEST(Ipv6View, RejectsPayloadLengthBeyondTheFrame) {
  auto packet = MakePacket(kProtoTcp, {kTcpHeader});
  StoreBe16(packet.data() + 4, 21);
  EXPECT_EQ(ErrorOf(packet), Ipv6Error::kBadPayloadLength);
}

TEST(Ipv6View, ExcludesPaddingAfterPayloadLength) {
  auto packet = MakePacket(kProtoTcp, {kTcpHeader});
  packet.resize(packet.size() + 6, 0);
  const auto ip = Ipv6View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->payload().size(), 20u);
}

TEST(Ipv6View, RejectsFewerThanFortyBytes) {
  const auto packet = MakePacket(kProtoTcp, {kTcpHeader});
  for (std::size_t n = 0; n < 40; ++n) {
    EXPECT_EQ(ErrorOf(Bytes(packet.data(), n)), Ipv6Error::kTruncated) << n;
  }
}

TEST(Ipv6View, RejectsBadVersion) {
  auto packet = MakePacket(kProtoTcp, {kTcpHeader});
  packet[0] = 0x45;
  EXPECT_EQ(ErrorOf(packet), Ipv6Error::kBadVersion);
  EXPECT_FALSE(Ipv6View::Parse(packet).has_value());
}

}  // namespace
}  // namespace vsnoop::wire
