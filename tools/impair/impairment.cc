#include "impairment.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>

namespace vsnoop::impair {

bool ImpairmentConfig::any() const {
  return loss > 0 || burst_loss.rate > 0 || reorder.probability > 0 || duplicate > 0 ||
         ce_mark > 0 || delay.count() > 0 || jitter.count() > 0 || rate_bits_per_second > 0;
}

std::string ImpairmentConfig::ToString() const {
  std::ostringstream os;
  auto ms = [](Duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  os << "seed=" << seed;
  if (loss > 0) os << " loss=" << loss;
  if (burst_loss.rate > 0) {
    os << " burst-loss=" << burst_loss.rate << ":" << burst_loss.mean_length;
    if (burst_loss.max_duration > Duration::zero()) os << " burst-max=" << ms(burst_loss.max_duration) << "ms";
  }
  if (reorder.probability > 0) {
    os << " reorder=" << reorder.probability << ":" << reorder.gap
       << " hold<=" << ms(reorder.max_hold) << "ms";
  }
  if (duplicate > 0) os << " duplicate=" << duplicate;
  if (ce_mark > 0) os << " ce-mark=" << ce_mark;
  if (delay.count() > 0) os << " delay=" << ms(delay) << "ms";
  if (jitter.count() > 0) os << " jitter=" << ms(jitter) << "ms";
  if (rate_bits_per_second > 0) {
    os << " rate=" << rate_bits_per_second << "bit/s queue<=" << ms(queue_limit) << "ms";
  }
  return os.str();
}

Impairment::Impairment(const ImpairmentConfig& config) : config_(config), rng_(config.seed) {
  // Gilbert-Elliott with a lossless good state G and an all-loss bad state B. Leaving B has
  // probability 1/L per frame, so bursts last L frames on average (geometric). The share of
  // frames seen in B is p(G->B) / (p(G->B) + 1/L); setting it to the loss rate r gives
  // p(G->B) = r / (L (1 - r)).
  const double r = config_.burst_loss.rate;
  const double l = std::max(1.0, config_.burst_loss.mean_length);
  config_.burst_loss.mean_length = l;
  if (r > 0 && r < 1) burst_enter_probability_ = r / (l * (1 - r));
  if (r >= 1) burst_enter_probability_ = 1;
}

OfferResult Impairment::Offer(Timestamp now, std::uint64_t id, std::uint32_t bytes,
                              bool ecn_capable) {
  ++stats_.offered;
  const std::uint64_t order = next_order_++;
  // Always the same draws in the same order (see the header: replay by frame index).
  const double u_burst = Uniform();
  const double u_loss = Uniform();
  const double u_duplicate = Uniform();
  const double u_reorder = Uniform();
  const double u_ce = Uniform();
  const double u_jitter[2] = {Uniform(), Uniform()};

  if (config_.burst_loss.rate > 0) {
    if (burst_) {
      const Duration max = config_.burst_loss.max_duration;
      const bool too_long = max > Duration::zero() && now - burst_start_ > max;
      if (u_burst < 1.0 / config_.burst_loss.mean_length || too_long) burst_ = false;
    } else if (u_burst < burst_enter_probability_) {
      burst_ = true;
      burst_start_ = now;
    }
    if (burst_) {
      ++stats_.lost_burst;
      return {};
    }
  }
  if (u_loss < config_.loss) {
    ++stats_.lost_random;
    return {};
  }

  OfferResult result;
  result.mark_ce = ecn_capable && u_ce < config_.ce_mark;
  if (result.mark_ce) ++stats_.ce_marked;
  const std::uint32_t copies = u_duplicate < config_.duplicate ? 2 : 1;
  const bool hold = u_reorder < config_.reorder.probability;
  for (std::uint32_t copy = 0; copy < copies; ++copy) {
    Timestamp ready = now + config_.delay;
    if (config_.jitter.count() > 0) {
      const double offset = (2 * u_jitter[copy] - 1) * static_cast<double>(config_.jitter.count());
      ready += Duration(static_cast<std::int64_t>(offset));
      ready = std::max(ready, now);
    }
    ready = std::max(ready, last_ready_);  // jitter does not reorder
    last_ready_ = ready;
    Timestamp due = ready;
    if (config_.rate_bits_per_second > 0) {
      const Timestamp start = std::max(ready, link_free_);
      if (start - ready > config_.queue_limit) {
        ++stats_.lost_queue;
        continue;
      }
      const auto serialise_ns = static_cast<std::int64_t>(
          static_cast<double>(bytes) * 8e9 / static_cast<double>(config_.rate_bits_per_second));
      due = start + Duration(serialise_ns);
      link_free_ = due;
    }
    ++result.copies;
    // Only the first copy is held back: a duplicate then arrives before its original.
    if (hold && copy == 0) {
      ++stats_.reordered;
      held_.push_back(
          {.id = id, .order = order, .due = due, .overtakes_left = config_.reorder.gap});
    } else {
      fifo_.push_back({.id = id, .order = order, .due = due, .overtakes_left = 0});
    }
  }
  if (copies == 2 && result.copies == 2) ++stats_.duplicated;
  return result;
}

void Impairment::NoteDeparture(const Entry& departed) {
  for (Entry& h : held_) {
    if (departed.order > h.order && h.overtakes_left > 0) --h.overtakes_left;
  }
}

std::optional<std::uint64_t> Impairment::PopDue(Timestamp now) {
  // A held frame leaves as soon as enough later frames overtook it, or its hold expired.
  for (auto it = held_.begin(); it != held_.end(); ++it) {
    if (it->overtakes_left == 0 || now >= it->due + config_.reorder.max_hold) {
      const std::uint64_t id = it->id;
      held_.erase(it);
      ++stats_.released;
      return id;
    }
  }
  if (!fifo_.empty() && fifo_.front().due <= now) {
    const Entry e = fifo_.front();
    fifo_.pop_front();
    NoteDeparture(e);
    ++stats_.released;
    return e.id;
  }
  return std::nullopt;
}

std::optional<Timestamp> Impairment::NextEvent() const {
  std::optional<Timestamp> next;
  auto consider = [&next](Timestamp t) {
    if (!next || t < *next) next = t;
  };
  if (!fifo_.empty()) consider(fifo_.front().due);
  for (const Entry& h : held_) {
    consider(h.overtakes_left == 0 ? h.due : h.due + config_.reorder.max_hold);
  }
  return next;
}

namespace {

// Splits "12.5ms" into 12.5 and "ms".
std::optional<std::pair<double, std::string>> NumberAndUnit(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[i])) != 0 || text[i] == '.')) {
    ++i;
  }
  if (i == 0) return std::nullopt;
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + i, value);
  if (error != std::errc() || end != text.data() + i || !std::isfinite(value) || value < 0) {
    return std::nullopt;
  }
  return std::make_pair(value, text.substr(i));
}

}  // namespace

