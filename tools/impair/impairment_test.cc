// Unit tests of vsnoop-impair's decisions, with a fake clock: each impairment on its own
// (its rate, its timing, its order), their replay from a seed, and the command-line forms.
#include "impairment.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace vsnoop::impair {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kFrameBytes = 1000;

// Offers `n` frames one microsecond apart and drains whatever is due after each; returns the
// ids in the order they left (frames still waiting at the end are drained too).
std::vector<std::uint64_t> Drain(Impairment& link, std::uint64_t n,
                                 Timestamp start = Timestamp(0)) {
  std::vector<std::uint64_t> out;
  Timestamp now = start;
  for (std::uint64_t id = 0; id < n; ++id) {
    (void)link.Offer(now, id, kFrameBytes, false);
    while (auto released = link.PopDue(now))
      out.push_back(*released);
    now += 1us;
  }
  while (auto next = link.NextEvent()) {
    now = std::max(now, *next);
    while (auto released = link.PopDue(now))
      out.push_back(*released);
  }
  return out;
}

TEST(Impairment, NothingConfiguredPassesEveryFrameAtOnceInOrder) {
  Impairment link(ImpairmentConfig{});
  for (std::uint64_t id = 0; id < 100; ++id) {
    const auto result = link.Offer(Timestamp(id), id, kFrameBytes, true);
    EXPECT_EQ(result.copies, 1u);
    EXPECT_FALSE(result.mark_ce);
    EXPECT_EQ(link.PopDue(Timestamp(id)), id);
    EXPECT_EQ(link.PopDue(Timestamp(id)), std::nullopt);
  }
  EXPECT_FALSE(ImpairmentConfig{}.any());
}

TEST(Impairment, RandomLossLosesTheConfiguredShare) {
  Impairment link(ImpairmentConfig{.loss = 0.01, .seed = 7});
  const auto out = Drain(link, 200000);
  const double lost = 1.0 - static_cast<double>(out.size()) / 200000.0;
  EXPECT_NEAR(lost, 0.01, 0.001);
  EXPECT_EQ(link.stats().lost_random, 200000 - out.size());
  EXPECT_TRUE(std::is_sorted(out.begin(), out.end()));
}

TEST(Impairment, BurstLossHasTheConfiguredRateAndMeanBurstLength) {
  Impairment link(ImpairmentConfig{.burst_loss = {.rate = 0.05, .mean_length = 8}, .seed = 3});
  const std::uint64_t n = 400000;
  const auto out = Drain(link, n);
  std::vector<bool> delivered(n, false);
  for (const auto id : out)
    delivered[id] = true;
  std::uint64_t lost = 0, bursts = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (!delivered[i]) {
      ++lost;
      if (i == 0 || delivered[i - 1]) ++bursts;
    }
  }
  EXPECT_NEAR(static_cast<double>(lost) / n, 0.05, 0.005);
  EXPECT_NEAR(static_cast<double>(lost) / static_cast<double>(bursts), 8.0, 0.5);
  EXPECT_EQ(link.stats().lost_burst, lost);
}

// Longest run of consecutive lost frames among frames offered `spacing` apart.
std::uint64_t LongestLossRun(const ImpairmentConfig& config, std::uint64_t n, Duration spacing,
                             std::uint64_t* lost_total) {
  Impairment link(config);
  std::uint64_t run = 0, longest = 0, lost = 0;
  for (std::uint64_t id = 0; id < n; ++id) {
    const bool kept = link.Offer(Timestamp(static_cast<std::int64_t>(id) * spacing), id, kFrameBytes,
                                 false)
                          .copies > 0;
    run = kept ? 0 : run + 1;
    lost += kept ? 0 : 1;
    longest = std::max(longest, run);
  }
  *lost_total = lost;
  return longest;
}

