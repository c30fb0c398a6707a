// The datapath over in-memory ports with a fake clock: bridging, the per-guest buffer,
// early ACKs placed after their data, emulated scheduling, lossless delivery, and a guest
// that goes away.
#include "vsnoop/datapath/datapath.h"

#include <gtest/gtest.h>

#include "vsnoop/datapath/memory_port.h"
#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop::datapath {
namespace {

using sim::Endpoint;
using sim::FrameBuilder;
using std::chrono::milliseconds;
namespace flag = wire::tcp_flag;

struct Topology {
  std::optional<ScheduleConfig> schedule;
  std::uint64_t buffer_bytes = 1 << 20;
  std::uint32_t buffer_frames = 1024;
  bool guest_offload = true;
  int guests = 1;
};

class DatapathTest : public ::testing::Test {
 protected:
  void Build(const Topology& s) {
    auto up = std::make_unique<MemoryPort>("uplink");
    uplink_ = up.get();
    std::vector<GuestPortConfig> guests;
    for (int i = 0; i < s.guests; ++i) {
      auto port = std::make_unique<MemoryPort>("vm" + std::to_string(i + 1), s.guest_offload);
      vm_.push_back(port.get());
      guests.push_back(GuestPortConfig{.name = "memory:vm" + std::to_string(i + 1),
                                       .port = std::move(port),
                                       .schedule = s.schedule,
                                       .buffer_bytes = s.buffer_bytes,
                                       .buffer_frames = s.buffer_frames});
    }
    dp_ = std::make_unique<Datapath>(DatapathConfig{}, std::move(up), std::move(guests), now_);
  }

  void Step() { dp_->Step(now_); }
  void Advance(Duration d) {
    now_ += d;
    Step();
  }

  // The guest (vm1) says hello so the bridge learns its MAC, then the handshake.
  void Handshake(std::size_t vm = 0) {
    vm_[vm]->Inject(FrameBuilder().From(guest_).To(sender_).Seq(1).Ack(1).Flags(flag::kRst).Build());
    Step();
    uplink_->TakeSent();
    uplink_->Inject(FrameBuilder().From(sender_).To(guest_).Seq(1000).Flags(flag::kSyn)
                        .Window(64240).Mss(1460).Timestamps(100, 0).WindowScale(7).Build());
    Step();
    vm_[vm]->Inject(FrameBuilder().From(guest_).To(sender_).Seq(5000).Ack(1001).Flags(flag::kSyn)
                        .Window(65160).Mss(1460).Timestamps(200, 100).WindowScale(7).Build());
    Step();
    uplink_->Inject(FrameBuilder().From(sender_).To(guest_).Seq(1001).Ack(5001).Window(502)
                        .Timestamps(101, 200).Build());
    Step();
    uplink_->TakeSent();
    vm_[vm]->TakeSent();
  }

  std::vector<std::uint8_t> Data(std::uint32_t seq, std::size_t len, std::uint32_t ts) {
    return FrameBuilder().From(sender_).To(guest_).Seq(seq).Ack(5001).Window(502)
        .Timestamps(ts, 200).Payload(len).Build();
  }

  static std::optional<Segment> Parse(const OwnedPacket& p) {
    Reason why{};
    return ParseSegment(p.frame, &why);
  }

