// The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the TCP pseudo
// headers, each checked against published values or a plain reference implementation.
#include "vsnoop/wire/checksum.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "reference_checksum.h"

namespace vsnoop::wire {
namespace {

using vsnoop::test_support::PutBe16;
using vsnoop::test_support::ReferenceChecksum;

// clang-format off
// RFC 1071 §3, "Numerical Examples": the bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xDDF2, so
// the checksum is its complement, 0x220D.
constexpr std::uint8_t kRfc1071Example[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
constexpr std::uint16_t kRfc1071ExampleChecksum = 0x220D;

// An IPv4 header with its checksum field zeroed; the published checksum is 0x442E.
constexpr std::uint8_t kIpv4HeaderZeroChecksum[] = {
    0x45, 0x00, 0x00, 0x30, 0x44, 0x22, 0x40, 0x00, 0x80, 0x06, 0x00, 0x00,
    0x8c, 0x7c, 0x19, 0xac, 0xae, 0x24, 0x1e, 0x2b};
constexpr std::uint16_t kIpv4HeaderChecksum = 0x442E;

// clang-format on

std::vector<std::uint8_t> RandomBytes(std::mt19937& rng, std::size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v)
    b = static_cast<std::uint8_t>(byte(rng));
  return v;
}

std::uint16_t WordAt(const std::vector<std::uint8_t>& v, std::size_t at) {
  return static_cast<std::uint16_t>(v[at] << 8 | v[at + 1]);
}

TEST(InternetChecksum, MatchesRfc1071Example) {
  EXPECT_EQ(InternetChecksum::Of(kRfc1071Example), kRfc1071ExampleChecksum);
  EXPECT_EQ(ReferenceChecksum(kRfc1071Example), kRfc1071ExampleChecksum);
}

TEST(InternetChecksum, MatchesPublishedIpv4HeaderChecksum) {
  EXPECT_EQ(InternetChecksum::Of(kIpv4HeaderZeroChecksum), kIpv4HeaderChecksum);
}

TEST(InternetChecksum, EmptyAndAllZeroDataGiveFfff) {
  EXPECT_EQ(InternetChecksum::Of({}), 0xFFFF);
  EXPECT_EQ(InternetChecksum().Finish(), 0xFFFF);
  const std::vector<std::uint8_t> zeros(37, 0);
  EXPECT_EQ(InternetChecksum::Of(zeros), 0xFFFF);
}

TEST(InternetChecksum, PadsAnOddLastByteWithZero) {
  // RFC 1071 §4.1: a trailing byte is the high-order byte of a word whose low byte is 0.
  constexpr std::uint8_t kOne[] = {0x01};
  EXPECT_EQ(InternetChecksum::Of(kOne), 0xFEFF);
  constexpr std::uint8_t kThree[] = {0x12, 0x34, 0x56};
  EXPECT_EQ(InternetChecksum::Of(kThree), static_cast<std::uint16_t>(~(0x1234 + 0x5600)));
}

TEST(InternetChecksum, MatchesReferenceForEveryLengthUpTo300) {
  std::mt19937 rng(1071);
  for (std::size_t n = 0; n <= 300; ++n) {
    const auto data = RandomBytes(rng, n);
    EXPECT_EQ(InternetChecksum::Of(data), ReferenceChecksum(data)) << n;
  }
}

TEST(InternetChecksum, MatchesReferenceOnLargeAllOnesData) {
  // 64 KiB of 0xFF: many end-around carries.
  const std::vector<std::uint8_t> ones(65535, 0xFF);
  EXPECT_EQ(InternetChecksum::Of(ones), ReferenceChecksum(ones));
  const std::vector<std::uint8_t> ones_even(65536, 0xFF);
  EXPECT_EQ(InternetChecksum::Of(ones_even), ReferenceChecksum(ones_even));
}

TEST(InternetChecksum, MatchesReferenceAtEveryMisalignment) {
  // The word loop loads through memcpy; a buffer may start at any address.
  std::mt19937 rng(7);
  const auto data = RandomBytes(rng, 200);
  for (std::size_t start = 0; start < 16; ++start) {
    const Bytes piece(data.data() + start, 150);
    EXPECT_EQ(InternetChecksum::Of(piece), ReferenceChecksum(piece)) << start;
  }
}

TEST(InternetChecksum, TwoPiecesAtEverySplitPointEqualOnePiece) {
  std::mt19937 rng(2);
  for (const std::size_t n : {0u, 1u, 2u, 7u, 64u, 71u}) {
    const auto data = RandomBytes(rng, n);
    const std::uint16_t whole = InternetChecksum::Of(data);
    for (std::size_t split = 0; split <= n; ++split) {
      InternetChecksum c;
      c.Add(Bytes(data).first(split));
      c.Add(Bytes(data).subspan(split));
      EXPECT_EQ(c.Finish(), whole) << "length " << n << " split " << split;
    }
  }
}

TEST(InternetChecksum, ThreePiecesAtEveryPairOfSplitPointsEqualOnePiece) {
  std::mt19937 rng(3);
  const auto data = RandomBytes(rng, 45);
  const std::uint16_t whole = InternetChecksum::Of(data);
  for (std::size_t a = 0; a <= data.size(); ++a) {
    for (std::size_t b = a; b <= data.size(); ++b) {
      InternetChecksum c;
      c.Add(Bytes(data).first(a));
      c.Add(Bytes(data).subspan(a, b - a));
      c.Add(Bytes(data).subspan(b));
      ASSERT_EQ(c.Finish(), whole) << a << " " << b;
    }
  }
}

TEST(InternetChecksum, ByteByByteEqualsOnePiece) {
  std::mt19937 rng(4);
  const auto data = RandomBytes(rng, 99);
  InternetChecksum c;
  for (const std::uint8_t& b : data)
    c.Add(Bytes(&b, 1));
  EXPECT_EQ(c.Finish(), InternetChecksum::Of(data));
}

TEST(InternetChecksum, AddBe16AndAddBe32EqualTheirWireBytes) {
  constexpr std::uint8_t kWire[] = {0x12, 0x34, 0xab, 0xcd, 0xef, 0x01};
  InternetChecksum fields;
  fields.AddBe16(0x1234);
  fields.AddBe32(0xabcdef01);
  EXPECT_EQ(fields.Finish(), InternetChecksum::Of(kWire));
}

TEST(InternetChecksum, FinishOverDataHoldingItsOwnChecksumIsZero) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<std::size_t> words(1, 64);
  for (int round = 0; round < 1000; ++round) {
    auto data = RandomBytes(rng, 2 * words(rng));
    const std::size_t field =
        2 * std::uniform_int_distribution<std::size_t>(0, data.size() / 2 - 1)(rng);
    PutBe16(data, field, 0);
    PutBe16(data, field, InternetChecksum::Of(data));
    ASSERT_EQ(InternetChecksum::Of(data), 0) << round;
  }
  // The published examples too.
  std::vector<std::uint8_t> header(std::begin(kIpv4HeaderZeroChecksum),
                                   std::end(kIpv4HeaderZeroChecksum));
  PutBe16(header, 10, kIpv4HeaderChecksum);
  EXPECT_EQ(InternetChecksum::Of(header), 0);
  std::vector<std::uint8_t> example(std::begin(kRfc1071Example), std::end(kRfc1071Example));
  example.push_back(kRfc1071ExampleChecksum >> 8);
  example.push_back(kRfc1071ExampleChecksum & 0xFF);
  EXPECT_EQ(InternetChecksum::Of(example), 0);
}

// --- Incremental update (RFC 1624) ------------------------------------------------------

TEST(ChecksumUpdate, MatchesRecomputationForRandomFieldChanges) {
  std::mt19937 rng(1624);
  for (int round = 0; round < 20000; ++round) {
    // Word 0 is the checksum field (zero while summing); word 1 is never zero, like the
    // version/IHL or data-offset octets of real headers (see the all-zero case below).
    const std::size_t words = std::uniform_int_distribution<std::size_t>(3, 30)(rng);
    auto data = RandomBytes(rng, 2 * words);
    const std::size_t checksum_at = 0;
    PutBe16(data, checksum_at, 0);
    data[2] |= 0x40;
    const std::uint16_t before = InternetChecksum::Of(data);
    const std::size_t at = 2 * std::uniform_int_distribution<std::size_t>(2, words - 1)(rng);
    const std::uint16_t old_value = WordAt(data, at);
    // Some rounds keep the value: an update that changes nothing must change nothing.
    const std::uint16_t new_value =
        round % 10 == 0 ? old_value : static_cast<std::uint16_t>(rng() & 0xFFFF);
    PutBe16(data, at, new_value);
    const std::uint16_t recomputed = InternetChecksum::Of(data);
    ASSERT_EQ(ChecksumUpdate16(before, old_value, new_value), recomputed) << round;
    PutBe16(data, checksum_at, recomputed);
    ASSERT_EQ(InternetChecksum::Of(data), 0);
  }
}

TEST(ChecksumUpdate, ThirtyTwoBitUpdateMatchesRecomputation) {
  std::mt19937 rng(32);
  for (int round = 0; round < 20000; ++round) {
    const std::size_t words = std::uniform_int_distribution<std::size_t>(4, 30)(rng);
    auto data = RandomBytes(rng, 2 * words);
    PutBe16(data, 0, 0);
    data[2] |= 0x40;
    const std::uint16_t before = InternetChecksum::Of(data);
    // A 32-bit field (a sequence or ACK number, an IPv4 address) on any 16-bit boundary.
    const std::size_t at = 2 * std::uniform_int_distribution<std::size_t>(2, words - 2)(rng);
    const std::uint32_t old_value =
        static_cast<std::uint32_t>(WordAt(data, at)) << 16 | WordAt(data, at + 2);
    const auto new_value = static_cast<std::uint32_t>(rng());
    PutBe16(data, at, static_cast<std::uint16_t>(new_value >> 16));
    PutBe16(data, at + 2, static_cast<std::uint16_t>(new_value & 0xFFFF));
    ASSERT_EQ(ChecksumUpdate32(before, old_value, new_value), InternetChecksum::Of(data)) << round;
  }
}

TEST(ChecksumUpdate, Rfc1624ExampleGivesPlusZeroNotMinusZero) {
  // RFC 1624 §4: the other header words sum to 0xCD7A and a field changes from 0x5555 to
  // 0x3285. The new sum is 0xFFFF, so the correct checksum is 0x0000; RFC 1141's eqn. 2
  // gives 0xFFFF (-0), eqn. 3 gives 0x0000.
  std::vector<std::uint8_t> data = {0x00, 0x00, 0xcd, 0x7a, 0x55, 0x55};  // checksum, rest, m
  const std::uint16_t before = InternetChecksum::Of(data);
  EXPECT_EQ(before, 0xDD2F);
  PutBe16(data, 4, 0x3285);
  EXPECT_EQ(InternetChecksum::Of(data), 0x0000);
  EXPECT_EQ(ChecksumUpdate16(before, 0x5555, 0x3285), 0x0000);
  PutBe16(data, 0, 0x0000);
  EXPECT_EQ(InternetChecksum::Of(data), 0) << "and it verifies";
}

TEST(ChecksumUpdate, UnchangedFieldKeepsAZeroChecksum) {
  // A header whose checksum is 0x0000 (its words sum to 0xFFFF), updated with m' == m:
  // the checksum must stay 0x0000, not turn into 0xFFFF.
  std::vector<std::uint8_t> data = {0x00, 0x00, 0xaa, 0xaa, 0x55, 0x55};
  ASSERT_EQ(InternetChecksum::Of(data), 0x0000);
  EXPECT_EQ(ChecksumUpdate16(0x0000, 0x5555, 0x5555), 0x0000);
  EXPECT_EQ(ChecksumUpdate32(0x0000, 0xaaaa5555, 0xaaaa5555), 0x0000);
}

TEST(ChecksumUpdate, EndAroundCarryThatCarriesAgain) {
  // ~HC + ~m + m' = 0xFFFF + 0xFFFF + 0x0001 = 0x1FFFF: folding once gives 0x10000, which
  // must be folded again (to 0x0001). The header's words sum to 0xFFFF (checksum 0x0000)
  // and a zero field becomes 1.
  std::vector<std::uint8_t> data = {0x00, 0x00, 0xaa, 0xaa, 0x55, 0x55, 0x00, 0x00};
  ASSERT_EQ(InternetChecksum::Of(data), 0x0000);
  PutBe16(data, 6, 0x0001);
  ASSERT_EQ(InternetChecksum::Of(data), 0xFFFE);
  EXPECT_EQ(ChecksumUpdate16(0x0000, 0x0000, 0x0001), 0xFFFE);
  EXPECT_EQ(ChecksumUpdate32(0x0000, 0x55550000, 0x55550001), 0xFFFE);
}

TEST(ChecksumUpdate, ChangesThatBringTheSumToFfffMatchRecomputation) {
  // Choose the new value so that the new data sums to exactly 0xFFFF: the edge where a
  // careless update produces -0 (0xFFFF) instead of +0.
  std::mt19937 rng(16240);
  for (int round = 0; round < 2000; ++round) {
    auto data = RandomBytes(rng, 20);
    PutBe16(data, 0, 0);
    const std::uint16_t before = InternetChecksum::Of(data);
    const std::uint16_t old_value = WordAt(data, 8);
    PutBe16(data, 8, 0);
    // One's complement sum of the other words is ~Of(data); the new field completes it
    // to 0xFFFF.
    const auto rest = static_cast<std::uint16_t>(~InternetChecksum::Of(data));
    const auto new_value = static_cast<std::uint16_t>(~rest);
    PutBe16(data, 8, new_value);
    ASSERT_EQ(InternetChecksum::Of(data), 0x0000) << round;
    ASSERT_EQ(ChecksumUpdate16(before, old_value, new_value), 0x0000) << round;
  }
}

TEST(ChecksumUpdate, DataBecomingAllZeroIsTheOneCaseEqn3DiffersFromScratch) {
  // RFC 1624 §3: a checksum computed from scratch is 0xFFFF only when every word summed is
  // zero. Eqn. 3 never yields 0xFFFF, so there it gives the other zero, 0x0000. No TCP or
  // IP header is all zero (the data offset, the IHL), so the engine never meets this case.
  std::vector<std::uint8_t> data = {0x00, 0x00, 0x00, 0x00, 0x12, 0x34};
  const std::uint16_t before = InternetChecksum::Of(data);
  PutBe16(data, 4, 0x0000);
  EXPECT_EQ(InternetChecksum::Of(data), 0xFFFF);
  EXPECT_EQ(ChecksumUpdate16(before, 0x1234, 0x0000), 0x0000);
}

// --- TCP pseudo headers -----------------------------------------------------------------

// RFC 9293 §3.1: source, destination, zero, protocol 6, TCP length (16 bits).
std::uint16_t ReferenceTcpChecksumV4(const std::uint8_t* source, const std::uint8_t* destination,
                                     const std::vector<std::uint8_t>& segment) {
  std::vector<std::uint8_t> all(source, source + 4);
  all.insert(all.end(), destination, destination + 4);
  all.push_back(0);
  all.push_back(6);
  all.push_back(static_cast<std::uint8_t>(segment.size() >> 8));
  all.push_back(static_cast<std::uint8_t>(segment.size() & 0xFF));
  all.insert(all.end(), segment.begin(), segment.end());
  return ReferenceChecksum(all);
}

// RFC 8200 §8.1: source, destination, upper-layer length (32 bits), three zero octets,
// next header 6.
std::uint16_t ReferenceTcpChecksumV6(const std::uint8_t* source, const std::uint8_t* destination,
                                     const std::vector<std::uint8_t>& segment) {
  std::vector<std::uint8_t> all(source, source + 16);
  all.insert(all.end(), destination, destination + 16);
  const auto n = static_cast<std::uint32_t>(segment.size());
  for (int shift = 24; shift >= 0; shift -= 8)
    all.push_back(static_cast<std::uint8_t>(n >> shift));
  all.insert(all.end(), {0, 0, 0, 6});
  all.insert(all.end(), segment.begin(), segment.end());
  return ReferenceChecksum(all);
}

TEST(TcpPseudoHeader, V4MatchesReference) {
  std::mt19937 rng(793);
  for (int round = 0; round < 2000; ++round) {
    const auto addresses = RandomBytes(rng, 8);
    const auto segment = RandomBytes(rng, std::uniform_int_distribution<std::size_t>(0, 1600)(rng));
    InternetChecksum c = TcpPseudoHeaderV4(addresses.data(), addresses.data() + 4,
                                           static_cast<std::uint32_t>(segment.size()));
    c.Add(segment);
    ASSERT_EQ(c.Finish(), ReferenceTcpChecksumV4(addresses.data(), addresses.data() + 4, segment))
        << round << " length " << segment.size();
  }
}

TEST(TcpPseudoHeader, V6MatchesReference) {
  std::mt19937 rng(8200);
  for (int round = 0; round < 2000; ++round) {
    const auto addresses = RandomBytes(rng, 32);
    // Lengths past 65535 too (a GSO super-frame's worth): the IPv6 field is 32 bits.
    const std::size_t max = round % 50 == 0 ? 70000 : 1600;
    const auto segment = RandomBytes(rng, std::uniform_int_distribution<std::size_t>(0, max)(rng));
    InternetChecksum c = TcpPseudoHeaderV6(addresses.data(), addresses.data() + 16,
                                           static_cast<std::uint32_t>(segment.size()));
    c.Add(segment);
    ASSERT_EQ(c.Finish(), ReferenceTcpChecksumV6(addresses.data(), addresses.data() + 16, segment))
        << round << " length " << segment.size();
  }
}

TEST(TcpPseudoHeader, SegmentWithItsChecksumVerifiesToZero) {
  std::mt19937 rng(9293);
  const auto addresses = RandomBytes(rng, 32);
  for (const bool v6 : {false, true}) {
    auto segment = RandomBytes(rng, 20 + 33);  // odd total length
    PutBe16(segment, 16, 0);
    const auto start = [&] {
      const auto n = static_cast<std::uint32_t>(segment.size());
      return v6 ? TcpPseudoHeaderV6(addresses.data(), addresses.data() + 16, n)
                : TcpPseudoHeaderV4(addresses.data(), addresses.data() + 4, n);
    };
    InternetChecksum c = start();
    c.Add(segment);
    PutBe16(segment, 16, c.Finish());
    InternetChecksum verify = start();
    verify.Add(segment);
    EXPECT_EQ(verify.Finish(), 0) << (v6 ? "v6" : "v4");
  }
}

}  // namespace
}  // namespace vsnoop::wire
