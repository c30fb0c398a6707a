// The per-guest buffer: bounded, FIFO, and never refusing a frame that room() says fits.
#include "vsnoop/datapath/frame_queue.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>

namespace vsnoop::datapath {
namespace {

std::vector<std::uint8_t> FrameOf(std::size_t size, std::uint32_t tag) {
  std::vector<std::uint8_t> f(size);
  for (std::size_t i = 0; i < size; ++i) f[i] = static_cast<std::uint8_t>(tag * 31 + i);
  return f;
}

TEST(FrameQueue, BoundedInBytesAndFrames) {
  FrameQueue q(3000, 2);
  const auto f = FrameOf(1000, 1);
  EXPECT_EQ(q.room().frames, 2u);
  EXPECT_TRUE(q.Push({f, {}}));
  EXPECT_TRUE(q.Push({f, {}}));
  EXPECT_EQ(q.room().frames, 0u);
  EXPECT_FALSE(q.Push({f, {}}));  // frames exhausted
  q.Pop();
  const auto big = FrameOf(2001, 2);
  EXPECT_FALSE(q.Push({big, {}}));  // 1000 + 2001 > 3000
  EXPECT_EQ(q.frames(), 1u);
  EXPECT_EQ(q.bytes(), 1000u);
}

TEST(FrameQueue, KeepsOffloadMetadata) {
  FrameQueue q(1 << 20, 16);
  VnetHeader h;
  h.flags = VnetHeader::kNeedsCsum;
  h.gso_type = VnetHeader::kGsoTcpV4;
  h.gso_size = 1448;
  h.csum_start = 34;
  h.csum_offset = 16;
  const auto f = FrameOf(60000, 3);
  ASSERT_TRUE(q.Push({f, h}));
  const PacketView v = q.Front();
  EXPECT_EQ(v.vnet.gso_size, 1448);
  EXPECT_EQ(v.vnet.csum_start, 34);
  EXPECT_TRUE(std::equal(f.begin(), f.end(), v.frame.begin(), v.frame.end()));
}

TEST(FrameQueue, RejectsEmptyAndOversizeFrames) {
  FrameQueue q(1 << 20, 16);
  EXPECT_FALSE(q.Push({{}, {}}));
  const auto huge = FrameOf(FrameQueue::kMaxFrame + 1, 4);
  EXPECT_FALSE(q.Push({huge, {}}));
  EXPECT_EQ(q.RoomFor(huge.size()).bytes, 0u);
  EXPECT_EQ(q.room().bytes, 1u << 20);  // all of it free: the engine may invite that much
}

// Random pushes and pops against a std::deque: FIFO order and contents survive the ring's
// wrap-around, and a frame is refused exactly when room() says it does not fit.
TEST(FrameQueue, MatchesAModelUnderRandomUse) {
  std::mt19937 rng(20260101);
  for (std::uint64_t max_bytes : {4096ULL, 100000ULL, 1ULL << 20}) {
    FrameQueue q(max_bytes, 64);
    std::deque<std::vector<std::uint8_t>> model;
    std::uint64_t model_bytes = 0;
    std::uint32_t tag = 0;
    for (int step = 0; step < 50000; ++step) {
      if (rng() % 3 != 0) {
        const std::size_t size = 1 + rng() % (rng() % 8 == 0 ? 65000 : 1600);
        const auto f = FrameOf(size, ++tag);
        const BufferRoom room = q.RoomFor(size);
        const bool fits = size <= room.bytes && room.frames >= 1;
        ASSERT_EQ(fits, model_bytes + size <= max_bytes && model.size() < 64 &&
                            size <= FrameQueue::kMaxFrame);
        ASSERT_EQ(q.Push({f, {}}), fits);
        if (fits) {
          model.push_back(f);
          model_bytes += size;
        }
      } else if (!model.empty()) {
        const auto n = static_cast<std::uint32_t>(1 + rng() % std::min<std::size_t>(model.size(), 4));
        for (std::uint32_t i = 0; i < n; ++i) {
          const PacketView v = q.At(i);
          ASSERT_TRUE(std::equal(v.frame.begin(), v.frame.end(), model[i].begin(), model[i].end()));
        }
        q.Pop(n);
        for (std::uint32_t i = 0; i < n; ++i) {
          model_bytes -= model.front().size();
          model.pop_front();
        }
      }
      ASSERT_EQ(q.frames(), model.size());
      ASSERT_EQ(q.bytes(), model_bytes);
    }
  }
}

}  // namespace
}  // namespace vsnoop::datapath
