// The window vSnoop shows the sender, through the whole datapath (engine + per-guest buffer).
// Regression tests for two faults the consolidation lab found:
//   - the buffer-aware window was computed from a room capped at one maximum frame (65600
//     bytes), so it never invited more than about 62 KB beyond the ACK however empty the
//     buffer was;
//   - a forwarded guest segment whose ACK number is behind vSnoop's (a D-SACK, say) raised
//     the edge vSnoop believed the sender was shown, although the sender ignores the window
//     of an ACK older than SND.UNA (RFC 9293 §3.10.7.4); later window updates and the
//     guest's answers to zero-window probes were then suppressed as "nothing new", and the
//     sender probed a closed window for ever.
#include <gtest/gtest.h>

#include "vsnoop/datapath/datapath.h"
#include "vsnoop/datapath/memory_port.h"
#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop::datapath {
namespace {

using sim::Endpoint;
using sim::FrameBuilder;
using std::chrono::milliseconds;
namespace flag = wire::tcp_flag;

constexpr int kScale = 7;  // both sides' window scale in the handshake below

class BufferWindowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto up = std::make_unique<MemoryPort>("uplink");
    uplink_ = up.get();
    auto port = std::make_unique<MemoryPort>("vm1");
    vm_ = port.get();
    std::vector<GuestPortConfig> guests;
    guests.push_back(GuestPortConfig{.name = "memory:vm1", .port = std::move(port),
                                     .schedule = std::nullopt, .buffer_bytes = 1 << 20,
                                     .buffer_frames = 1024});
    dp_ = std::make_unique<Datapath>(DatapathConfig{}, std::move(up), std::move(guests), now_);
    // The guest says hello (the bridge learns its MAC), then the handshake: the guest's
    // SYN-ACK window is 65160 bytes (unscaled), its right edge 1001 + 65160.
    vm_->Inject(FrameBuilder().From(guest_).To(sender_).Seq(1).Ack(1).Flags(flag::kRst).Build());
    Step();
    uplink_->Inject(FrameBuilder().From(sender_).To(guest_).Seq(1000).Flags(flag::kSyn)
                        .Window(64240).Mss(1460).SackPermitted().Timestamps(100, 0)
                        .WindowScale(kScale).Build());
    Step();
    vm_->Inject(FrameBuilder().From(guest_).To(sender_).Seq(5000).Ack(1001).Flags(flag::kSyn)
                    .Window(65160).Mss(1460).SackPermitted().Timestamps(200, 100)
                    .WindowScale(kScale).Build());
    Step();
    uplink_->Inject(FrameBuilder().From(sender_).To(guest_).Seq(1001).Ack(5001).Window(502)
                        .Timestamps(101, 200).Build());
    Step();
    uplink_->TakeSent();
    vm_->TakeSent();
  }

  void Step() { dp_->Step(now_); }

  void SendData(std::uint32_t seq, std::size_t len) {
    uplink_->Inject(FrameBuilder().From(sender_).To(guest_).Seq(seq).Ack(5001).Window(502)
                        .Timestamps(ts_++, 200).Payload(len).Build());
    Step();
  }

  void GuestAck(std::uint32_t ack, std::uint16_t window, std::optional<std::pair<std::uint32_t,
                std::uint32_t>> sack = std::nullopt) {
    FrameBuilder b;
    b.From(guest_).To(sender_).Seq(5001).Ack(ack).Window(window).Timestamps(guest_ts_++, 101);
    if (sack) b.Sack(sack->first, sack->second);
    vm_->Inject(b.Build());
    Step();
  }

  struct SeenAck {
    std::uint32_t ack;
    std::uint32_t window_bytes;
  };
  // The pure ACKs the sender received since the last call.
  std::vector<SeenAck> AcksToSender() {
    std::vector<SeenAck> out;
    for (const OwnedPacket& p : uplink_->TakeSent()) {
      Reason why{};
      const auto seg = ParseSegment(p.frame, &why);
      if (seg && seg->payload_size == 0 && seg->tcp.Has(flag::kAck)) {
        out.push_back({seg->tcp.ack(), static_cast<std::uint32_t>(seg->tcp.window()) << kScale});
      }
    }
    return out;
  }

  Endpoint sender_ = Endpoint::Parse("10.0.0.1:40000");
  Endpoint guest_ = Endpoint::Parse("10.0.0.2:5001");
  Timestamp now_{milliseconds(1)};
  std::uint32_t ts_ = 102;
  std::uint32_t guest_ts_ = 201;
  MemoryPort* uplink_ = nullptr;
  MemoryPort* vm_ = nullptr;
  std::unique_ptr<Datapath> dp_;
};

// design.md, "Buffer-aware window": the edge grows no further than the buffer can hold
// beyond the ACK, "its free bytes, less 80 bytes of headers per MSS". With a 1 MiB buffer
// holding one frame and a guest offering 1 MiB, the sender should be invited to fill most
// of the buffer.
TEST_F(BufferWindowTest, EmptyBufferInvitesMoreThanOneFrame) {
  vm_->set_send_window(0);  // the guest is not reading: frames stay in vsnoopd's buffer
  SendData(1001, 1448);
  ASSERT_FALSE(AcksToSender().empty());  // early ACK at 2449
  GuestAck(2449, 8192);  // the guest's own window: 8192 << 7 = 1 MiB
  SendData(2449, 1448);
  const auto acks = AcksToSender();
  ASSERT_FALSE(acks.empty());
  EXPECT_GE(acks.back().window_bytes, 512u * 1024) << "ack " << acks.back().ack;
}