TEST(Impairment, ABurstEndsOnceItHasLastedItsMaximumDuration) {
  // Bursts of 1000 frames on average, almost always in one: without a maximum, frames 1 ms
  // apart are lost a thousand at a time.
  ImpairmentConfig config{.burst_loss = {.rate = 0.999, .mean_length = 1000}, .seed = 5};
  std::uint64_t lost = 0;
  EXPECT_GT(LongestLossRun(config, 5000, 1ms, &lost), 200u);
  // With 10 ms at most, a burst loses the frames of those 10 ms (11 frames 1 ms apart) and
  // the next frame passes.
  config.burst_loss.max_duration = 10ms;
  EXPECT_LE(LongestLossRun(config, 5000, 1ms, &lost), 11u);
  EXPECT_GT(lost, 4000u);
  // Frames a second apart (a sender retransmitting after timeouts): never two lost in a row.
  EXPECT_EQ(LongestLossRun(config, 200, 1s, &lost), 1u);
  EXPECT_NEAR(static_cast<double>(lost), 100.0, 2.0);
}

TEST(Impairment, TheSameSeedReplaysTheSameFatesAndAnotherSeedDoesNot) {
  const ImpairmentConfig config{.loss = 0.02,
                                .burst_loss = {.rate = 0.03, .mean_length = 4},
                                .reorder = {.probability = 0.02, .gap = 3},
                                .duplicate = 0.02,
                                .seed = 42};
  Impairment a(config), b(config);
  const auto first = Drain(a, 20000);
  EXPECT_EQ(first, Drain(b, 20000));
  ImpairmentConfig other = config;
  other.seed = 43;
  Impairment c(other);
  EXPECT_NE(first, Drain(c, 20000));
}

TEST(Impairment, FatesDependOnTheFrameIndexNotOnWhatElseIsConfigured) {
  // The draws are made in the same order whatever is configured: adding a delay changes
  // when frames leave, not which frames are lost.
  Impairment plain(ImpairmentConfig{.loss = 0.1, .seed = 9});
  Impairment delayed(ImpairmentConfig{.loss = 0.1, .delay = 20ms, .seed = 9});
  EXPECT_EQ(Drain(plain, 5000), Drain(delayed, 5000));
}

TEST(Impairment, DuplicatesLeaveTwice) {
  Impairment link(ImpairmentConfig{.duplicate = 0.05, .seed = 11});
  const auto out = Drain(link, 100000);
  std::map<std::uint64_t, int> times;
  for (const auto id : out)
    ++times[id];
  std::uint64_t twice = 0;
  for (const auto& [id, count] : times) {
    ASSERT_LE(count, 2);
    if (count == 2) ++twice;
  }
  EXPECT_EQ(times.size(), 100000u);
  EXPECT_EQ(twice, link.stats().duplicated);
  EXPECT_NEAR(static_cast<double>(twice) / 100000.0, 0.05, 0.005);
}

TEST(Impairment, EveryHeldFrameIsOvertakenByExactlyGapLaterFrames) {
  const std::uint64_t n = 50000;
  Impairment link(
      ImpairmentConfig{.reorder = {.probability = 0.05, .gap = 2, .max_hold = 1s}, .seed = 5});
  const auto out = Drain(link, n);
  ASSERT_EQ(out.size(), n);
  std::uint64_t displaced = 0;
  for (std::size_t pos = 0; pos < out.size(); ++pos) {
    if (out[pos] >= n - 100) continue;  // near the end too few frames follow: max_hold
    std::size_t overtakers = 0;
    for (std::size_t back = pos >= 64 ? pos - 64 : 0; back < pos; ++back) {
      if (out[back] > out[pos]) ++overtakers;
    }
    if (overtakers == 0) continue;
    ++displaced;
    ASSERT_EQ(overtakers, 2u) << "frame " << out[pos];
  }
  EXPECT_NEAR(static_cast<double>(displaced) / n, 0.05, 0.005);
  EXPECT_LE(displaced, link.stats().reordered);
}