  Endpoint sender_ = Endpoint::Parse("10.0.0.1:40000");
  Endpoint guest_ = Endpoint::Parse("10.0.0.2:5201");
  Timestamp now_{milliseconds(1)};
  MemoryPort* uplink_ = nullptr;
  std::vector<MemoryPort*> vm_;
  std::unique_ptr<Datapath> dp_;
};

TEST_F(DatapathTest, FloodsUnknownAndLearnsAddresses) {
  Build({.guests = 2});
  uplink_->Inject(FrameBuilder().From(sender_).To(guest_).Seq(1).Flags(flag::kSyn).Build());
  Step();
  EXPECT_EQ(vm_[0]->TakeSent().size(), 1u);  // destination unknown: flooded to both guests
  EXPECT_EQ(vm_[1]->TakeSent().size(), 1u);
  EXPECT_EQ(dp_->counters().frames_flooded, 1u);
  vm_[0]->Inject(FrameBuilder().From(guest_).To(sender_).Seq(1).Ack(2).Flags(flag::kRst).Build());
  Step();
  EXPECT_EQ(uplink_->TakeSent().size(), 1u);  // learnt: the sender is behind the uplink
  EXPECT_TRUE(vm_[1]->TakeSent().empty());
  uplink_->Inject(FrameBuilder().From(sender_).To(guest_).Seq(1).Flags(flag::kSyn).Build());
  Step();
  EXPECT_EQ(vm_[0]->TakeSent().size(), 1u);  // learnt: the guest is vm1
  EXPECT_TRUE(vm_[1]->TakeSent().empty());
}

TEST_F(DatapathTest, EarlyAckFollowsDataIntoTheBuffer) {
  Build({});
  Handshake();
  uplink_->Inject(Data(1001, 1448, 102));
  Step();
  const auto to_guest = vm_[0]->TakeSent();
  ASSERT_EQ(to_guest.size(), 1u);
  const auto to_sender = uplink_->TakeSent();
  ASSERT_EQ(to_sender.size(), 1u);
  const auto ack = Parse(to_sender[0]);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->tcp.ack(), 2449u);
  EXPECT_EQ(dp_->guest(0).counters.early_acks, 1u);
  EXPECT_EQ(dp_->engine().counters().early_acks, 1u);
}

// Early ACKs made while one burst from the uplink is read leave together after it: the
// latest of each flow, in the order the flows first had one.
TEST_F(DatapathTest, EarlyAcksOfABurstAreCoalescedPerFlow) {
  Build({});
  Handshake();
  const Endpoint first_sender = sender_;
  sender_ = Endpoint::Parse("10.0.0.1:40001");
  Handshake();
  uplink_->Inject(Data(1001, 1000, 102));                  // flow 2
  sender_ = first_sender;
  uplink_->Inject(Data(1001, 1000, 102));                  // flow 1
  uplink_->Inject(Data(2001, 1000, 103));                  // flow 1
  sender_ = Endpoint::Parse("10.0.0.1:40001");
  uplink_->Inject(Data(2001, 1000, 103));                  // flow 2
  uplink_->Inject(Data(3001, 1000, 104));                  // flow 2
  Step();
  const auto acks = uplink_->TakeSent();
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(Parse(acks[0])->tcp.destination_port(), 40001);
  EXPECT_EQ(Parse(acks[0])->tcp.ack(), 4001u);
  EXPECT_EQ(Parse(acks[1])->tcp.destination_port(), 40000);
  EXPECT_EQ(Parse(acks[1])->tcp.ack(), 3001u);
  EXPECT_EQ(dp_->engine().counters().early_acks, 5u);
  EXPECT_EQ(dp_->guest(0).counters.early_acks, 2u);
  EXPECT_EQ(dp_->guest(0).counters.early_acks_coalesced, 3u);
  // The next burst acknowledges on its own.
  uplink_->Inject(Data(4001, 1000, 105));
  Step();
  ASSERT_EQ(uplink_->TakeSent().size(), 1u);
}

TEST_F(DatapathTest, FullBufferDropsAndNeverAcknowledges) {
  Build({.buffer_frames = 2});
  Handshake();
  vm_[0]->set_send_window(0);  // the guest stops taking frames
  for (std::uint32_t i = 0; i < 4; ++i) uplink_->Inject(Data(1001 + i * 1000, 1000, 102 + i));
  Step();
  const auto acks = uplink_->TakeSent();
  // Only the two frames that fit are acknowledged: one ACK, the second of the burst.
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(Parse(acks.back())->tcp.ack(), 3001u);
  EXPECT_EQ(dp_->engine().counters().early_acks, 2u);
  EXPECT_EQ(dp_->guest(0).counters.early_acks_coalesced, 1u);
  EXPECT_EQ(dp_->guest(0).counters.frames_dropped_no_room, 2u);
  EXPECT_EQ(dp_->guest(0).buffer.frames(), 2u);
  EXPECT_EQ(dp_->engine().counters().transition(FlowState::kActive, FlowState::kNoBuffer), 1u);
}

