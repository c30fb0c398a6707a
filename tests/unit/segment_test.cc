// ParseSegment: frames from sim::FrameBuilder read back field by field, every Reason a frame
// is not read as TCP, and the IP and TCP checksum checks.
#include "vsnoop/segment.h"

#include <gtest/gtest.h>

#include <vector>

#include "vsnoop/sim/frame_builder.h"

namespace vsnoop {
namespace {

using sim::Endpoint;
using sim::FrameBuilder;
namespace flag = wire::tcp_flag;

constexpr std::size_t kIpAt = 14;  // untagged frames

const Endpoint kSenderV4 = Endpoint::Parse("10.0.0.1:40000");
const Endpoint kGuestV4 = Endpoint::Parse("10.0.0.2:5201");
const Endpoint kSenderV6 = Endpoint::Parse("[fd00::1]:40000");
const Endpoint kGuestV6 = Endpoint::Parse("[fd00::2]:5201");

// A frame with timestamps, as Linux sends them.
FrameBuilder Frame(const Endpoint& from, const Endpoint& to) {
  return FrameBuilder().From(from).To(to).Timestamps(7, 9);
}

std::vector<std::uint8_t> DataV4() {
  return Frame(kSenderV4, kGuestV4).Seq(1001).Ack(5001).Window(502).Payload(100).Build();
}
std::vector<std::uint8_t> DataV6() {
  return Frame(kSenderV6, kGuestV6).Seq(1001).Ack(5001).Window(502).Payload(100).Build();
}

std::optional<Reason> FailureOf(wire::Bytes frame) {
  Reason why = Reason::kEarlyAck;
  const auto seg = ParseSegment(frame, &why);
  if (seg) return std::nullopt;
  return why;
}

// Inserts IPv6 extension headers (each given with its own Next Header octet, which this
// rewrites to chain them) in front of the upper layer of an untagged IPv6 frame.
std::vector<std::uint8_t> WithIpv6Extensions(
    std::vector<std::uint8_t> frame,
    std::vector<std::pair<std::uint8_t, std::vector<std::uint8_t>>> chain) {
  std::uint8_t* ip = frame.data() + kIpAt;
  const std::uint8_t upper = ip[6];
  std::vector<std::uint8_t> inserted;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    auto header = chain[i].second;
    header[0] = i + 1 < chain.size() ? chain[i + 1].first : upper;
    inserted.insert(inserted.end(), header.begin(), header.end());
  }
  ip[6] = chain.front().first;
  wire::StoreBe16(ip + 4, static_cast<std::uint16_t>(wire::LoadBe16(ip + 4) + inserted.size()));
  frame.insert(frame.begin() + kIpAt + 40, inserted.begin(), inserted.end());
  return frame;
}

const std::vector<std::uint8_t> kDestOpts = {0, 0, 0x01, 0x04, 0, 0, 0, 0};  // PadN
const std::vector<std::uint8_t> kHopByHop = {0, 0, 0x01, 0x04, 0, 0, 0, 0};
const std::vector<std::uint8_t> kFragment = {0, 0, 0x00, 0x01, 0, 0, 0, 42};  // M set
const std::vector<std::uint8_t> kRoutingSegmentsLeft1 = {0, 0, 4, 1, 0, 0, 0, 0};
const std::vector<std::uint8_t> kRoutingSegmentsLeft0 = {0, 0, 4, 0, 0, 0, 0, 0};

TEST(ParseSegment, ReadsIpv4Frame) {
  const auto frame = DataV4();
  Reason why = Reason::kEarlyAck;
  const auto seg = ParseSegment(frame, &why);
  ASSERT_TRUE(seg.has_value());
  EXPECT_EQ(why, Reason::kEarlyAck);  // untouched on success
  EXPECT_EQ(seg->frame.data(), frame.data());
  EXPECT_EQ(seg->frame.size(), frame.size());
  EXPECT_EQ(seg->l2_header.size(), 14u);
  EXPECT_EQ(seg->family, 4);
  EXPECT_EQ(seg->ip_header.data(), frame.data() + kIpAt);
  EXPECT_EQ(seg->ip_header.size(), 20u);
  EXPECT_EQ(std::vector<std::uint8_t>(seg->source_ip, seg->source_ip + 4),
            (std::vector<std::uint8_t>{10, 0, 0, 1}));
  EXPECT_EQ(std::vector<std::uint8_t>(seg->destination_ip, seg->destination_ip + 4),
            (std::vector<std::uint8_t>{10, 0, 0, 2}));
  EXPECT_EQ(seg->ecn, wire::Ecn::kNotEct);
  EXPECT_EQ(seg->ttl, 64);
  EXPECT_EQ(seg->flow_label, 0u);
  EXPECT_EQ(seg->tcp.source_port(), 40000);
  EXPECT_EQ(seg->tcp.destination_port(), 5201);
  EXPECT_EQ(seg->tcp.seq(), 1001u);
  EXPECT_EQ(seg->tcp.ack(), 5001u);
  EXPECT_EQ(seg->tcp.window(), 502);
  EXPECT_EQ(seg->tcp.flags(), flag::kAck);
  EXPECT_EQ(seg->tcp.header_size(), 32u);
  EXPECT_EQ(seg->payload_size, 100u);
  EXPECT_EQ(seg->SequenceSpace(), 100u);
  EXPECT_TRUE(seg->IpChecksumValid());
  EXPECT_TRUE(seg->TcpChecksumValid());
}

TEST(ParseSegment, ReadsIpv6Frame) {
  const auto frame = DataV6();
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  ASSERT_TRUE(seg.has_value());
  EXPECT_EQ(seg->family, 6);
  EXPECT_EQ(seg->ip_header.size(), 40u);
  EXPECT_EQ(seg->source_ip, frame.data() + kIpAt + 8);
  EXPECT_EQ(seg->destination_ip, frame.data() + kIpAt + 24);
  EXPECT_EQ(seg->source_ip[0], 0xfd);
  EXPECT_EQ(seg->destination_ip[15], 2);
  EXPECT_EQ(seg->ttl, 64);  // hop limit
  EXPECT_EQ(seg->tcp.destination_port(), 5201);
  EXPECT_EQ(seg->payload_size, 100u);
  EXPECT_TRUE(seg->IpChecksumValid());
  EXPECT_TRUE(seg->TcpChecksumValid());
}

TEST(ParseSegment, ReadsTrafficClassFlowLabelAndEcnOfIpv6) {
  auto frame = Frame(kSenderV6, kGuestV6).Seq(1).Ack(1).Ecn(wire::Ecn::kCe).Build();
  // Traffic class DSCP 10 with CE, flow label 0x12345: the TCP checksum does not cover
  // them, so the frame stays valid.
  wire::StoreBe32(frame.data() + kIpAt, (6u << 28) | (0x2Bu << 20) | 0x12345u);
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  ASSERT_TRUE(seg.has_value());
  EXPECT_EQ(seg->tos, 0x2B);
  EXPECT_EQ(seg->ecn, wire::Ecn::kCe);
  EXPECT_EQ(seg->flow_label, 0x12345u);
  EXPECT_TRUE(seg->TcpChecksumValid());
}

TEST(ParseSegment, ReadsEcnAndTtlOfIpv4) {
  const auto frame = Frame(kSenderV4, kGuestV4).Seq(1).Ack(1).Ecn(wire::Ecn::kEct0).Ttl(3).Build();
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  ASSERT_TRUE(seg.has_value());
  EXPECT_EQ(seg->ecn, wire::Ecn::kEct0);
  EXPECT_EQ(seg->tos, 0x02);
  EXPECT_EQ(seg->ttl, 3);
  EXPECT_TRUE(seg->IpChecksumValid());
}

TEST(ParseSegment, ReadsVlanTaggedFrames) {
  for (const std::size_t tags : {1u, 2u}) {
    FrameBuilder b = Frame(kSenderV4, kGuestV4).Seq(1).Ack(1).Payload(10);
    for (std::size_t i = 0; i < tags; ++i)
      b.Vlan(static_cast<std::uint16_t>(100 + i));
    const auto frame = b.Build();
    Reason why{};
    const auto seg = ParseSegment(frame, &why);
    ASSERT_TRUE(seg.has_value()) << tags;
    EXPECT_EQ(seg->l2_header.size(), 14 + 4 * tags);
    EXPECT_EQ(seg->ip_header.data(), frame.data() + 14 + 4 * tags);
    EXPECT_EQ(seg->payload_size, 10u);
    EXPECT_TRUE(seg->IpChecksumValid());
    EXPECT_TRUE(seg->TcpChecksumValid());
  }
  const auto v6 = Frame(kSenderV6, kGuestV6).Vlan(7).Seq(1).Ack(1).Build();
  Reason why{};
  const auto seg = ParseSegment(v6, &why);
  ASSERT_TRUE(seg.has_value());
  EXPECT_EQ(seg->family, 6);
  EXPECT_EQ(seg->l2_header.size(), 18u);
}

TEST(ParseSegment, SynAndFinEachTakeOneSequenceNumber) {
  Reason why{};
  const auto syn = Frame(kSenderV4, kGuestV4).Seq(1).Flags(flag::kSyn).Build();
  EXPECT_EQ(ParseSegment(syn, &why)->SequenceSpace(), 1u);
  const auto fin = Frame(kSenderV4, kGuestV4).Seq(1).Ack(1).Flags(flag::kFin).Payload(10).Build();
  EXPECT_EQ(ParseSegment(fin, &why)->SequenceSpace(), 11u);
  const auto both =
      Frame(kSenderV4, kGuestV4).Seq(1).Flags(flag::kSyn | flag::kFin).Payload(3).Build();
  EXPECT_EQ(ParseSegment(both, &why)->SequenceSpace(), 5u);
}

TEST(ParseSegment, IgnoresEthernetPadding) {
  // A pure ACK with four NOPs is 58 bytes; Ethernet pads it to 60. The padding is neither
  // payload nor covered by the TCP checksum.
  auto frame = FrameBuilder()
                   .From(kSenderV4)
                   .To(kGuestV4)
                   .Seq(1)
                   .Ack(1)
                   .RawOption({wire::tcp_option::kNop, wire::tcp_option::kNop,
                               wire::tcp_option::kNop, wire::tcp_option::kNop})
                   .Build();
  ASSERT_EQ(frame.size(), 58u);
  frame.resize(60, 0xEE);
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  ASSERT_TRUE(seg.has_value());
  EXPECT_EQ(seg->payload_size, 0u);
  EXPECT_EQ(seg->tcp.segment().size(), 24u);
  EXPECT_TRUE(seg->TcpChecksumValid());
}

TEST(ParseSegment, ReadsPastIpv6ExtensionHeaders) {
  const auto frame = WithIpv6Extensions(DataV6(), {{wire::kIpv6HopByHop, kHopByHop},
                                                   {wire::kIpv6Routing, kRoutingSegmentsLeft0},
                                                   {wire::kIpv6DestOpts, kDestOpts}});
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  ASSERT_TRUE(seg.has_value()) << ReasonLabel(why);
  EXPECT_EQ(seg->ip_header.size(), 40u + 24u);
  EXPECT_EQ(seg->payload_size, 100u);
  // RFC 8200 §8.1: the pseudo header's length is the upper-layer length, without the
  // extension headers, so the checksum still verifies.
  EXPECT_TRUE(seg->TcpChecksumValid());
}

TEST(ParseSegment, FailsOnBadEthernet) {
  const auto frame = DataV4();
  EXPECT_EQ(FailureOf(wire::Bytes(frame.data(), 13)), Reason::kBadEthernet);
  const auto three_tags = Frame(kSenderV4, kGuestV4).Vlan(1).Vlan(2).Vlan(3).Seq(1).Ack(1).Build();
  EXPECT_EQ(FailureOf(three_tags), Reason::kBadEthernet);
}

TEST(ParseSegment, FailsOnNotIp) {
  auto frame = DataV4();
  frame[12] = 0x08;
  frame[13] = 0x06;  // ARP
  EXPECT_EQ(FailureOf(frame), Reason::kNotIp);
}

TEST(ParseSegment, FailsOnIpv4Errors) {
  const auto good = DataV4();
  EXPECT_EQ(FailureOf(wire::Bytes(good.data(), kIpAt + 19)), Reason::kIpv4Truncated);

  auto v = good;
  v[kIpAt] = 0x65;
  EXPECT_EQ(FailureOf(v), Reason::kIpv4BadVersion);

  v = good;
  v[kIpAt] = 0x44;
  EXPECT_EQ(FailureOf(v), Reason::kIpv4BadHeaderLength);

  v = good;
  wire::StoreBe16(v.data() + kIpAt + 2, static_cast<std::uint16_t>(good.size() - kIpAt + 1));
  EXPECT_EQ(FailureOf(v), Reason::kIpv4BadTotalLength);

  v = good;
  v[kIpAt + 6] = 0x20;  // MF
  EXPECT_EQ(FailureOf(v), Reason::kIpv4Fragment);
  v[kIpAt + 6] = 0x00;
  v[kIpAt + 7] = 0x01;  // offset 8 bytes
  EXPECT_EQ(FailureOf(v), Reason::kIpv4Fragment);

  v = good;
  v[kIpAt + 9] = 17;  // UDP
  EXPECT_EQ(FailureOf(v), Reason::kNotTcp);
}

TEST(ParseSegment, FailsOnIpv6Errors) {
  const auto good = DataV6();
  EXPECT_EQ(FailureOf(wire::Bytes(good.data(), kIpAt + 39)), Reason::kIpv6Truncated);

  auto v = good;
  v[kIpAt] = 0x45;
  EXPECT_EQ(FailureOf(v), Reason::kIpv6BadVersion);

  v = good;
  wire::StoreBe16(v.data() + kIpAt + 4, 0);
  EXPECT_EQ(FailureOf(v), Reason::kIpv6BadPayloadLength);
  wire::StoreBe16(v.data() + kIpAt + 4, static_cast<std::uint16_t>(good.size() - kIpAt - 39));
  EXPECT_EQ(FailureOf(v), Reason::kIpv6BadPayloadLength);

  std::vector<std::pair<std::uint8_t, std::vector<std::uint8_t>>> nine(
      9, {wire::kIpv6DestOpts, kDestOpts});
  EXPECT_EQ(FailureOf(WithIpv6Extensions(good, nine)), Reason::kIpv6ChainTooLong);

  EXPECT_EQ(FailureOf(WithIpv6Extensions(good, {{wire::kIpv6Fragment, kFragment}})),
            Reason::kIpv6Fragment);
  EXPECT_EQ(FailureOf(WithIpv6Extensions(good, {{wire::kIpv6Routing, kRoutingSegmentsLeft1}})),
            Reason::kIpv6Routing);

  v = good;
  v[kIpAt + 6] = 17;
  EXPECT_EQ(FailureOf(v), Reason::kNotTcp);
  EXPECT_EQ(FailureOf(WithIpv6Extensions(v, {{wire::kIpv6HopByHop, kHopByHop}})), Reason::kNotTcp);
}

TEST(ParseSegment, FailsOnTcpTruncated) {
  // IPv4 total length leaves 19 bytes of TCP header; the rest of the frame is padding.
  auto v4 = DataV4();
  wire::StoreBe16(v4.data() + kIpAt + 2, 20 + 19);
  EXPECT_EQ(FailureOf(v4), Reason::kTcpTruncated);
  auto v6 = DataV6();
  wire::StoreBe16(v6.data() + kIpAt + 4, 19);
  EXPECT_EQ(FailureOf(v6), Reason::kTcpTruncated);
  // An IP header with no TCP at all.
  wire::StoreBe16(v4.data() + kIpAt + 2, 20);
  EXPECT_EQ(FailureOf(v4), Reason::kTcpTruncated);
}

TEST(ParseSegment, FailsOnTcpBadDataOffset) {
  auto below = DataV4();
  below[kIpAt + 20 + 12] = 0x40;  // data offset 4
  EXPECT_EQ(FailureOf(below), Reason::kTcpBadDataOffset);
  // A pure ACK (a 32-byte header, no payload) claiming a 60-byte header.
  auto beyond = Frame(kSenderV6, kGuestV6).Seq(1).Ack(1).Build();
  beyond[kIpAt + 40 + 12] = 0xF0;
  EXPECT_EQ(FailureOf(beyond), Reason::kTcpBadDataOffset);
}

TEST(Segment, IpChecksumValidDetectsBadIpChecksum) {
  const auto good = DataV4();
  const auto bad = Frame(kSenderV4, kGuestV4)
                       .Seq(1001)
                       .Ack(5001)
                       .Window(502)
                       .Payload(100)
                       .BadIpChecksum()
                       .Build();
  Reason why{};
  const auto g = ParseSegment(good, &why);
  const auto b = ParseSegment(bad, &why);
  ASSERT_TRUE(g.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(g->IpChecksumValid());
  EXPECT_FALSE(b->IpChecksumValid());
  EXPECT_TRUE(b->TcpChecksumValid()) << "the IP header is not in the TCP checksum";
}

TEST(Segment, TcpChecksumValidDetectsBadTcpChecksum) {
  for (const bool v6 : {false, true}) {
    const auto bad = Frame(v6 ? kSenderV6 : kSenderV4, v6 ? kGuestV6 : kGuestV4)
                         .Seq(1001)
                         .Ack(5001)
                         .Payload(33)
                         .BadTcpChecksum()
                         .Build();
    Reason why{};
    const auto seg = ParseSegment(bad, &why);
    ASSERT_TRUE(seg.has_value());
    EXPECT_TRUE(seg->IpChecksumValid()) << "IPv6 has no header checksum; IPv4's is good";
    EXPECT_FALSE(seg->TcpChecksumValid());
  }
}

TEST(Segment, TcpChecksumCoversPseudoHeaderAndPayload) {
  // Changing a payload byte, or an address (pseudo header), breaks the TCP checksum.
  auto payload_changed = DataV4();
  payload_changed.back() = static_cast<std::uint8_t>(payload_changed.back() ^ 0x01);
  Reason why{};
  EXPECT_FALSE(ParseSegment(payload_changed, &why)->TcpChecksumValid());

  auto address_changed = DataV6();
  address_changed[kIpAt + 8 + 15] ^= 0x01;
  EXPECT_FALSE(ParseSegment(address_changed, &why)->TcpChecksumValid());
}

}  // namespace
}  // namespace vsnoop