TEST(Impairment, HeldFrameIsOvertakenByGapFramesThenLeaves) {
  // Find a seed whose first frame is held, then watch it precisely.
  for (std::uint64_t seed = 1; seed < 1000; ++seed) {
    Impairment link(
        ImpairmentConfig{.reorder = {.probability = 0.3, .gap = 3, .max_hold = 1s}, .seed = seed});
    (void)link.Offer(Timestamp(0), 0, kFrameBytes, false);
    if (link.stats().reordered == 0) continue;
    EXPECT_EQ(link.PopDue(Timestamp(0)), std::nullopt);
    std::vector<std::uint64_t> out;
    for (std::uint64_t id = 1; out.size() < 4 && id < 100; ++id) {
      (void)link.Offer(Timestamp(0), id, kFrameBytes, false);
      while (auto r = link.PopDue(Timestamp(0)))
        out.push_back(*r);
    }
    // Three later frames that were not themselves held left first, then frame 0.
    auto zero = std::find(out.begin(), out.end(), 0u);
    ASSERT_NE(zero, out.end());
    std::size_t before_zero = 0;
    for (auto it = out.begin(); it != zero; ++it)
      before_zero += *it > 0 ? 1 : 0;
    EXPECT_EQ(before_zero, 3u);
    return;
  }
  FAIL() << "no seed held its first frame";
}

TEST(Impairment, AHeldFrameWithNoLaterTrafficLeavesAfterMaxHold) {
  for (std::uint64_t seed = 1; seed < 1000; ++seed) {
    Impairment link(ImpairmentConfig{.reorder = {.probability = 0.5, .gap = 3, .max_hold = 10ms},
                                     .seed = seed});
    (void)link.Offer(Timestamp(0), 0, kFrameBytes, false);
    if (link.stats().reordered == 0) continue;
    EXPECT_EQ(link.NextEvent(), Timestamp(10ms));
    EXPECT_EQ(link.PopDue(Timestamp(10ms) - 1ns), std::nullopt);
    EXPECT_EQ(link.PopDue(Timestamp(10ms)), 0u);
    EXPECT_EQ(link.NextEvent(), std::nullopt);
    return;
  }
  FAIL() << "no seed held its first frame";
}

TEST(Impairment, DelayHoldsEachFrameForTheDelay) {
  Impairment link(ImpairmentConfig{.delay = 20ms});
  (void)link.Offer(Timestamp(5ms), 1, kFrameBytes, false);
  (void)link.Offer(Timestamp(6ms), 2, kFrameBytes, false);
  EXPECT_EQ(link.NextEvent(), Timestamp(25ms));
  EXPECT_EQ(link.PopDue(Timestamp(25ms) - 1ns), std::nullopt);
  EXPECT_EQ(link.PopDue(Timestamp(25ms)), 1u);
  EXPECT_EQ(link.PopDue(Timestamp(25ms)), std::nullopt);
  EXPECT_EQ(link.PopDue(Timestamp(26ms)), 2u);
  EXPECT_EQ(link.waiting(), 0u);
}

// Offers `n` frames `spacing` apart and steps a fake clock through every departure.
using Delays = std::vector<std::pair<std::uint64_t, Duration>>;

Delays DelaysOf(Impairment& link, std::uint64_t n, Duration spacing) {
  for (std::uint64_t id = 0; id < n; ++id) {
    (void)link.Offer(Timestamp(static_cast<std::int64_t>(id) * spacing), id, kFrameBytes, false);
  }
  Delays delays;
  Timestamp t(0);
  while (auto next = link.NextEvent()) {
    t = std::max(t, *next);
    while (auto id = link.PopDue(t)) {
      delays.emplace_back(*id, t - Timestamp(static_cast<std::int64_t>(*id) * spacing));
    }
  }
  return delays;
}

TEST(Impairment, JitterSpreadsTheDelayUniformlyWithinBounds) {
  // Frames far apart do not wait for each other: each delay is delay +- jitter.
  Impairment link(ImpairmentConfig{.delay = 20ms, .jitter = 2ms, .seed = 8});
  const auto delays = DelaysOf(link, 5000, 10ms);
  ASSERT_EQ(delays.size(), 5000u);
  Duration min_delay = 1h, max_delay{0}, total{0};
  for (const auto& [id, d] : delays) {
    min_delay = std::min(min_delay, d);
    max_delay = std::max(max_delay, d);
    total += d;
  }
  EXPECT_GE(min_delay, 18ms);
  EXPECT_LE(max_delay, 22ms);
  EXPECT_LT(min_delay, 18ms + 50us);
  EXPECT_GT(max_delay, 22ms - 50us);
  const double mean_ms = std::chrono::duration<double, std::milli>(total).count() / 5000;
  EXPECT_NEAR(mean_ms, 20.0, 0.1);
}

