// Engine behaviour on hand-built segments: the essentials of the brief, one test each.
// The golden traces (tests/golden) cover the scenarios end to end.
#include "vsnoop/engine.h"

#include <gtest/gtest.h>

#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop {
namespace {

using sim::Endpoint;
using sim::FrameBuilder;
namespace flag = wire::tcp_flag;

class EngineTest : public ::testing::Test {
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

  // SYN 1000 (ws 7, ts) -> SYN-ACK 5000 (ws 7, ts, window 65160) -> ACK.
  void Handshake() {
    EXPECT_EQ(ToGuest(Data().Seq(1000).Flags(flag::kSyn).Window(64240).Mss(1460)
                          .SackPermitted().Timestamps(100, 0).WindowScale(7))
                  .reason,
              Reason::kHandshake);
    EXPECT_EQ(FromGuest(Reply().Seq(5000).Ack(1001).Flags(flag::kSyn).Window(65160).Mss(1460)
                            .SackPermitted().Timestamps(200, 100).WindowScale(7))
                  .reason,
              Reason::kHandshake);
    EXPECT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Window(502).Timestamps(101, 200)).reason,
              Reason::kNoPayload);
  }
};

TEST_F(EngineTest, AcknowledgesInOrderDataEarly) {
  Handshake();
  const Verdict v = ToGuest(Data().Seq(1001).Ack(5001).Window(502).Timestamps(102, 200)
                                .Payload(1448));
  ASSERT_EQ(v.action, Action::kForwardAndAck);
  Reason why{};
  const auto ack = ParseSegment(v.ack.view(), &why);
  ASSERT_TRUE(ack.has_value());
  EXPECT_TRUE(ack->IpChecksumValid());
  EXPECT_TRUE(ack->TcpChecksumValid());
  EXPECT_EQ(ack->tcp.source_port(), 5201);
  EXPECT_EQ(ack->tcp.destination_port(), 40000);
  EXPECT_EQ(ack->tcp.seq(), 5001u);
  EXPECT_EQ(ack->tcp.ack(), 1001u + 1448u);
  EXPECT_EQ(ack->tcp.flags(), flag::kAck);
  EXPECT_EQ(ack->payload_size, 0u);
  // Right edge 1001 + 65160 (the SYN-ACK's unscaled window); (65160 - 1448) >> 7 = 497.
  EXPECT_EQ(ack->tcp.window(), (65160u - 1448u) >> 7);
  const auto opts = wire::TcpOptions::Read(ack->tcp.options());
  EXPECT_TRUE(opts.has_timestamps);
  EXPECT_EQ(opts.ts_value, 200u);  // the guest's newest TSval
  EXPECT_EQ(opts.ts_echo, 102u);   // the acknowledged segment's TSval
  EXPECT_EQ(engine_.counters().early_acks, 1u);
  EXPECT_EQ(engine_.counters().early_acked_bytes, 1448u);
}

TEST_F(EngineTest, SuppressesRedundantGuestAckAndForwardsNews) {
  Handshake();
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Timestamps(102, 200).Payload(1000)).action,
            Action::kForwardAndAck);
  ASSERT_EQ(ToGuest(Data().Seq(2001).Ack(5001).Timestamps(103, 200).Payload(1000)).action,
            Action::kForwardAndAck);
  // The guest acknowledges the first segment, window unchanged in bytes: nothing new.
  EXPECT_EQ(FromGuest(Reply().Seq(5001).Ack(2001).Window(501).Timestamps(201, 102)).action,
            Action::kSuppress);
  // The guest acknowledges everything and opens its window: forwarded.
  EXPECT_EQ(FromGuest(Reply().Seq(5001).Ack(3001).Window(1000).Timestamps(202, 103)).reason,
            Reason::kGuestWindowExtends);
  // A SACK block is always news.
  EXPECT_EQ(FromGuest(Reply().Seq(5001).Ack(3001).Window(1000).Sack(4001, 5001)).reason,
            Reason::kGuestSack);
}