// A sender shown a zero window must eventually be shown the guest's open window: through a
// window update, or the guest's answer to its zero-window probe (design.md: "The guest's
// answer to a window probe or a keepalive always reaches the sender").
TEST_F(BufferWindowTest, ZeroWindowReopensAfterAnOldAckWithSack) {
  // The sender fills the guest's SYN-ACK window (65160 bytes: 45 segments of 1448) while
  // the guest does not read; the last early ACK closes the window.
  vm_->set_send_window(0);
  std::uint32_t seq = 1001;
  for (int i = 0; i < 45; ++i, seq += 1448) SendData(seq, 1448);
  auto acks = AcksToSender();
  ASSERT_FALSE(acks.empty());
  ASSERT_EQ(acks.back().ack, seq);
  ASSERT_EQ(acks.back().window_bytes, 0u);
  // The guest reads everything. First it sends a D-SACK for an old duplicate: its ACK number
  // is behind vSnoop's, so the sender discards this segment's window (RFC 9293 §3.10.7.4).
  vm_->set_send_window(1 << 20);
  Step();
  GuestAck(30000, 2000, std::make_pair(28000u, 29448u));
  // Then its ACK of everything, with a 512 KB window (4000 << 7).
  GuestAck(seq, 4000);
  // And the sender's zero-window probe (its last byte again, no data), and the guest's answer.
  uplink_->Inject(FrameBuilder().From(sender_).To(guest_).Seq(seq - 1).Ack(5001).Window(502)
                      .Timestamps(ts_++, 200).Build());
  Step();
  GuestAck(seq, 4000);
  bool reopened = false;
  for (const SeenAck& a : AcksToSender()) reopened |= a.ack == seq && a.window_bytes > 0;
  EXPECT_TRUE(reopened);
}

// A guest segment vSnoop must forward (here a D-SACK at vSnoop's own ACK number, after a
// spurious retransmission) carries the guest's own window, which the sender takes: it leaves
// with the window cut to what the buffer can hold, its checksum updated, the rest unchanged.
TEST_F(BufferWindowTest, ForwardedGuestSegmentShowsNoMoreThanTheBufferHolds) {
  vm_->set_send_window(0);  // the guest is off its core: frames stay in the buffer
  std::uint32_t seq = 1001;
  for (int i = 0; i < 10; ++i, seq += 1448) SendData(seq, 1448);
  ASSERT_FALSE(AcksToSender().empty());
  // The guest acknowledges everything with a 4 MiB window (32768 << 7), and SACKs a
  // duplicate of the last 100 bytes: a D-SACK, which is news and must reach the sender.
  GuestAck(seq, 32768, std::make_pair(seq - 100, seq));
  const auto sent = uplink_->TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  Reason why{};
  const auto seg = ParseSegment(sent[0].frame, &why);
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->tcp.ack(), seq);
  EXPECT_TRUE(seg->TcpChecksumValid());
  EXPECT_TRUE(seg->IpChecksumValid());
  const std::uint32_t window = static_cast<std::uint32_t>(seg->tcp.window()) << kScale;
  // The 1 MiB buffer holds 10 frames (about 15 KB): at most the rest, never the guest's 4 MiB.
  EXPECT_LE(window, (1u << 20) + (1u << kScale));
  EXPECT_GE(window, 900u * 1024);
  EXPECT_EQ(dp_->guest(0).counters.guest_windows_limited, 1u);
  EXPECT_EQ(dp_->engine().counters().guest_windows_limited, 1u);
}

// The same with a checksum left to offload (a guest's GSO/partial-checksum frame): the
// window changes and the checksum field, which then holds only the pseudo-header's sum,
// does not.
TEST(RewriteWindow, LeavesAPartialChecksumAlone) {
  auto frame = FrameBuilder().From(Endpoint::Parse("10.0.0.2:5001"))
                   .To(Endpoint::Parse("10.0.0.1:40000")).Seq(1).Ack(2).Window(5000).Build();
  Reason why{};
  const std::uint16_t before = ParseSegment(frame, &why)->tcp.checksum();
  ASSERT_TRUE(RewriteWindow(frame, 100, /*checksum_partial=*/true));
  EXPECT_EQ(ParseSegment(frame, &why)->tcp.window(), 100);
  EXPECT_EQ(ParseSegment(frame, &why)->tcp.checksum(), before);
  ASSERT_TRUE(RewriteWindow(frame, 100, /*checksum_partial=*/false));
  std::vector<std::uint8_t> runt(frame.begin(), frame.begin() + 20);
  EXPECT_FALSE(RewriteWindow(runt, 100, false));
}

}  // namespace
}  // namespace vsnoop::datapath
