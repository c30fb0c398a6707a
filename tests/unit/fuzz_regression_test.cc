// Inputs on which a fuzz target (tests/fuzz) crashed, replayed as unit tests so the bug stays
// fixed. Each test says which target found it, with which input, and what went wrong.
#include <gtest/gtest.h>

#include "vsnoop/segment.h"
#include "vsnoop/sim/frame_builder.h"

namespace vsnoop {
namespace {

// fuzz_engine, input {0x0A}: step 1 (a frame from a guest) with every field zero, so a frame
// without TCP options. FrameBuilder::Build copied the empty option list with
// memcpy(dst, options.data(), 0), and an empty vector's data() is null: undefined behaviour
// that UndefinedBehaviorSanitizer reports ("null pointer passed as argument 2, which is
// declared to never be null") and that the asan build turns into an abort. Only the
// sanitizer builds can see it; elsewhere this checks the frame itself.
TEST(FuzzRegression, FrameBuilderBuildsFrameWithoutTcpOptions) {
  const auto guest = sim::Endpoint::Parse("10.0.0.2:5201");
  const auto sender = sim::Endpoint::Parse("10.0.0.1:40000");
  const auto frame = sim::FrameBuilder().From(guest).To(sender).Build();
  ASSERT_EQ(frame.size(), 14u + 20u + 20u);
  Reason why{};
  const auto seg = ParseSegment(frame, &why);
  ASSERT_TRUE(seg.has_value()) << ReasonLabel(why);
  EXPECT_EQ(seg->tcp.header_size(), 20u);
  EXPECT_TRUE(seg->tcp.options().empty());
  EXPECT_EQ(seg->payload_size, 0u);
  EXPECT_TRUE(seg->IpChecksumValid());
  EXPECT_TRUE(seg->TcpChecksumValid());
}

}  // namespace
}  // namespace vsnoop