TEST_F(DatapathTest, AFrameLongerThanTheGuestsPortTakesIsNeverAcknowledged) {
  Build({});
  Handshake();
  // An uplink with jumbo frames in front of a guest with MTU 1500: the kernel would
  // refuse the frame, the VM would never have it, so vSnoop must not acknowledge it.
  vm_[0]->set_max_frame_bytes(1514);
  uplink_->Inject(Data(1001, 3000, 102));
  Step();
  EXPECT_TRUE(uplink_->TakeSent().empty());
  EXPECT_TRUE(vm_[0]->TakeSent().empty());
  EXPECT_EQ(dp_->guest(0).counters.frames_dropped_too_big, 1u);
  EXPECT_EQ(dp_->engine().counters().early_acks, 0u);
  // The sender's path MTU discovery or segmentation brings it in sizes that fit.
  uplink_->Inject(Data(1001, 1400, 103));
  Step();
  const auto acks = uplink_->TakeSent();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(Parse(acks[0])->tcp.ack(), 2401u);
}

TEST_F(DatapathTest, AFrameThePortRefusesIsCountedAndItsAckWithheld) {
  Build({});
  Handshake();
  const std::uint64_t delivered = dp_->guest(0).counters.frames_delivered;
  vm_[0]->refuse_next(1);
  uplink_->Inject(Data(1001, 1000, 102));
  Step();
  EXPECT_TRUE(uplink_->TakeSent().empty());
  EXPECT_EQ(dp_->guest(0).counters.frames_refused, 1u);
  EXPECT_EQ(dp_->guest(0).counters.frames_delivered, delivered);
  EXPECT_EQ(dp_->guest(0).counters.early_acks_withheld, 1u);
}

TEST_F(DatapathTest, LosslessPortKeepsFramesUntilThePeerReads) {
  Build({});
  Handshake();
  vm_[0]->set_send_window(3);
  for (std::uint32_t i = 0; i < 10; ++i) uplink_->Inject(Data(1001 + i * 100, 100, 102 + i));
  Step();
  EXPECT_EQ(vm_[0]->sent().size(), 3u);
  EXPECT_EQ(dp_->guest(0).buffer.frames(), 7u);
  vm_[0]->set_send_window(1000);
  Step();
  const auto got = vm_[0]->TakeSent();
  ASSERT_EQ(got.size(), 10u);
  for (std::uint32_t i = 0; i < 10; ++i) EXPECT_EQ(Parse(got[i])->tcp.seq(), 1001 + i * 100);
}

TEST_F(DatapathTest, PortHoldingPartOfAFrameIsFlushedAndDrained) {
  Build({});
  Handshake();
  vm_[0]->set_holds_part_of_each_frame(true);
  for (std::uint32_t i = 0; i < 5; ++i) uplink_->Inject(Data(1001 + i * 100, 100, 102 + i));
  // Each step finishes the held frame and hands over the next: nothing stays stuck.
  for (int step = 0; step < 12; ++step) Step();
  EXPECT_EQ(vm_[0]->TakeSent().size(), 5u);
  EXPECT_EQ(dp_->guest(0).buffer.frames(), 0u);
}

TEST_F(DatapathTest, DescheduledGuestReceivesNothingUntilItsTurn) {
  std::string error;
  Build({.schedule = ScheduleConfig::Parse("rr:vms=2:slice_ms=30:turn=1:idle_us=500", &error)});
  Handshake();
  Advance(milliseconds(2));  // idle: the guest blocks, the neighbour takes the core
  uplink_->Inject(Data(1001, 1000, 102));
  Step();
  EXPECT_TRUE(vm_[0]->sent().empty());       // held in the buffer...
  EXPECT_EQ(uplink_->TakeSent().size(), 1u);  // ...and acknowledged at once
  const Timestamp deadline = dp_->NextDeadline(now_);
  EXPECT_GT(deadline, now_ + milliseconds(20));  // the neighbour's turn
  now_ = deadline;
  Step();
  EXPECT_EQ(vm_[0]->TakeSent().size(), 1u);
}