TEST_F(EngineTest, ReplacesStaleWindowOpeningAckWithWindowUpdate) {
  Handshake();
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Timestamps(102, 200).Payload(1000)).action,
            Action::kForwardAndAck);
  ASSERT_EQ(ToGuest(Data().Seq(2001).Ack(5001).Timestamps(103, 200).Payload(1000)).action,
            Action::kForwardAndAck);
  const Verdict v = FromGuest(Reply().Seq(5001).Ack(2001).Window(2000).Timestamps(201, 102));
  ASSERT_EQ(v.action, Action::kSuppressAndAck);
  Reason why{};
  const auto ack = ParseSegment(v.ack.view(), &why);
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->tcp.ack(), 3001u);
  // Guest's edge 2001 + 2000 * 128; shown from 3001, rounded down to the scale.
  EXPECT_EQ(ack->tcp.window(), (2001u + 2000u * 128u - 3001u) >> 7);
  EXPECT_EQ(ack->tcp.source_port(), 5201);
  EXPECT_TRUE(ack->TcpChecksumValid());
}

TEST_F(EngineTest, NeverAcknowledgesWhatDoesNotFit) {
  Handshake();
  ctx_.room = {.bytes = 100, .frames = 10};
  const Verdict v = ToGuest(Data().Seq(1001).Ack(5001).Timestamps(102, 200).Payload(1000));
  EXPECT_EQ(v.action, Action::kForward);
  EXPECT_EQ(v.reason, Reason::kNoRoom);
  EXPECT_EQ(engine_.counters().transition(FlowState::kActive, FlowState::kNoBuffer), 1u);
  ctx_.room = {.bytes = 1 << 20, .frames = 1024};
  // The dropped segment is retransmitted and now fits: back to ACTIVE.
  EXPECT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Timestamps(104, 200).Payload(1000)).action,
            Action::kForwardAndAck);
  EXPECT_EQ(engine_.counters().transition(FlowState::kNoBuffer, FlowState::kActive), 1u);
}

TEST_F(EngineTest, HoleHandsRecoveryToTheGuestUntilItCatchesUp) {
  Handshake();
  ASSERT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Timestamps(102, 200).Payload(1000)).action,
            Action::kForwardAndAck);
  // 2001..3001 is lost upstream.
  EXPECT_EQ(ToGuest(Data().Seq(3001).Ack(5001).Timestamps(103, 200).Payload(1000)).reason,
            Reason::kOutOfOrder);
  // The guest's duplicate ACK with SACK goes to the sender.
  EXPECT_EQ(FromGuest(Reply().Seq(5001).Ack(2001).Window(500).Timestamps(201, 103)
                          .Sack(3001, 4001)).action,
            Action::kForward);
  // The retransmission fills the hole: still the guest's job.
  EXPECT_EQ(ToGuest(Data().Seq(2001).Ack(5001).Timestamps(104, 200).Payload(1000)).reason,
            Reason::kUnexpectedSeq);
  EXPECT_EQ(FromGuest(Reply().Seq(5001).Ack(4001).Window(500).Timestamps(202, 104)).action,
            Action::kForward);
  // The guest has caught up: the next in-order segment is acknowledged early again.
  EXPECT_EQ(ToGuest(Data().Seq(4001).Ack(5001).Timestamps(105, 202).Payload(1000)).action,
            Action::kForwardAndAck);
}

TEST_F(EngineTest, BadChecksumIsNeverAcknowledged) {
  Handshake();
  EXPECT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Timestamps(102, 200).Payload(100)
                        .BadTcpChecksum()).reason,
            Reason::kBadTcpChecksum);
  EXPECT_EQ(ToGuest(Data().Seq(1001).Ack(5001).Timestamps(102, 200).Payload(100)
                        .BadIpChecksum()).reason,
            Reason::kBadIpChecksum);
  EXPECT_EQ(engine_.counters().early_acks, 0u);
}

TEST_F(EngineTest, MidStreamFlowsStayPassive) {
  EXPECT_EQ(ToGuest(Data().Seq(777).Ack(1).Payload(100)).reason, Reason::kMidStream);
  EXPECT_EQ(ToGuest(Data().Seq(877).Ack(1).Payload(100)).reason, Reason::kMidStream);
  EXPECT_EQ(engine_.counters().flows_mid_stream, 1u);
  EXPECT_EQ(engine_.counters().early_acks, 0u);
}

}  // namespace
}  // namespace vsnoop
