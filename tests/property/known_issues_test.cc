// The engine issues the property tests found (known_issues.h), each shown on a short,
// fixed sequence of frames. Each test asserts what the brief requires, so it fails while
// the issue is there: they are DISABLED_ until the engine is fixed. Run them with
//   property_tests --gtest_also_run_disabled_tests --gtest_filter='KnownEngineIssue.*'
// The guest's behaviour each test relies on is Linux's (see tcp_models.h).
#include <gtest/gtest.h>

#include "vsnoop/engine.h"
#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop {
namespace {

using sim::Endpoint;
using sim::FrameBuilder;
namespace flag = wire::tcp_flag;

class KnownEngineIssue : public ::testing::Test {
 protected:
  Endpoint sender_ = Endpoint::Parse("10.0.0.1:40000");
  Endpoint guest_ = Endpoint::Parse("10.0.0.2:5201");
  Engine engine_;
  Timestamp now_{0};
  GuestContext ctx_{.id = 1, .room = {.bytes = 1 << 20, .frames = 1024}};

  Verdict ToGuest(const FrameBuilder& b) {
    const auto f = b.Build();
    return engine_.OnFrameToGuest(f, Offload{}, ctx_, now_);
  }
  Verdict FromGuest(const FrameBuilder& b) {
    const auto f = b.Build();
    return engine_.OnFrameFromGuest(f, Offload{}, ctx_, now_);
  }
  FrameBuilder Data() { return FrameBuilder().From(sender_).To(guest_); }
  FrameBuilder Reply() { return FrameBuilder().From(guest_).To(sender_); }
  static std::uint32_t AckNumber(const Verdict& v) {
    Reason why{};
    const auto ack = ParseSegment(v.ack.view(), &why);
    return ack ? ack->tcp.ack() : 0;
  }
};

// Issue 1: the window update that reopened a zero window was lost (or overtaken by an
// older zero-window ACK) on its way to the sender. The sender probes the way Linux does
// (no data, SND.UNA - 1); the guest answers with its open window; vSnoop finds nothing
// new in that answer and suppresses it, so the sender never learns the window.
TEST_F(KnownEngineIssue, AnswerToAZeroWindowProbeReachesTheSender) {
  ASSERT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(65535)).reason, Reason::kHandshake);
  ASSERT_EQ(FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(1000)).reason,
            Reason::kHandshake);
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(65535)).reason, Reason::kNoPayload);
  // The sender fills the guest's window; vSnoop acknowledges it with a zero window.
  const Verdict early = ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Payload(1000));
  ASSERT_EQ(early.action, Action::kForwardAndAck);
  ASSERT_EQ(AckNumber(early), 2001u);
  // The guest runs: it acknowledges, its application reads, it opens the window.
  EXPECT_EQ(FromGuest(Reply().Seq(5001).Ack(2001).Window(0)).action, Action::kSuppress);
  const Verdict update = FromGuest(Reply().Seq(5001).Ack(2001).Window(1000));
  ASSERT_TRUE(update.forwards() || update.has_ack());
  // ... and that frame never reaches the sender. Its persist timer fires.
  EXPECT_EQ(ToGuest(Data().Seq(2000).Ack(5001).Window(65535)).reason, Reason::kNoPayload);
  // The guest's answer: the only news the sender can get.
  const Verdict answer = FromGuest(Reply().Seq(5001).Ack(2001).Window(1000));
  EXPECT_TRUE(answer.forwards() || answer.has_ack());  // today: suppressed
}

