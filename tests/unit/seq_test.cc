#include "vsnoop/seq.h"

#include <gtest/gtest.h>

namespace vsnoop {
namespace {

TEST(SeqNum, ComparesAcrossTheWrap) {
  const SeqNum near_top(0xFFFFFF00u);
  const SeqNum past_zero = near_top + 0x200;
  EXPECT_EQ(past_zero.value(), 0x100u);
  EXPECT_TRUE(Before(near_top, past_zero));
  EXPECT_TRUE(After(past_zero, near_top));
  EXPECT_EQ(past_zero - near_top, 0x200);
  EXPECT_EQ(near_top - past_zero, -0x200);
  EXPECT_EQ(BytesBetween(near_top, past_zero), 0x200u);
  EXPECT_EQ(BytesBetween(past_zero, near_top), 0u);
  EXPECT_EQ(Latest(near_top, past_zero), past_zero);
  EXPECT_EQ(Earliest(near_top, past_zero), near_top);
}

TEST(SeqNum, EqualIsNeitherBeforeNorAfter) {
  const SeqNum a(42);
  EXPECT_FALSE(Before(a, a));
  EXPECT_FALSE(After(a, a));
  EXPECT_TRUE(BeforeOrAt(a, a));
  EXPECT_TRUE(AtOrAfter(a, a));
}

TEST(SeqNum, HalfTheSpaceApartFlipsTheOrder) {
  const SeqNum a(0);
  EXPECT_TRUE(Before(a, a + 0x7FFFFFFF));
  // 2^31 apart is ambiguous; the signed difference makes it "before" from both sides'
  // point of view, as the kernel's before() does. Flows never get there.
  EXPECT_TRUE(Before(a + 0x80000001u, a));
}

TEST(Timestamps, CompareWrapSafely) {
  EXPECT_TRUE(TimestampBefore(0xFFFFFFF0u, 0x10));
  EXPECT_FALSE(TimestampBefore(0x10, 0xFFFFFFF0u));
  EXPECT_FALSE(TimestampBefore(7, 7));
}

}  // namespace
}  // namespace vsnoop
