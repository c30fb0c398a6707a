// Ipv4View: header fields, options, the checks against the bytes present (RFC 791 §3.1),
// Ethernet padding, fragments, ECN, and the header checksum.
#include "vsnoop/wire/ipv4.h"

#include <gtest/gtest.h>

#include <vector>

#include "reference_checksum.h"

namespace vsnoop::wire {
namespace {

using vsnoop::test_support::PutBe16;
using vsnoop::test_support::ReferenceChecksum;

// clang-format off
// (each header: version/IHL to checksum on one line, then the addresses)

// A real header (140.124.25.172 -> 174.36.30.43, TCP, DF, TTL 128) whose published checksum
// is 0x442E, followed by the 28 bytes its total length (48) announces.
constexpr std::uint8_t kIpv4TcpPacket[] = {
    0x45, 0x00, 0x00, 0x30, 0x44, 0x22, 0x40, 0x00, 0x80, 0x06, 0x44, 0x2e,
    0x8c, 0x7c, 0x19, 0xac, 0xae, 0x24, 0x1e, 0x2b,
    // 28 bytes of payload
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
    0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c};

// Version nibble 6 in what the EtherType said was IPv4.
constexpr std::uint8_t kIpv4BadVersion[] = {
    0x65, 0x00, 0x00, 0x14, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02};

// IHL 4 (16 bytes): below the 20-byte minimum header.
constexpr std::uint8_t kIpv4IhlBelowFive[] = {
    0x44, 0x00, 0x00, 0x14, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02};

// IHL 0.
constexpr std::uint8_t kIpv4IhlZero[] = {
    0x40, 0x00, 0x00, 0x14, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02};

// IHL 6 (24 bytes) but only the 20-byte base header present.
constexpr std::uint8_t kIpv4IhlBeyondBytes[] = {
    0x46, 0x00, 0x00, 0x18, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02};

// Total length 19: smaller than the 20-byte header.
constexpr std::uint8_t kIpv4TotalLengthBelowHeader[] = {
    0x45, 0x00, 0x00, 0x13, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02};

// IHL 6 (24 bytes) with total length 22: cuts into the options.
constexpr std::uint8_t kIpv4TotalLengthInsideOptions[] = {
    0x46, 0x00, 0x00, 0x16, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x01, 0x01, 0x01, 0x00};  // options: NOP, NOP, NOP, End

// Total length 41 with only 40 bytes present.
constexpr std::uint8_t kIpv4TotalLengthBeyondFrame[] = {
    0x45, 0x00, 0x00, 0x29, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};

// clang-format on

// A header of `ihl` words (options are NOPs, RFC 791 option type 1), total length
// ihl * 4 + payload, a correct checksum, and the payload bytes 0xC0, 0xC1, ...
std::vector<std::uint8_t> MakePacket(std::size_t ihl, std::size_t payload) {
  std::vector<std::uint8_t> p(ihl * 4 + payload, 0);
  p[0] = static_cast<std::uint8_t>(0x40 | ihl);
  PutBe16(p, 2, static_cast<std::uint16_t>(p.size()));
  PutBe16(p, 4, 0x1234);
  p[6] = 0x40;  // DF
  p[8] = 64;
  p[9] = kIpProtoTcp;
  const std::uint8_t addresses[] = {10, 0, 0, 1, 10, 0, 0, 2};
  std::copy(std::begin(addresses), std::end(addresses), p.begin() + 12);
  for (std::size_t i = 20; i < ihl * 4; ++i)
    p[i] = 0x01;
  for (std::size_t i = 0; i < payload; ++i)
    p[ihl * 4 + i] = static_cast<std::uint8_t>(0xC0 + i);
  PutBe16(p, 10, ReferenceChecksum(std::span(p).first(ihl * 4)));
  return p;
}

std::optional<Ipv4Error> ErrorOf(Bytes bytes) {
  Ipv4Error error{};
  if (Ipv4View::Parse(bytes, &error).has_value()) return std::nullopt;
  return error;
}

TEST(Ipv4View, ReadsEveryFieldOfAMinimalHeader) {
  Ipv4Error error = Ipv4Error::kTruncated;
  const auto ip = Ipv4View::Parse(kIpv4TcpPacket, &error);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(error, Ipv4Error::kTruncated);  // untouched on success
  EXPECT_EQ(ip->header_size(), 20u);
  EXPECT_EQ(ip->tos(), 0);
  EXPECT_EQ(ip->ecn(), Ecn::kNotEct);
  EXPECT_EQ(ip->total_length(), 48);
  EXPECT_EQ(ip->identification(), 0x4422);
  EXPECT_TRUE(ip->dont_fragment());
  EXPECT_FALSE(ip->more_fragments());
  EXPECT_EQ(ip->fragment_offset(), 0);
  EXPECT_FALSE(ip->is_fragment());
  EXPECT_EQ(ip->ttl(), 128);
  EXPECT_EQ(ip->protocol(), kIpProtoTcp);
  EXPECT_EQ(ip->header_checksum(), 0x442E);
  EXPECT_EQ(ip->source(), kIpv4TcpPacket + 12);
  EXPECT_EQ(ip->source()[0], 140);
  EXPECT_EQ(ip->destination(), kIpv4TcpPacket + 16);
  EXPECT_EQ(ip->destination()[3], 43);
  EXPECT_TRUE(ip->options().empty());
  EXPECT_EQ(ip->header().data(), kIpv4TcpPacket);
  EXPECT_EQ(ip->header().size(), 20u);
  EXPECT_EQ(ip->payload().data(), kIpv4TcpPacket + 20);
  EXPECT_EQ(ip->payload().size(), 28u);
  EXPECT_TRUE(ip->HeaderChecksumValid());
}

TEST(Ipv4View, ParsesWithoutAnErrorPointer) {
  EXPECT_TRUE(Ipv4View::Parse(kIpv4TcpPacket).has_value());
  EXPECT_FALSE(Ipv4View::Parse(kIpv4BadVersion).has_value());
}

TEST(Ipv4View, ReadsOptionsForEveryIhlFromSixToFifteen) {
  for (std::size_t ihl = 6; ihl <= 15; ++ihl) {
    const auto packet = MakePacket(ihl, 5);
    const auto ip = Ipv4View::Parse(packet);
    ASSERT_TRUE(ip.has_value()) << ihl;
    EXPECT_EQ(ip->header_size(), ihl * 4);
    EXPECT_EQ(ip->options().size(), ihl * 4 - 20);
    EXPECT_EQ(ip->options().data(), packet.data() + 20);
    EXPECT_EQ(ip->header().size(), ihl * 4);
    ASSERT_EQ(ip->payload().size(), 5u);
    EXPECT_EQ(ip->payload()[0], 0xC0);
    EXPECT_TRUE(ip->HeaderChecksumValid()) << "the checksum covers the options, ihl " << ihl;
  }
}

TEST(Ipv4View, HeaderOfSixtyBytesWithNoPayload) {
  const auto packet = MakePacket(15, 0);
  const auto ip = Ipv4View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->header_size(), 60u);
  EXPECT_TRUE(ip->payload().empty());
}

TEST(Ipv4View, RejectsFewerThanTwentyBytes) {
  for (std::size_t n = 0; n < 20; ++n) {
    EXPECT_EQ(ErrorOf(Bytes(kIpv4TcpPacket, n)), Ipv4Error::kTruncated) << n;
  }
}

TEST(Ipv4View, RejectsBadVersion) {
  EXPECT_EQ(ErrorOf(kIpv4BadVersion), Ipv4Error::kBadVersion);
}

TEST(Ipv4View, RejectsIhlBelowFive) {
  EXPECT_EQ(ErrorOf(kIpv4IhlBelowFive), Ipv4Error::kBadHeaderLength);
  EXPECT_EQ(ErrorOf(kIpv4IhlZero), Ipv4Error::kBadHeaderLength);
}

TEST(Ipv4View, RejectsIhlBeyondTheBytes) {
  EXPECT_EQ(ErrorOf(kIpv4IhlBeyondBytes), Ipv4Error::kBadHeaderLength);
  // Every IHL whose header does not fit: a 60-byte header needs all 60 bytes.
  const auto packet = MakePacket(15, 0);
  for (std::size_t n = 20; n < 60; ++n) {
    EXPECT_EQ(ErrorOf(Bytes(packet.data(), n)), Ipv4Error::kBadHeaderLength) << n;
  }
}

TEST(Ipv4View, RejectsTotalLengthSmallerThanHeader) {
  EXPECT_EQ(ErrorOf(kIpv4TotalLengthBelowHeader), Ipv4Error::kBadTotalLength);
  EXPECT_EQ(ErrorOf(kIpv4TotalLengthInsideOptions), Ipv4Error::kBadTotalLength);
}

TEST(Ipv4View, RejectsTotalLengthBeyondTheFrame) {
  EXPECT_EQ(ErrorOf(kIpv4TotalLengthBeyondFrame), Ipv4Error::kBadTotalLength);
  EXPECT_EQ(ErrorOf(Bytes(kIpv4TcpPacket, sizeof kIpv4TcpPacket - 1)), Ipv4Error::kBadTotalLength);
}

TEST(Ipv4View, ExcludesEthernetPaddingAfterTotalLength) {
  // A 20-byte header with 6 bytes of payload (an ACK-sized datagram would be 40) padded
  // with zeros to Ethernet's 46-byte minimum payload.
  auto packet = MakePacket(5, 6);
  packet.resize(46, 0x00);
  const auto ip = Ipv4View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_EQ(ip->total_length(), 26);
  EXPECT_EQ(ip->payload().size(), 6u);
  EXPECT_EQ(ip->payload()[5], 0xC5);
}

TEST(Ipv4View, ReadsFragmentFields) {
  auto packet = MakePacket(5, 8);
  // MF, offset 0: the first fragment.
  packet[6] = 0x20;
  packet[7] = 0x00;
  auto ip = Ipv4View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_TRUE(ip->more_fragments());
  EXPECT_FALSE(ip->dont_fragment());
  EXPECT_EQ(ip->fragment_offset(), 0);
  EXPECT_TRUE(ip->is_fragment());

  // No MF, offset 185 (1480 bytes): the last fragment.
  packet[6] = 0x00;
  packet[7] = 0xB9;
  ip = Ipv4View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_FALSE(ip->more_fragments());
  EXPECT_EQ(ip->fragment_offset(), 185);
  EXPECT_TRUE(ip->is_fragment());

  // MF and the largest offset, with the reserved bit set: the flags do not leak into the
  // offset.
  packet[6] = 0xBF;
  packet[7] = 0xFF;
  ip = Ipv4View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_TRUE(ip->more_fragments());
  EXPECT_FALSE(ip->dont_fragment());
  EXPECT_EQ(ip->fragment_offset(), 0x1FFF);

  // DF alone is not a fragment.
  packet[6] = 0x40;
  packet[7] = 0x00;
  ip = Ipv4View::Parse(packet);
  ASSERT_TRUE(ip.has_value());
  EXPECT_TRUE(ip->dont_fragment());
  EXPECT_FALSE(ip->is_fragment());
}

TEST(Ipv4View, ReadsEcnCodepointsBesideDscp) {
  struct Case {
    std::uint8_t tos;
    Ecn ecn;
  };
  // DSCP 46 (EF, 0xB8) in the upper six bits, each ECN codepoint (RFC 3168 §5) below.
  const Case cases[] = {{0xB8, Ecn::kNotEct}, {0xB9, Ecn::kEct1}, {0xBA, Ecn::kEct0},
                        {0xBB, Ecn::kCe},     {0x03, Ecn::kCe},   {0xFC, Ecn::kNotEct}};
  for (const Case& c : cases) {
    auto packet = MakePacket(5, 0);
    packet[1] = c.tos;
    const auto ip = Ipv4View::Parse(packet);
    ASSERT_TRUE(ip.has_value());
    EXPECT_EQ(ip->tos(), c.tos);
    EXPECT_EQ(ip->ecn(), c.ecn) << static_cast<int>(c.tos);
  }
}

TEST(Ipv4View, HeaderChecksumDetectsAnyOneBitFlip) {
  const auto good = MakePacket(7, 4);
  ASSERT_TRUE(Ipv4View::Parse(good)->HeaderChecksumValid());
  // Every bit of the header except those that change how the header is parsed (version,
  // IHL, total length): one's complement sums catch every single-bit error.
  for (std::size_t byte = 1; byte < 28; ++byte) {
    if (byte == 2 || byte == 3) continue;
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = good;
      bad[byte] = static_cast<std::uint8_t>(bad[byte] ^ (1u << bit));
      const auto ip = Ipv4View::Parse(bad);
      ASSERT_TRUE(ip.has_value());
      EXPECT_FALSE(ip->HeaderChecksumValid()) << "byte " << byte << " bit " << bit;
    }
  }
}

TEST(Ipv4View, HeaderChecksumIgnoresThePayload) {
  auto packet = MakePacket(5, 4);
  packet[21] = static_cast<std::uint8_t>(packet[21] ^ 0xFF);
  EXPECT_TRUE(Ipv4View::Parse(packet)->HeaderChecksumValid());
}

TEST(Ipv4View, HeaderChecksumOverBaseHeaderOnlyIsWrongWhenOptionsArePresent) {
  auto packet = MakePacket(6, 0);
  packet[10] = packet[11] = 0;
  PutBe16(packet, 10, ReferenceChecksum(std::span(packet).first(20)));  // options left out
  EXPECT_FALSE(Ipv4View::Parse(packet)->HeaderChecksumValid());
}

}  // namespace
}  // namespace vsnoop::wire
