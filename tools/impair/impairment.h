// The decisions of vsnoop-impair, a link that misbehaves on purpose (this kernel has no tc
// netem). For each frame offered to one direction of the link it decides, from a seeded
// pseudo-random sequence, whether the frame is lost (at random, or in a burst), whether it
// is duplicated, whether later frames overtake it, and when each copy leaves (delay, jitter,
// a rate limit with a bounded queue). No I/O and no clock: the caller passes the time and
// keeps the frames; the model hands back their ids in the order they leave.
//
// Replay: every frame draws the same number of random values in the same order, whatever
// is configured, so the n-th frame's fate depends only on the seed and n. Given the same
// frames in the same order, the same frames are lost, duplicated and held back. (The
// departure times of a rate-limited or held frame also depend on when frames arrive, and
// so does the end of a burst with a maximum duration.)
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace vsnoop::impair {

using Timestamp = std::chrono::nanoseconds;  // since an epoch chosen by the caller
using Duration = std::chrono::nanoseconds;

// Loss in bursts (a Gilbert-Elliott channel with a lossless good state and an all-loss bad
// state): `rate` of all frames are lost, in bursts of `mean_length` frames on average.
// `max_duration` (0: none) also ends a burst once it has lasted that long: a burst counted
// in frames alone outlasts any real outage when frames come rarely (a sender retransmitting
// after each timeout would lose its next L retransmissions, over minutes of backoff).
struct BurstLoss {
  double rate = 0;
  double mean_length = 1;
  Duration max_duration{0};
};

// With `probability`, a frame is held back until `gap` frames offered after it have left
// (they overtake it), or until `max_hold` has passed since it was due, whichever is first.
struct Reorder {
  double probability = 0;
  std::uint32_t gap = 3;
  Duration max_hold = std::chrono::milliseconds(10);
};

struct ImpairmentConfig {
  double loss = 0;  // each frame lost independently with this probability
  BurstLoss burst_loss;
  Reorder reorder;
  double duplicate = 0;  // each frame sent twice with this probability
  double ce_mark = 0;    // an ECN-capable frame is marked CE with this probability
  Duration delay{0};
  // Each copy's delay varies uniformly within [delay - jitter, delay + jitter] (never below
  // zero). Frames still leave in the order they came (only `reorder` reorders), as on a
  // real path whose queueing delay varies.
  Duration jitter{0};
  // A rate limit on the link, bits per second (0: none): a frame leaves no earlier than the
  // previous one finished serialising. A frame that would wait longer than `queue_limit`
  // for the link is dropped, as a router's tail drop (tc tbf's `latency`).
  std::uint64_t rate_bits_per_second = 0;
  Duration queue_limit = std::chrono::milliseconds(50);
  std::uint64_t seed = 1;

  bool any() const;
  std::string ToString() const;
};

// What happened to the frames, per kind of fate.
struct ImpairmentStats {
  std::uint64_t offered = 0;
  std::uint64_t lost_random = 0;
  std::uint64_t lost_burst = 0;
  std::uint64_t lost_queue = 0;  // waited longer than queue_limit for the rate limit
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;  // held back for later frames to overtake
  std::uint64_t ce_marked = 0;
  std::uint64_t released = 0;  // copies handed back by PopDue
};

struct OfferResult {
  std::uint32_t copies = 0;  // how many times PopDue will return this frame's id (0: lost)
  bool mark_ce = false;      // the caller sets CE on the frame if it is ECN-capable
};

class Impairment {
 public:
  explicit Impairment(const ImpairmentConfig& config);

  // One frame of `bytes` bytes arrives at `now`. `id` is the caller's handle for it.
  // `ecn_capable`: whether the frame is ECT(0) or ECT(1) (only those can be marked CE).
  OfferResult Offer(Timestamp now, std::uint64_t id, std::uint32_t bytes, bool ecn_capable);
  // The id of the next copy due to leave at `now`, or nullopt. Call until nullopt.
  std::optional<std::uint64_t> PopDue(Timestamp now);
  // When the next copy becomes due; nullopt when none waits. May be in the past.
  std::optional<Timestamp> NextEvent() const;
  // Copies waiting to leave.
  std::size_t waiting() const { return fifo_.size() + held_.size(); }

  const ImpairmentStats& stats() const { return stats_; }
  const ImpairmentConfig& config() const { return config_; }

 private:
  struct Entry {
    std::uint64_t id = 0;
    std::uint64_t order = 0;           // offer sequence number of its frame
    Timestamp due{0};                  // when it may leave
    std::uint32_t overtakes_left = 0;  // held entries: later frames still to leave first
  };
  double Uniform() { return uniform_(rng_); }
  void NoteDeparture(const Entry& departed);

  ImpairmentConfig config_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  double burst_enter_probability_ = 0;  // good -> bad, per frame
  bool burst_ = false;                  // in the bad (losing) state
  Timestamp burst_start_{0};            // when the current burst began
  std::uint64_t next_order_ = 0;
  Timestamp last_ready_{0};  // keeps departures in arrival order
  Timestamp link_free_{0};   // when the rate-limited link is idle again
  std::deque<Entry> fifo_;   // due times non-decreasing
  std::vector<Entry> held_;  // held back, in offer order
  ImpairmentStats stats_;
};

// Command-line values: "20ms", "500us", "1s", "0" -> a duration; "200mbit", "1gbit",
// "64kbit", "1000000" (bits/s) -> a rate; "0.05:8" -> two numbers. nullopt when malformed.
std::optional<Duration> ParseDuration(const std::string& text);
std::optional<std::uint64_t> ParseRate(const std::string& text);
std::optional<std::pair<double, double>> ParsePair(const std::string& text);

}  // namespace vsnoop::impair