TEST(Impairment, JitterNeverReordersCloseFrames) {
  // Frames closer than the jitter: a frame that drew a short delay waits for the one before.
  Impairment link(ImpairmentConfig{.delay = 20ms, .jitter = 2ms, .seed = 8});
  const auto delays = DelaysOf(link, 5000, 100us);
  ASSERT_EQ(delays.size(), 5000u);
  for (std::size_t i = 0; i < delays.size(); ++i) {
    EXPECT_EQ(delays[i].first, i);
    EXPECT_GE(delays[i].second, 18ms);
    EXPECT_LE(delays[i].second, 22ms);
  }
}

TEST(Impairment, RateLimitSpacesFramesBySerialisationTime) {
  // 1000-byte frames at 8 Mbit/s take 1 ms each.
  Impairment link(ImpairmentConfig{.rate_bits_per_second = 8'000'000, .queue_limit = 1s});
  for (std::uint64_t id = 0; id < 10; ++id)
    (void)link.Offer(Timestamp(0), id, kFrameBytes, false);
  for (std::uint64_t id = 0; id < 10; ++id) {
    const Timestamp due = Timestamp(std::chrono::milliseconds(id + 1));
    EXPECT_EQ(link.NextEvent(), due);
    EXPECT_EQ(link.PopDue(due - 1ns), std::nullopt);
    EXPECT_EQ(link.PopDue(due), id);
  }
}

TEST(Impairment, RateLimitDropsWhatWouldQueueTooLong) {
  Impairment link(ImpairmentConfig{.rate_bits_per_second = 8'000'000, .queue_limit = 5ms});
  std::uint32_t accepted = 0;
  for (std::uint64_t id = 0; id < 20; ++id)
    accepted += link.Offer(Timestamp(0), id, kFrameBytes, false).copies;
  // Frame i starts at i ms; those that would start more than 5 ms late are dropped.
  EXPECT_EQ(accepted, 6u);
  EXPECT_EQ(link.stats().lost_queue, 14u);
}

TEST(Impairment, CeMarksOnlyEcnCapableFrames) {
  Impairment link(ImpairmentConfig{.ce_mark = 1.0});
  EXPECT_FALSE(link.Offer(Timestamp(0), 1, kFrameBytes, false).mark_ce);
  EXPECT_TRUE(link.Offer(Timestamp(0), 2, kFrameBytes, true).mark_ce);
  EXPECT_EQ(link.stats().ce_marked, 1u);
}

TEST(ImpairmentParse, Durations) {
  EXPECT_EQ(ParseDuration("20ms"), Duration(20ms));
  EXPECT_EQ(ParseDuration("500us"), Duration(500us));
  EXPECT_EQ(ParseDuration("1.5s"), Duration(1500ms));
  EXPECT_EQ(ParseDuration("0"), Duration(0));
  EXPECT_EQ(ParseDuration("20"), std::nullopt);
  EXPECT_EQ(ParseDuration("ms"), std::nullopt);
  EXPECT_EQ(ParseDuration("-1ms"), std::nullopt);
  EXPECT_EQ(ParseDuration("20min"), std::nullopt);
}

TEST(ImpairmentParse, Rates) {
  EXPECT_EQ(ParseRate("200mbit"), 200'000'000u);
  EXPECT_EQ(ParseRate("1gbit"), 1'000'000'000u);
  EXPECT_EQ(ParseRate("64kbit"), 64'000u);
  EXPECT_EQ(ParseRate("1000"), 1000u);
  EXPECT_EQ(ParseRate("200mb"), std::nullopt);
  EXPECT_EQ(ParseRate(""), std::nullopt);
}

TEST(ImpairmentParse, Pairs) {
  EXPECT_EQ(ParsePair("0.05:8"), std::make_pair(0.05, 8.0));
  EXPECT_EQ(ParsePair("0.02"), std::make_pair(0.02, 0.0));
  EXPECT_EQ(ParsePair("0.05:"), std::nullopt);
  EXPECT_EQ(ParsePair("x:8"), std::nullopt);
  EXPECT_EQ(ParsePair("0.05:8ms"), std::nullopt);
}

}  // namespace
}  // namespace vsnoop::impair