// Issue 2: the guest's scale is 5 and its SYN-ACK window 1461 bytes. The sender sends 1460
// bytes and then the last byte of the window. The early ACK for the first segment rounds
// the window down to the scale (edge 2461 instead of 2462, RFC 7323 §2.4), and the engine
// then takes the byte at 2461, legitimately sent inside the guest's window, for a window
// probe: no early ACK, and the flow waits in UNEXPECTED_SEQ for the guest.
TEST_F(KnownEngineIssue, DISABLED_DataInsideTheGuestsWindowIsNotAProbe) {
  ASSERT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(65535).WindowScale(0)).reason,
            Reason::kHandshake);
  ASSERT_EQ(
      FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(1461).WindowScale(5)).reason,
      Reason::kHandshake);
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(65535)).reason, Reason::kNoPayload);
  const Verdict first = ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Payload(1460));
  ASSERT_EQ(first.action, Action::kForwardAndAck);
  const Verdict last_byte = ToGuest(Data().Seq(2461).Ack(5001).Window(65535).Payload(1));
  EXPECT_EQ(last_byte.reason, Reason::kEarlyAck);  // today: zero_window
}

// Issue 3: the engine takes the sender's window for its RFC 5961 §5.2 bound from a frame
// with a bad checksum, which the guest never sees. The guest's bound (Linux: max_window,
// from the segments it accepted) is 100 << 4 = 1600 bytes; the engine's becomes 64000. A
// segment whose ACK field is 2000 bytes old is dropped by the guest and acknowledged early.
TEST_F(KnownEngineIssue, AckBoundIsLearntOnlyFromSegmentsTheGuestTakes) {
  ASSERT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(100).WindowScale(4)).reason,
            Reason::kHandshake);
  ASSERT_EQ(
      FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(65535).WindowScale(0)).reason,
      Reason::kHandshake);
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(100)).reason, Reason::kNoPayload);
  // A segment with a corrupted checksum that advertises a large window.
  EXPECT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(4000).Payload(10).BadTcpChecksum()).reason,
            Reason::kBadTcpChecksum);
  // In order, right checksum, ACK field 2000 bytes older than the guest's SND.UNA.
  const Verdict v = ToGuest(Data().Seq(1001).Ack(5001 - 2000).Window(100).Payload(10));
  EXPECT_NE(v.action, Action::kForwardAndAck);  // today: acknowledged early
}

// Issue 4: the guest's TS.Recent moves with a segment the engine does not count. A
// spurious retransmission of acknowledged data [1001, 2001) with TSval 150 ends at the
// guest's RCV.WUP, so Linux's tcp_replace_ts_recent takes its TSval. The segment after it,
// sent earlier with TSval 120 and delayed, then fails the guest's PAWS check (120 < 150),
// but the engine, whose TS.Recent is still 101, acknowledges it early.
TEST_F(KnownEngineIssue, PawsUsesTheTimestampsTheGuestUses) {
  ASSERT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(65535).Timestamps(100, 0)).reason,
            Reason::kHandshake);
  ASSERT_EQ(
      FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(65535).Timestamps(200, 100))
          .reason,
      Reason::kHandshake);
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Timestamps(100, 200)).reason,
            Reason::kNoPayload);
  ASSERT_EQ(
      ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Timestamps(101, 200).Payload(1000)).action,
      Action::kForwardAndAck);
  // The guest reads it and acknowledges (RCV.WUP = 2001).
  EXPECT_EQ(FromGuest(Reply().Seq(5001).Ack(2001).Window(64535).Timestamps(201, 101)).action,
            Action::kSuppress);
  // The retransmission: the guest takes TSval 150 and answers with a D-SACK.
  EXPECT_EQ(
      ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Timestamps(150, 201).Payload(1000)).reason,
      Reason::kRetransmission);
  EXPECT_TRUE(
      FromGuest(Reply().Seq(5001).Ack(2001).Window(64535).Timestamps(202, 150).Sack(1001, 2001))
          .forwards());
  // The delayed segment the guest will drop by PAWS.
  const Verdict v =
      ToGuest(Data().Seq(2001).Ack(5001).Window(65535).Timestamps(120, 201).Payload(1000));
  EXPECT_NE(v.action, Action::kForwardAndAck);  // today: acknowledged early
}

}  // namespace
}  // namespace vsnoop