TEST_F(DatapathTest, GuestAcksAreReadOnlyWhileItRuns) {
  std::string error;
  Build({.schedule = ScheduleConfig::Parse("rr:vms=2:slice_ms=30:turn=1:idle_us=500", &error)});
  Handshake();
  Advance(milliseconds(2));
  ASSERT_EQ(dp_->guest(0).schedule->state(), VmSchedule::State::kBlocked);
  vm_[0]->Inject(FrameBuilder().From(guest_).To(sender_).Seq(5001).Ack(1001).Window(600)
                     .Timestamps(300, 101).Build());
  Step();  // the guest's own stack has something to send: it wakes, but must wait its turn
  EXPECT_TRUE(uplink_->sent().empty());
  now_ = dp_->NextDeadline(now_);
  Step();
  EXPECT_EQ(uplink_->TakeSent().size(), 1u);
}

TEST_F(DatapathTest, SegmentsGsoForPortsWithoutOffload) {
  Build({.guest_offload = false});
  Handshake();
  VnetHeader h;
  h.flags = VnetHeader::kNeedsCsum;
  h.gso_type = VnetHeader::kGsoTcpV4;
  h.gso_size = 1448;
  auto big = Data(1001, 1448 * 4, 102);
  h.csum_start = 14 + 20;
  h.csum_offset = 16;
  uplink_->Inject(big, h);
  Step();
  const auto got = vm_[0]->TakeSent();
  ASSERT_EQ(got.size(), 4u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    const auto s = Parse(got[i]);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->tcp.seq(), 1001 + i * 1448);
    EXPECT_EQ(s->payload_size, 1448u);
    EXPECT_TRUE(s->IpChecksumValid());
    EXPECT_TRUE(s->TcpChecksumValid());
    EXPECT_TRUE(got[i].vnet.plain());
  }
  EXPECT_EQ(dp_->guest(0).counters.gso_segmented, 1u);
  // One early ACK per segment, of which the last, sent once the burst is read, says it all.
  EXPECT_EQ(dp_->engine().counters().early_acks, 4u);
  EXPECT_EQ(dp_->guest(0).counters.early_acks, 1u);
  EXPECT_EQ(dp_->guest(0).counters.early_acks_coalesced, 3u);
  const auto acks = uplink_->TakeSent();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(Parse(acks[0])->tcp.ack(), 1001u + 4 * 1448);
}

TEST_F(DatapathTest, GuestThatGoesAwayIsForgotten) {
  Build({});
  Handshake();
  vm_[0]->set_send_window(0);
  uplink_->Inject(Data(1001, 1000, 102));
  Step();
  EXPECT_EQ(dp_->engine().flows().size(), 1u);
  vm_[0]->set_connected(false);
  Step();
  EXPECT_EQ(dp_->engine().flows().size(), 0u);
  EXPECT_EQ(dp_->guest(0).buffer.frames(), 0u);
  EXPECT_EQ(dp_->guest(0).counters.disconnects, 1u);
}

TEST_F(DatapathTest, SwitchedOffItOnlyObserves) {
  Build({});
  dp_->SetAcceleration(false);
  Handshake();
  uplink_->Inject(Data(1001, 1000, 102));
  Step();
  EXPECT_TRUE(uplink_->TakeSent().empty());
  EXPECT_EQ(vm_[0]->TakeSent().size(), 1u);
  dp_->SetAcceleration(true);
  uplink_->Inject(Data(2001, 1000, 103));
  Step();
  EXPECT_EQ(uplink_->TakeSent().size(), 1u);  // state was kept: acceleration resumes mid-flow
}

}  // namespace
}  // namespace vsnoop::datapath
