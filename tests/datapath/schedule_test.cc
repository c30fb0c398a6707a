// The emulated round-robin scheduler, with a fake clock.
#include "vsnoop/datapath/schedule.h"

#include <gtest/gtest.h>

namespace vsnoop::datapath {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

ScheduleConfig Rr(std::uint32_t vms, std::uint32_t turn) {
  std::string error;
  auto c = ScheduleConfig::Parse(
      "rr:vms=" + std::to_string(vms) + ":slice_ms=30:turn=" + std::to_string(turn), &error);
  EXPECT_TRUE(c.has_value()) << error;
  return *c;
}

TEST(ScheduleConfig, ParsesAndRejects) {
  std::string error;
  auto c = ScheduleConfig::Parse(
      "rr:vms=3:slice_ms=10:turn=2:neighbours=yield:neighbour_ms=2:idle_us=250:wake_passes=2",
      &error);
  ASSERT_TRUE(c.has_value()) << error;
  EXPECT_EQ(c->vms, 3u);
  EXPECT_EQ(c->turn, 2u);
  EXPECT_EQ(c->slice, milliseconds(10));
  EXPECT_EQ(c->neighbours, ScheduleConfig::Neighbours::kYield);
  EXPECT_EQ(c->neighbour_run, milliseconds(2));
  EXPECT_EQ(c->idle_yield, microseconds(250));
  EXPECT_EQ(c->wake_passes, 2u);
  EXPECT_EQ(ScheduleConfig::Parse(c->ToString(), &error)->ToString(), c->ToString());
  for (const char* bad : {"fifo:vms=2", "rr:vms=0", "rr:vms=2:turn=3", "rr:vms=2:slice_ms=x",
                          "rr:vms=2:bogus=1", "rr:vms=2:neighbours=sleep", "rr:slice_ms=0",
                          "rr:vms=2:wake_passes=0", "rr:vms=2:wake_passes=9"}) {
    EXPECT_FALSE(ScheduleConfig::Parse(bad, &error).has_value()) << bad;
    EXPECT_FALSE(error.empty());
  }
}

TEST(VmSchedule, AloneOnItsCoreAlwaysRuns) {
  VmSchedule s(Rr(1, 1), Timestamp(0));
  for (int t = 0; t < 100; t += 7) {
    s.Advance(milliseconds(t), t % 2 == 0);
    EXPECT_TRUE(s.running());
  }
}

TEST(VmSchedule, BusyGuestGetsOneSliceInK) {
  VmSchedule s(Rr(3, 1), Timestamp(0));
  // Always runnable: runs [0,30), waits for two neighbours [30,90), runs [90,120)...
  for (int t = 0; t < 300; ++t) {
    s.Advance(milliseconds(t), /*runnable=*/true);
    s.NoteActivity(milliseconds(t));
    EXPECT_EQ(s.running(), (t % 90) < 30) << "t=" << t;
  }
  EXPECT_EQ(s.turns(), 4u);
}

TEST(VmSchedule, ARunnableGuestWithoutProgressWaitsForTheEndOfItsSlice) {
  // Runnable (frames wait for it) but nothing moves (its port cannot take them): the next
  // event is the end of the slice, not an idle deadline already past, which would make
  // the event loop spin for the rest of the slice.
  VmSchedule s(Rr(3, 1), Timestamp(0));  // idle_us=0
  s.Advance(milliseconds(5), /*runnable=*/true);
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(s.NextEvent().has_value());
  EXPECT_EQ(*s.NextEvent(), Timestamp(milliseconds(30)));
  // Not runnable any more: it may block at once.
  s.Advance(milliseconds(6), /*runnable=*/false);
  EXPECT_FALSE(s.running());
}

TEST(VmSchedule, LaterTurnWaitsForNeighboursFirst) {
  VmSchedule s(Rr(3, 3), Timestamp(0));
  s.Advance(milliseconds(59), true);
  EXPECT_FALSE(s.running());
  s.Advance(milliseconds(60), true);
  EXPECT_TRUE(s.running());
}

TEST(VmSchedule, IdleGuestBlocksAndWaitsForNeighboursWhenWoken) {
  ScheduleConfig c = Rr(3, 1);
  c.idle_yield = microseconds(500);
  VmSchedule s(c, Timestamp(0));
  s.NoteActivity(milliseconds(1));
  s.Advance(milliseconds(1), false);
  EXPECT_TRUE(s.running());
  s.Advance(microseconds(1600), false);  // idle for 600 us
  EXPECT_EQ(s.state(), VmSchedule::State::kBlocked);
  EXPECT_FALSE(s.NextEvent().has_value());
  // Blocked at 1.5 ms; neighbours take 30 ms turns from then. Woken at 11.5 ms (10 ms into
  // the first neighbour's turn): waits 20 ms for it and 30 ms for the second neighbour.
  s.Advance(microseconds(11500), true);
  EXPECT_EQ(s.state(), VmSchedule::State::kQueued);
  ASSERT_TRUE(s.NextEvent().has_value());
  EXPECT_EQ(*s.NextEvent(), microseconds(61500));
  s.Advance(microseconds(61499), true);
  EXPECT_FALSE(s.running());
  s.Advance(microseconds(61500), true);
  EXPECT_TRUE(s.running());
}

TEST(VmSchedule, DefaultConfigPrintsNoWakePasses) {
  // The Xen-like default keeps the text other tools and logs already show.
  EXPECT_EQ(Rr(3, 1).ToString(), "rr:vms=3:slice_ms=30:turn=1:neighbours=burn:idle_us=500");
}

TEST(VmSchedule, ExtraWakePassesWaitWholeRoundsOfNeighbours) {
  // A qemu VM whose I/O thread shares the core: woken, it waits for the I/O thread's turn
  // (behind the running neighbour and the other one), then queues its vCPU behind both
  // neighbours again.
  ScheduleConfig c = Rr(3, 1);
  c.idle_yield = microseconds(0);
  c.wake_passes = 2;
  VmSchedule s(c, Timestamp(0));
  s.Advance(milliseconds(1), false);  // nothing to do since 0: blocked at 0
  EXPECT_EQ(s.state(), VmSchedule::State::kBlocked);
  // Woken 11 ms into the first neighbour's turn: 19 + 30 ms for the first pass, then
  // 2 x 30 ms for the second.
  s.Advance(milliseconds(11), true);
  ASSERT_TRUE(s.NextEvent().has_value());
  EXPECT_EQ(*s.NextEvent(), milliseconds(11 + 19 + 30 + 60));
  s.Advance(milliseconds(119), true);
  EXPECT_FALSE(s.running());
  s.Advance(milliseconds(120), true);
  EXPECT_TRUE(s.running());
  EXPECT_EQ(s.turns(), 2u);
}

TEST(VmSchedule, WakePassesDoNotDelayAPreemptedGuest) {
  // A busy guest preempted at the end of its slice is still runnable: it waits for one
  // round of the neighbours only, whatever wake_passes says.
  ScheduleConfig c = Rr(2, 1);
  c.wake_passes = 3;
  VmSchedule s(c, Timestamp(0));
  s.NoteActivity(milliseconds(29));
  s.Advance(milliseconds(30), true);
  EXPECT_FALSE(s.running());
  s.Advance(milliseconds(60), true);
  EXPECT_TRUE(s.running());
}

TEST(VmSchedule, YieldingNeighboursGiveTheCoreBackSoon) {
  std::string error;
  auto c =
      ScheduleConfig::Parse("rr:vms=4:slice_ms=30:turn=1:neighbours=yield:neighbour_ms=1", &error);
  ASSERT_TRUE(c.has_value());
  VmSchedule s(*c, Timestamp(0));
  s.Advance(milliseconds(30), true);  // slice used up, still busy: queued behind 3 x 1 ms
  EXPECT_FALSE(s.running());
  s.Advance(milliseconds(33), true);
  EXPECT_TRUE(s.running());
}

TEST(VmSchedule, LongPauseBetweenCallsCatchesUp) {
  VmSchedule s(Rr(2, 1), Timestamp(0));
  // Runs [60n, 60n + 30), the neighbour has [60n + 30, 60n + 60): 1000 is the neighbour's.
  s.Advance(milliseconds(1000), true);
  EXPECT_FALSE(s.running());
  s.Advance(milliseconds(1030), true);
  EXPECT_TRUE(s.running());
  EXPECT_EQ(s.turns(), 18u);  // turns began at 0, 60, ..., 1020
}

}  // namespace
}  // namespace vsnoop::datapath
