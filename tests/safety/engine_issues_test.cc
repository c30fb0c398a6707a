// Engine behaviours the safety tests (crafted.py) found, each on a short fixed sequence of
// frames: regression tests for what was fixed, next to what was already safe about the case.
#include <gtest/gtest.h>

#include "vsnoop/engine.h"
#include "vsnoop/reasons.h"
#include "vsnoop/segment.h"
#include "vsnoop/wire/tcp.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop {
namespace {

using sim::Endpoint;
using sim::FrameBuilder;
using wire::TcpOptions;
namespace flag = wire::tcp_flag;

class SegmentBeyondTheWindow : public ::testing::Test {
 protected:
  Endpoint sender_ = Endpoint::Parse("10.0.0.1:40000");
  Endpoint guest_ = Endpoint::Parse("10.0.0.2:5001");
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

  // A connection with a 64000-byte guest window and two early-acknowledged segments
  // (bytes 1001..3000), then one segment 2^28 bytes ahead: far beyond the right edge the
  // guest advertised (3001 + 64000), so the guest's stack drops it as unacceptable
  // (RFC 9293 §3.10.7.4) and answers with a duplicate ACK for 3001.
  void ConnectionHitByASegmentFarBeyondTheWindow() {
    ASSERT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(65535)).reason, Reason::kHandshake);
    ASSERT_EQ(FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(64000)).reason,
              Reason::kHandshake);
    ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(65535)).reason, Reason::kNoPayload);
    ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Payload(1000)).action,
              Action::kForwardAndAck);
    ASSERT_EQ(ToGuest(Data().Seq(2001).Ack(5001).Window(65535).Payload(1000)).action,
              Action::kForwardAndAck);
    far_ = ToGuest(Data().Seq(3001u + (1u << 28)).Ack(5001).Window(65535).Payload(1000));
    // The guest has everything up to 3001 and says so (its ACK for the first two segments,
    // then its duplicate ACK for the dropped one).
    guest_ack_ = FromGuest(Reply().Seq(5001).Ack(3001).Window(64000));
    guest_dup_ack_ = FromGuest(Reply().Seq(5001).Ack(3001).Window(64000));
  }

  Verdict far_;
  Verdict guest_ack_;
  Verdict guest_dup_ack_;
};

// Safe today: the segment beyond the window is passed to the guest, never acknowledged.
TEST_F(SegmentBeyondTheWindow, IsNeverAcknowledgedEarly) {
  ConnectionHitByASegmentFarBeyondTheWindow();
  EXPECT_NE(far_.action, Action::kForwardAndAck);
  EXPECT_NE(far_.action, Action::kSuppressAndAck);
  EXPECT_FALSE(far_.has_ack());
  // In UNEXPECTED_SEQ the guest's duplicate ACK reaches the sender (brief §5).
  EXPECT_TRUE(guest_dup_ack_.forwards());
}

// The guest dropped the segment beyond its window, so its ACK (3001) has caught up with every
// byte it can have received, and the next in-order segment, with room, is acknowledged
// early (brief §3). The engine once counted the dropped segment's end in its highest byte
// seen (rcv_high) and waited for an ACK of it that never came: one spoofed segment on a
// known 4-tuple, no sequence number needed, ended acceleration of the flow for good.
TEST_F(SegmentBeyondTheWindow, FlowIsAcceleratedAgainOnceTheGuestHasCaughtUp) {
  ConnectionHitByASegmentFarBeyondTheWindow();
  const Verdict next = ToGuest(Data().Seq(3001).Ack(5001).Window(65535).Payload(1000));
  EXPECT_EQ(ReasonLabel(next.reason), ReasonLabel(Reason::kEarlyAck));
}

