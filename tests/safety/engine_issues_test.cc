// Engine behaviours the safety tests (crafted.py) found, each on a short fixed sequence of
// frames: regression tests for what was fixed, next to what was already safe about the case.
#include <gtest/gtest.h>

#include "vsnoop/engine.h"
#include "vsnoop/reasons.h"
#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop {
namespace {

using sim::Endpoint;
using sim::FrameBuilder;
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

}  // namespace
}  // namespace vsnoop
