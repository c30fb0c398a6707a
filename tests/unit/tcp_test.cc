// TcpView (RFC 9293 §3.1) and the option reader: every known option, lengths that lie,
// option kinds vSnoop cannot vouch for, and lists that end early.
#include "vsnoop/wire/tcp.h"

#include <gtest/gtest.h>

#include <vector>

namespace vsnoop::wire {
namespace {

// clang-format off
// (headers four bytes a line, as RFC 9293 draws them; options one option a line)

// 40000 -> 5201, seq 0x01020304, ack 0xA0B0C0D0, data offset 5, flags ECE|ACK|PSH,
// window 0x1234, checksum 0xBEEF, urgent pointer 7, then three payload bytes.
constexpr std::uint8_t kTcpSegment[] = {
    0x9c, 0x40, 0x14, 0x51,  // ports
    0x01, 0x02, 0x03, 0x04,  // sequence number
    0xa0, 0xb0, 0xc0, 0xd0,  // acknowledgment number
    0x50, 0x58, 0x12, 0x34,  // data offset, flags, window
    0xbe, 0xef, 0x00, 0x07,  // checksum, urgent pointer
    'a', 'b', 'c'};

// Data offset 4 (16 bytes): below the 20-byte minimum.
constexpr std::uint8_t kTcpDataOffsetFour[] = {
    0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0,
    0x40, 0x10, 0xff, 0xff,
    0, 0, 0, 0};
// Data offset 0.
constexpr std::uint8_t kTcpDataOffsetZero[] = {
    0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0,
    0x00, 0x10, 0xff, 0xff,
    0, 0, 0, 0};
// Data offset 6 (24 bytes) but only the 20-byte base header present.
constexpr std::uint8_t kTcpDataOffsetBeyondSegment[] = {
    0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0,
    0x60, 0x10, 0xff, 0xff,
    0, 0, 0, 0};

// Options as Linux sends them on a SYN: MSS 1460, SACK-permitted, timestamps, NOP,
// window scale 7.
constexpr std::uint8_t kLinuxSynOptions[] = {
    0x02, 0x04, 0x05, 0xb4,                                      // MSS 1460
    0x04, 0x02,                                                  // SACK-permitted
    0x08, 0x0a, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00,  // TSval 100, TSecr 0
    0x01,                                                        // NOP
    0x03, 0x03, 0x07};                                           // window scale 7
// NOP, NOP, timestamps: the layout of RFC 7323 Appendix A, and of vSnoop's own ACKs.
constexpr std::uint8_t kTimestampsOnly[] = {
    0x01, 0x01,
    0x08, 0x0a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
// Window scale 15: above the RFC 7323 §2.3 limit of 14, reported as sent.
constexpr std::uint8_t kWindowScaleFifteen[] = {0x03, 0x03, 0x0f};
// NOP padding alone.
constexpr std::uint8_t kNopsOnly[] = {0x01, 0x01, 0x01, 0x01};
// End of option list, then an MSS option that must not be read.
constexpr std::uint8_t kEndThenMss[] = {0x00, 0x02, 0x04, 0x05, 0xb4};
// Window scale, End, then garbage after the End option.
constexpr std::uint8_t kWindowScaleEndGarbage[] = {0x03, 0x03, 0x02, 0x00, 0xff, 0x00, 0x01};
// An option with length 0: a naive reader would loop on it forever.
constexpr std::uint8_t kZeroLengthOption[] = {0x03, 0x00, 0x01, 0x01};
// An option with length 1: shorter than its own kind and length octets.
constexpr std::uint8_t kLengthOneOption[] = {0x05, 0x01, 0x01, 0x01};
// An unknown kind with length 0, after a valid MSS.
constexpr std::uint8_t kMssThenZeroLengthUnknown[] = {0x02, 0x04, 0x05, 0xb4, 0xfe, 0x00};
// Timestamps claiming 10 bytes with only 6 present.
constexpr std::uint8_t kTimestampsOverrunHeader[] = {0x08, 0x0a, 0x00, 0x00, 0x00, 0x01};
// MSS claiming 4 bytes at the very end, where 3 remain.
constexpr std::uint8_t kMssOverrunsByOne[] = {0x01, 0x02, 0x04, 0x05};
// A kind octet with no length octet after it.
constexpr std::uint8_t kKindWithoutLength[] = {0x01, 0x01, 0x01, 0x02};
// Known options with the wrong length: MSS of 3 bytes, window scale of 4, SACK-permitted
// of 3, timestamps of 8, SACK of 6 (not a whole block), SACK of 2 (no block at all).
constexpr std::uint8_t kMssLengthThree[] = {0x02, 0x03, 0x05};
constexpr std::uint8_t kWindowScaleLengthFour[] = {0x03, 0x04, 0x07, 0x00};
constexpr std::uint8_t kSackPermittedLengthThree[] = {0x04, 0x03, 0x00};
constexpr std::uint8_t kTimestampsLengthEight[] = {0x08, 0x08, 0, 0, 0, 1, 0, 0};
constexpr std::uint8_t kSackPartialBlock[] = {0x05, 0x06, 0, 0, 0, 1};
constexpr std::uint8_t kSackNoBlocks[] = {0x05, 0x02};
// Kinds vSnoop does not know: 99 (unassigned), 254 (RFC 6994 experiment, with ExID).
constexpr std::uint8_t kUnknownKinds[] = {99, 0x02, 254, 0x06, 0xf9, 0x89, 0x00, 0x00};
// TCP MD5 signature (RFC 2385): kind 19, 18 bytes.
constexpr std::uint8_t kMd5Signature[] = {
    19, 18, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
// TCP-AO (RFC 5925): kind 29, KeyID, RNextKeyID, 12-byte MAC.
constexpr std::uint8_t kTcpAo[] = {29, 16, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
// MPTCP (RFC 8684): kind 30, MP_CAPABLE subtype version 1, 12 bytes.
constexpr std::uint8_t kMptcpCapable[] = {30, 12, 0x01, 0x81, 1, 2, 3, 4, 5, 6, 7, 8};
// TCP Fast Open (RFC 7413): kind 34 with an 8-byte cookie, and the empty cookie request.
constexpr std::uint8_t kFastOpenCookie[] = {34, 10, 1, 2, 3, 4, 5, 6, 7, 8};
constexpr std::uint8_t kFastOpenCookieRequest[] = {34, 2};

// clang-format on

// A SACK option (RFC 2018 §3) with `blocks` blocks: NOP, NOP, kind 5, length, blocks
// [1000 + 100 i, 1050 + 100 i).
std::vector<std::uint8_t> SackOption(std::size_t blocks) {
  std::vector<std::uint8_t> o = {0x01, 0x01, 0x05, static_cast<std::uint8_t>(2 + 8 * blocks)};
  for (std::size_t i = 0; i < blocks; ++i) {
    o.resize(o.size() + 8);
    StoreBe32(o.data() + o.size() - 8, static_cast<std::uint32_t>(1000 + 100 * i));
    StoreBe32(o.data() + o.size() - 4, static_cast<std::uint32_t>(1050 + 100 * i));
  }
  return o;
}

// A TCP header with these options and data offset, followed by `payload` bytes.
std::vector<std::uint8_t> SegmentWithOptions(Bytes options, std::size_t payload = 0) {
  std::vector<std::uint8_t> s(20, 0);
  s.insert(s.end(), options.begin(), options.end());
  s.resize(20 + (options.size() + 3) / 4 * 4, 0x00);
  s[12] = static_cast<std::uint8_t>((s.size() / 4) << 4);
  s[13] = tcp_flag::kAck;
  s.resize(s.size() + payload, 0x5a);
  return s;
}

std::optional<TcpError> ErrorOf(Bytes bytes) {
  TcpError error{};
  if (TcpView::Parse(bytes, &error).has_value()) return std::nullopt;
  return error;
}

// --- TcpView --------------------------------------------------------------------------

TEST(TcpView, ReadsEveryField) {
  TcpError error = TcpError::kTruncated;
  const auto tcp = TcpView::Parse(kTcpSegment, &error);
  ASSERT_TRUE(tcp.has_value());
  EXPECT_EQ(error, TcpError::kTruncated);  // untouched on success
  EXPECT_EQ(tcp->source_port(), 40000);
  EXPECT_EQ(tcp->destination_port(), 5201);
  EXPECT_EQ(tcp->seq(), 0x01020304u);
  EXPECT_EQ(tcp->ack(), 0xA0B0C0D0u);
  EXPECT_EQ(tcp->header_size(), 20u);
  EXPECT_EQ(tcp->flags(), tcp_flag::kEce | tcp_flag::kAck | tcp_flag::kPsh);
  EXPECT_TRUE(tcp->Has(tcp_flag::kEce));
  EXPECT_TRUE(tcp->Has(tcp_flag::kAck));
  EXPECT_TRUE(tcp->Has(tcp_flag::kPsh));
  EXPECT_FALSE(tcp->Has(tcp_flag::kFin));
  EXPECT_FALSE(tcp->Has(tcp_flag::kSyn));
  EXPECT_FALSE(tcp->Has(tcp_flag::kRst));
  EXPECT_FALSE(tcp->Has(tcp_flag::kUrg));
  EXPECT_FALSE(tcp->Has(tcp_flag::kCwr));
  EXPECT_EQ(tcp->window(), 0x1234);
  EXPECT_EQ(tcp->checksum(), 0xBEEF);
  EXPECT_EQ(tcp->urgent_pointer(), 7);
  EXPECT_TRUE(tcp->options().empty());
  ASSERT_EQ(tcp->payload().size(), 3u);
  EXPECT_EQ(tcp->payload().data(), kTcpSegment + 20);
  EXPECT_EQ(tcp->payload()[2], 'c');
  EXPECT_EQ(tcp->segment().data(), kTcpSegment);
  EXPECT_EQ(tcp->segment().size(), sizeof kTcpSegment);
}

TEST(TcpView, ReadsEachFlagBit) {
  const std::uint8_t all[] = {tcp_flag::kFin, tcp_flag::kSyn, tcp_flag::kRst, tcp_flag::kPsh,
                              tcp_flag::kAck, tcp_flag::kUrg, tcp_flag::kEce, tcp_flag::kCwr};
  for (const std::uint8_t flag : all) {
    auto segment = SegmentWithOptions({});
    segment[13] = flag;
    const auto tcp = TcpView::Parse(segment);
    ASSERT_TRUE(tcp.has_value());
    for (const std::uint8_t other : all)
      EXPECT_EQ(tcp->Has(other), other == flag);
  }
}

TEST(TcpView, RejectsFewerThanTwentyBytes) {
  for (std::size_t n = 0; n < 20; ++n) {
    EXPECT_EQ(ErrorOf(Bytes(kTcpSegment, n)), TcpError::kTruncated) << n;
  }
}

TEST(TcpView, RejectsDataOffsetBelowFive) {
  EXPECT_EQ(ErrorOf(kTcpDataOffsetFour), TcpError::kBadDataOffset);
  EXPECT_EQ(ErrorOf(kTcpDataOffsetZero), TcpError::kBadDataOffset);
}

TEST(TcpView, RejectsDataOffsetBeyondTheSegment) {
  EXPECT_EQ(ErrorOf(kTcpDataOffsetBeyondSegment), TcpError::kBadDataOffset);
  EXPECT_FALSE(TcpView::Parse(kTcpDataOffsetBeyondSegment).has_value());
}

TEST(TcpView, AcceptsSixtyByteHeaderExactly) {
  std::vector<std::uint8_t> options(40, tcp_option::kNop);
  const auto segment = SegmentWithOptions(options);
  ASSERT_EQ(segment.size(), 60u);
  const auto tcp = TcpView::Parse(segment);
  ASSERT_TRUE(tcp.has_value());
  EXPECT_EQ(tcp->header_size(), kTcpMaxHeaderSize);
  EXPECT_EQ(tcp->options().size(), 40u);
  EXPECT_TRUE(tcp->payload().empty());
  EXPECT_EQ(ErrorOf(Bytes(segment.data(), 59)), TcpError::kBadDataOffset);
}

TEST(TcpView, SplitsOptionsFromPayload) {
  const auto segment = SegmentWithOptions(kTimestampsOnly, 100);
  const auto tcp = TcpView::Parse(segment);
  ASSERT_TRUE(tcp.has_value());
  EXPECT_EQ(tcp->header_size(), 32u);
  EXPECT_EQ(tcp->options().size(), 12u);
  EXPECT_EQ(tcp->options().data(), segment.data() + 20);
  EXPECT_EQ(tcp->payload().size(), 100u);
  EXPECT_EQ(tcp->payload().data(), segment.data() + 32);
}

// --- TcpOptionReader --------------------------------------------------------------------

TEST(TcpOptionReader, YieldsOptionsInOrderSkippingNops) {
  TcpOptionReader reader(kLinuxSynOptions);
  TcpOption o;
  ASSERT_TRUE(reader.Next(&o));
  EXPECT_EQ(o.kind, tcp_option::kMss);
  EXPECT_EQ(o.data.size(), 2u);
  EXPECT_EQ(o.data.data(), kLinuxSynOptions + 2);
  ASSERT_TRUE(reader.Next(&o));
  EXPECT_EQ(o.kind, tcp_option::kSackPermitted);
  EXPECT_TRUE(o.data.empty());
  ASSERT_TRUE(reader.Next(&o));
  EXPECT_EQ(o.kind, tcp_option::kTimestamps);
  EXPECT_EQ(o.data.size(), 8u);
  ASSERT_TRUE(reader.Next(&o));
  EXPECT_EQ(o.kind, tcp_option::kWindowScale);
  ASSERT_EQ(o.data.size(), 1u);
  EXPECT_EQ(o.data[0], 7);
  EXPECT_FALSE(reader.Next(&o));
  EXPECT_FALSE(reader.malformed());
  EXPECT_FALSE(reader.Next(&o));  // stays at the end
}

TEST(TcpOptionReader, EndOptionStopsReading) {
  TcpOptionReader reader(kEndThenMss);
  TcpOption o;
  EXPECT_FALSE(reader.Next(&o));
  EXPECT_FALSE(reader.malformed());
  EXPECT_FALSE(reader.Next(&o));
}

TEST(TcpOptionReader, StopsAtMalformedOptionsAfterBoundedWork) {
  // Length 0 and 1 would not advance a naive cursor. The reader must give up at once.
  for (const Bytes bad :
       {Bytes(kZeroLengthOption), Bytes(kLengthOneOption), Bytes(kMssThenZeroLengthUnknown),
        Bytes(kTimestampsOverrunHeader), Bytes(kMssOverrunsByOne), Bytes(kKindWithoutLength)}) {
    TcpOptionReader reader(bad);
    TcpOption o;
    int options = 0;
    while (reader.Next(&o)) {
      ++options;
      ASSERT_LE(options, 40) << "the reader does not advance";
    }
    EXPECT_TRUE(reader.malformed());
    EXPECT_FALSE(reader.Next(&o));
    EXPECT_TRUE(reader.malformed());
  }
}

TEST(TcpOptionReader, ValidOptionBeforeAMalformedOneIsStillYielded) {
  TcpOptionReader reader(kMssThenZeroLengthUnknown);
  TcpOption o;
  ASSERT_TRUE(reader.Next(&o));
  EXPECT_EQ(o.kind, tcp_option::kMss);
  EXPECT_FALSE(reader.malformed());
  EXPECT_FALSE(reader.Next(&o));
  EXPECT_TRUE(reader.malformed());
}

TEST(TcpOptionReader, EmptyListIsNotMalformed) {
  TcpOptionReader reader({});
  TcpOption o;
  EXPECT_FALSE(reader.Next(&o));
  EXPECT_FALSE(reader.malformed());
}

// --- TcpOptions::Read -------------------------------------------------------------------

TEST(TcpOptions, ReadsLinuxSynOptions) {
  const TcpOptions o = TcpOptions::Read(kLinuxSynOptions);
  ASSERT_TRUE(o.mss.has_value());
  EXPECT_EQ(*o.mss, 1460);
  ASSERT_TRUE(o.window_scale.has_value());
  EXPECT_EQ(*o.window_scale, 7);
  EXPECT_TRUE(o.sack_permitted);
  EXPECT_TRUE(o.has_timestamps);
  EXPECT_EQ(o.ts_value, 100u);
  EXPECT_EQ(o.ts_echo, 0u);
  EXPECT_EQ(o.sack_block_count, 0u);
  EXPECT_FALSE(o.malformed);
  EXPECT_FALSE(o.has_unknown);
  EXPECT_FALSE(o.has_signature);
  EXPECT_FALSE(o.has_multipath);
  EXPECT_FALSE(o.has_fast_open);
  EXPECT_FALSE(o.only_timestamps());
}

TEST(TcpOptions, ReadsWindowScaleAsSent) {
  const TcpOptions o = TcpOptions::Read(kWindowScaleFifteen);
  ASSERT_TRUE(o.window_scale.has_value());
  EXPECT_EQ(*o.window_scale, 15);  // clamping to kMaxWindowScale is the engine's job
  EXPECT_FALSE(o.malformed);
}

TEST(TcpOptions, ReadsTimestamps) {
  const TcpOptions o = TcpOptions::Read(kTimestampsOnly);
  EXPECT_TRUE(o.has_timestamps);
  EXPECT_EQ(o.ts_value, 0x11223344u);
  EXPECT_EQ(o.ts_echo, 0x55667788u);
  EXPECT_FALSE(o.malformed);
  EXPECT_TRUE(o.only_timestamps());
}

TEST(TcpOptions, ReadsOneToFourSackBlocks) {
  for (std::size_t blocks = 1; blocks <= 4; ++blocks) {
    const auto option = SackOption(blocks);
    const TcpOptions o = TcpOptions::Read(option);
    EXPECT_FALSE(o.malformed) << blocks;
    ASSERT_EQ(o.sack_block_count, blocks);
    for (std::size_t i = 0; i < blocks; ++i) {
      EXPECT_EQ(o.sack_blocks[i].left, 1000 + 100 * i);
      EXPECT_EQ(o.sack_blocks[i].right, 1050 + 100 * i);
    }
    EXPECT_FALSE(o.only_timestamps());
  }
}

TEST(TcpOptions, FiveSackBlocksAreMalformedAndFourAreKept) {
  // 2 + 5 * 8 = 42 bytes cannot fit in a TCP header's 40 bytes of options.
  const auto option = SackOption(5);
  const TcpOptions o = TcpOptions::Read(option);
  EXPECT_TRUE(o.malformed);
  ASSERT_EQ(o.sack_block_count, TcpOptions::kMaxSackBlocks);
  EXPECT_EQ(o.sack_blocks[3].left, 1300u);
}

TEST(TcpOptions, SackBlocksAcrossTwoOptionsStopAtFour) {
  auto options = SackOption(3);
  const auto more = SackOption(2);
  options.insert(options.end(), more.begin(), more.end());
  const TcpOptions o = TcpOptions::Read(options);
  EXPECT_EQ(o.sack_block_count, 4u);
  EXPECT_EQ(o.sack_blocks[3].left, 1000u);  // the second option's first block
}

TEST(TcpOptions, TimestampsAfterSackBlocks) {
  auto options = SackOption(2);
  options.insert(options.end(), std::begin(kTimestampsOnly), std::end(kTimestampsOnly));
  const TcpOptions o = TcpOptions::Read(options);
  EXPECT_EQ(o.sack_block_count, 2u);
  EXPECT_TRUE(o.has_timestamps);
  EXPECT_EQ(o.ts_echo, 0x55667788u);
  EXPECT_FALSE(o.malformed);
}

TEST(TcpOptions, NopPaddingAloneIsNothing) {
  const TcpOptions o = TcpOptions::Read(kNopsOnly);
  EXPECT_FALSE(o.malformed);
  EXPECT_FALSE(o.has_timestamps);
  EXPECT_FALSE(o.mss.has_value());
  EXPECT_TRUE(o.only_timestamps());
}

TEST(TcpOptions, EndOptionStopsReading) {
  const TcpOptions o = TcpOptions::Read(kEndThenMss);
  EXPECT_FALSE(o.mss.has_value());
  EXPECT_FALSE(o.malformed);

  const TcpOptions p = TcpOptions::Read(kWindowScaleEndGarbage);
  ASSERT_TRUE(p.window_scale.has_value());
  EXPECT_EQ(*p.window_scale, 2);
  EXPECT_FALSE(p.malformed) << "bytes after End are padding, whatever they hold";
  EXPECT_FALSE(p.has_unknown);
}

TEST(TcpOptions, ZeroAndOneLengthsAreMalformed) {
  EXPECT_TRUE(TcpOptions::Read(kZeroLengthOption).malformed);
  EXPECT_TRUE(TcpOptions::Read(kLengthOneOption).malformed);
  const TcpOptions o = TcpOptions::Read(kMssThenZeroLengthUnknown);
  EXPECT_TRUE(o.malformed);
  ASSERT_TRUE(o.mss.has_value());
  EXPECT_FALSE(o.only_timestamps());
}

TEST(TcpOptions, LengthOverrunningTheHeaderIsMalformed) {
  const TcpOptions ts = TcpOptions::Read(kTimestampsOverrunHeader);
  EXPECT_TRUE(ts.malformed);
  EXPECT_FALSE(ts.has_timestamps);
  EXPECT_TRUE(TcpOptions::Read(kMssOverrunsByOne).malformed);
  EXPECT_TRUE(TcpOptions::Read(kKindWithoutLength).malformed);
}

TEST(TcpOptions, WrongLengthsForKnownOptionsAreMalformed) {
  const TcpOptions mss = TcpOptions::Read(kMssLengthThree);
  EXPECT_TRUE(mss.malformed);
  EXPECT_FALSE(mss.mss.has_value());
  const TcpOptions ws = TcpOptions::Read(kWindowScaleLengthFour);
  EXPECT_TRUE(ws.malformed);
  EXPECT_FALSE(ws.window_scale.has_value());
  const TcpOptions sp = TcpOptions::Read(kSackPermittedLengthThree);
  EXPECT_TRUE(sp.malformed);
  EXPECT_FALSE(sp.sack_permitted);
  const TcpOptions ts = TcpOptions::Read(kTimestampsLengthEight);
  EXPECT_TRUE(ts.malformed);
  EXPECT_FALSE(ts.has_timestamps);
  const TcpOptions partial = TcpOptions::Read(kSackPartialBlock);
  EXPECT_TRUE(partial.malformed);
  EXPECT_EQ(partial.sack_block_count, 0u);
  const TcpOptions none = TcpOptions::Read(kSackNoBlocks);
  EXPECT_TRUE(none.malformed);
  EXPECT_EQ(none.sack_block_count, 0u);
  for (const TcpOptions& o : {mss, ws, sp, ts, partial, none})
    EXPECT_FALSE(o.only_timestamps());
}

TEST(TcpOptions, UnknownKindsAreFlagged) {
  const TcpOptions o = TcpOptions::Read(kUnknownKinds);
  EXPECT_TRUE(o.has_unknown);
  EXPECT_FALSE(o.malformed);
  EXPECT_FALSE(o.has_signature);
  EXPECT_FALSE(o.only_timestamps());
}

TEST(TcpOptions, SignaturesAreFlagged) {
  const TcpOptions md5 = TcpOptions::Read(kMd5Signature);
  EXPECT_TRUE(md5.has_signature);
  EXPECT_FALSE(md5.has_unknown);
  EXPECT_FALSE(md5.malformed);
  EXPECT_FALSE(md5.only_timestamps());
  const TcpOptions ao = TcpOptions::Read(kTcpAo);
  EXPECT_TRUE(ao.has_signature);
  EXPECT_FALSE(ao.has_unknown);
  EXPECT_FALSE(ao.only_timestamps());
}

TEST(TcpOptions, MultipathIsFlagged) {
  const TcpOptions o = TcpOptions::Read(kMptcpCapable);
  EXPECT_TRUE(o.has_multipath);
  EXPECT_FALSE(o.has_unknown);
  EXPECT_FALSE(o.has_signature);
  EXPECT_FALSE(o.only_timestamps());
}

TEST(TcpOptions, FastOpenIsFlagged) {
  for (const Bytes option : {Bytes(kFastOpenCookie), Bytes(kFastOpenCookieRequest)}) {
    const TcpOptions o = TcpOptions::Read(option);
    EXPECT_TRUE(o.has_fast_open);
    EXPECT_FALSE(o.has_unknown);
    EXPECT_FALSE(o.malformed);
    EXPECT_FALSE(o.only_timestamps());
  }
}

TEST(TcpOptions, OnlyTimestampsAcceptsNothingButNopEndAndTimestamps) {
  EXPECT_TRUE(TcpOptions::Read({}).only_timestamps());
  EXPECT_TRUE(TcpOptions::Read(kNopsOnly).only_timestamps());
  EXPECT_TRUE(TcpOptions::Read(kTimestampsOnly).only_timestamps());
  EXPECT_TRUE(TcpOptions::Read(kEndThenMss).only_timestamps());
  // Each other option alone, after the timestamps.
  const std::vector<Bytes> others = {
      kLinuxSynOptions, kWindowScaleFifteen, kSackPermittedLengthThree,
      kUnknownKinds,    kMd5Signature,       kTcpAo,
      kMptcpCapable,    kFastOpenCookie,     kZeroLengthOption};
  for (const Bytes other : others) {
    std::vector<std::uint8_t> options(std::begin(kTimestampsOnly), std::end(kTimestampsOnly));
    options.insert(options.end(), other.begin(), other.end());
    EXPECT_FALSE(TcpOptions::Read(options).only_timestamps()) << static_cast<int>(other[0]);
  }
  const auto sack = SackOption(1);
  EXPECT_FALSE(TcpOptions::Read(sack).only_timestamps());
  constexpr std::uint8_t kMssAlone[] = {0x02, 0x04, 0x05, 0xb4};
  EXPECT_FALSE(TcpOptions::Read(kMssAlone).only_timestamps());
  constexpr std::uint8_t kSackPermittedAlone[] = {0x04, 0x02};
  EXPECT_FALSE(TcpOptions::Read(kSackPermittedAlone).only_timestamps());
}

TEST(TcpOptions, ReadsOptionsOfAParsedHeader) {
  const auto segment = SegmentWithOptions(kLinuxSynOptions);
  const auto tcp = TcpView::Parse(segment);
  ASSERT_TRUE(tcp.has_value());
  EXPECT_EQ(tcp->header_size(), 40u);
  const TcpOptions o = TcpOptions::Read(tcp->options());
  ASSERT_TRUE(o.mss.has_value());
  EXPECT_EQ(*o.mss, 1460);
  ASSERT_TRUE(o.window_scale.has_value());
  EXPECT_EQ(*o.window_scale, 7);
  EXPECT_FALSE(o.malformed) << "zero padding to the 4-byte boundary reads as End";
}

}  // namespace
}  // namespace vsnoop::wire