// Found by the safety matrix (run_matrix.py --case base/duplicate/k1): the link duplicated
// the sender's SYN, and the guest answered the copy with a second SYN-ACK carrying a newer
// TSval (Linux retransmits its SYN-ACK with the current clock). The engine passes a
// retransmitted SYN-ACK without noting its TSval, so its early ACKs carry the first
// SYN-ACK's TSval, older than the one the sender has already seen: the TSval toward the
// sender goes back (tshark check timestamps_monotonic), and the sender's PAWS test (RFC 7323
// §5.3; Linux took TS.Recent from the second SYN-ACK, tcp_replace_ts_recent) may discard
// those early ACKs. The brief (§4): an early ACK's TSval is the VM's most recent TSval.
class RetransmittedSynAck : public SegmentBeyondTheWindow {
 protected:
  static std::uint32_t TsValueOf(const Verdict& v) {
    Reason why{};
    const auto ack = ParseSegment(v.ack.view(), &why);
    if (!ack) return 0;
    return TcpOptions::Read(ack->tcp.options()).ts_value;
  }
  Verdict EarlyAckAfterADuplicatedSyn() {
    EXPECT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(65535).Timestamps(100, 0)).reason,
              Reason::kHandshake);
    EXPECT_EQ(
        FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(64000).Timestamps(200, 100))
            .reason,
        Reason::kHandshake);
    // The duplicate of the SYN, and the guest's answer to it: the same SYN-ACK, newer TSval.
    EXPECT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(65535).Timestamps(100, 0)).reason,
              Reason::kHandshake);
    EXPECT_TRUE(
        FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(64000).Timestamps(201, 100))
            .forwards());
    EXPECT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Timestamps(101, 201)).reason,
              Reason::kNoPayload);
    return ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Timestamps(102, 201).Payload(1000));
  }
};

// Safe today: the data is acknowledged early, echoing the sender's TSval.
TEST_F(RetransmittedSynAck, DataIsStillAcknowledgedEarly) {
  const Verdict v = EarlyAckAfterADuplicatedSyn();
  ASSERT_EQ(v.action, Action::kForwardAndAck);
  Reason why{};
  const auto ack = ParseSegment(v.ack.view(), &why);
  ASSERT_TRUE(ack);
  EXPECT_EQ(TcpOptions::Read(ack->tcp.options()).ts_echo, 102u);
}

TEST_F(RetransmittedSynAck, EarlyAckCarriesTheGuestsNewestTsval) {
  const Verdict v = EarlyAckAfterADuplicatedSyn();
  ASSERT_EQ(v.action, Action::kForwardAndAck);
  EXPECT_EQ(TsValueOf(v), 201u);
}

// Found by the crafted-frame test (crafted.py, guest_ack_beyond_data then
// recovers_after_segment_beyond_window): a frame from the guest whose ACK number lies
// 1 MiB beyond any data the sender sent. The engine forwards it (reason
// guest_ack_beyond_data), and the sender drops it without taking its window (RFC 9293
// §3.10.7.4: an ACK for data not yet sent is answered and dropped). If the engine counts
// that frame's right edge (ACK + window) as shown to the sender, every later early ACK
// would have to show an edge 1 MiB further on, beyond the guest's real window: the engine
// refuses each one (window_would_shrink) and the flow is never accelerated again.
class GuestAckBeyondData : public SegmentBeyondTheWindow {};

TEST_F(GuestAckBeyondData, DoesNotWidenTheEdgeShownToTheSender) {
  ASSERT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(65535)).reason, Reason::kHandshake);
  ASSERT_EQ(FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(64000)).reason,
            Reason::kHandshake);
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(65535)).reason, Reason::kNoPayload);
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(65535).Payload(1000)).action,
            Action::kForwardAndAck);
  const Verdict forged = FromGuest(Reply().Seq(5001).Ack(2001u + (1u << 20)).Window(64000));
  EXPECT_EQ(ReasonLabel(forged.reason), ReasonLabel(Reason::kGuestAckBeyondData));
  guest_ack_ = FromGuest(Reply().Seq(5001).Ack(2001).Window(64000));
  const Verdict next = ToGuest(Data().Seq(2001).Ack(5001).Window(65535).Payload(1000));
  EXPECT_EQ(ReasonLabel(next.reason), ReasonLabel(Reason::kEarlyAck));
}

}  // namespace
}  // namespace vsnoop