std::optional<Duration> ParseDuration(const std::string& text) {
  const auto parsed = NumberAndUnit(text);
  if (!parsed) return std::nullopt;
  const auto& [value, unit] = *parsed;
  double ns = 0;
  if (unit == "ns") {
    ns = value;
  } else if (unit == "us") {
    ns = value * 1e3;
  } else if (unit == "ms") {
    ns = value * 1e6;
  } else if (unit == "s") {
    ns = value * 1e9;
  } else if (unit.empty() && value == 0) {
    ns = 0;
  } else {
    return std::nullopt;
  }
  if (ns > 3600e9) return std::nullopt;
  return Duration(static_cast<std::int64_t>(ns));
}

std::optional<std::uint64_t> ParseRate(const std::string& text) {
  const auto parsed = NumberAndUnit(text);
  if (!parsed) return std::nullopt;
  const auto& [value, unit] = *parsed;
  double bits = 0;
  if (unit.empty() || unit == "bit") {
    bits = value;
  } else if (unit == "kbit") {
    bits = value * 1e3;
  } else if (unit == "mbit") {
    bits = value * 1e6;
  } else if (unit == "gbit") {
    bits = value * 1e9;
  } else {
    return std::nullopt;
  }
  if (bits > 1e12) return std::nullopt;
  return static_cast<std::uint64_t>(bits);
}

std::optional<std::pair<double, double>> ParsePair(const std::string& text) {
  const auto colon = text.find(':');
  const std::string first = text.substr(0, colon);
  const std::string second = colon == std::string::npos ? "" : text.substr(colon + 1);
  const auto a = NumberAndUnit(first);
  if (!a || !a->second.empty()) return std::nullopt;
  if (colon == std::string::npos) return std::make_pair(a->first, 0.0);
  const auto b = NumberAndUnit(second);
  if (!b || !b->second.empty()) return std::nullopt;
  return std::make_pair(a->first, b->first);
}

}  // namespace vsnoop::impair
